"""The generation loop: a fresh Trainer and a fresh model for every training phase."""

from __future__ import annotations

import copy
import functools
import gc
import math
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from selfloop.callbacks.finite_loss import FiniteLossCheck
from selfloop.callbacks.fit_progress import FitProgress
from selfloop.callbacks.generated_sample_metrics import (
    ClassFidelity,
    Diversity,
    FrechetDistance,
    GeneratedSampleMetrics,
    SampleCounts,
    SampleMetric,
    SubgroupBalance,
)
from selfloop.callbacks.generation_controller import GenerationController, GenerationPlan, PoolInputs
from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.console.progress import PhaseProgress
from selfloop.console.summary import print_summary
from selfloop.core.catalogue import GENERATOR_ARCH
from selfloop.core.errors import MissingRunFileError
from selfloop.data.base import SelfLoopDataModule
from selfloop.data.splits import stratified_split
from selfloop.data.subgroup_cells import SubgroupCellData
from selfloop.filtering.sample_filter import SampleFilter
from selfloop.filtering.selection import subgroup_mix
from selfloop.generators.base import ConditionalGenerator
from selfloop.metrics.chance import CHANCE_P, chance_p_value, chance_warning
from selfloop.metrics.fid import FidTracker, InceptionFeatures, penultimate_extractor, write_fid_table
from selfloop.run.phases import Phase, PhaseRunner
from selfloop.run.preemption import GracefulStop
from selfloop.run.topology import Topology
from selfloop.run.user_loggers import PhasePrefixed, user_loggers
from selfloop.training.classifier_fit import ClassifierFit, fit_concurrently
from selfloop.training.loop_config import LoopConfig
from selfloop.training.module_spec import ModuleSpec


class SelfConsumingLoop:
    """Runs generation 0 (classifiers on real data) and generations 1..N.

    Per generation n >= 1: a fresh generator g_n is fitted on real + queue; its
    ``GenerationController`` samples, filters and pushes the survivors into the queue. Then, for
    every generation, each arch of the panel gets a fresh classifier f_n fitted on real + queue, and
    the data set's evaluation callback (``FairnessMetrics``) evaluates it on the test split.

    Resume: phases recorded in the manifest are skipped, so rerunning an interrupted run continues
    at the first unfinished phase; a phase that was cut short is redone from its start with the same
    seed, which makes the final metrics equal those of an uninterrupted run.

    Args:
        config: the ``loop`` group.
        classifier: the classifier's class and hyperparameters; every f_n is a fresh one.
        generator: the generator's class and hyperparameters; every g_n is a fresh one.
        datamodule: the data set.
        sample_filter: the expert-guided filter.
        trainer_kwargs: ``Trainer`` arguments from the ``trainer`` group (callbacks are copied per phase).
        runner: the run's phases (run directory, manifest, queue and metrics log).
        resume_command: the command that resumes this run (shown when human review stops it).
    """

    def __init__(
        self,
        config: LoopConfig,
        classifier: ModuleSpec[ImageClassifier],
        generator: ModuleSpec[ConditionalGenerator],
        datamodule: SelfLoopDataModule,
        sample_filter: SampleFilter,
        trainer_kwargs: dict[str, Any],
        runner: PhaseRunner,
        resume_command: str | None = None,
    ) -> None:
        self.config = config
        self.resume_command = resume_command
        self.classifier = classifier
        self.generator = generator
        self.datamodule = datamodule
        self.sample_filter = sample_filter
        self.trainer_kwargs = dict(trainer_kwargs)
        self.user_callbacks: list[Callback] = list(self.trainer_kwargs.pop("callbacks", None) or [])
        self.user_loggers = user_loggers(self.trainer_kwargs.pop("logger", None))
        self.runner = runner
        runner.metrics.loggers = self.user_loggers
        self.archs = config.panel(classifier.init_args["arch"])
        self.scorer_arch = config.scorer(classifier.init_args["arch"])
        self.stop = GracefulStop()

    def run(self) -> None:
        """Every generation's phases in order; a phase recorded as done is skipped (resume)."""
        self.runner.progress = PhaseProgress(
            self.config.generations, self.archs, recorded=self.runner.manifest.unit_seconds
        )
        with self.stop:
            try:
                self._repair_queue()
                for n in range(self.config.generations + 1):
                    if n >= 1 and not self.runner.done(Phase.filter(n)):
                        self._fit_judge()  # once per run, on real data
                        self._fit_subgroup_oracle()  # once per run, where no exact oracle exists
                        self._fit_generator(n)  # g_n; its controller samples, filters, pushes to the queue
                        self._end_phase()
                    self._fit_classifiers(n)  # f_n of every arch, evaluated and recorded
            except SIGTERMException:
                self.stop.received = self.stop.received or signal.SIGTERM
                self.stop.check()
            finally:
                self.runner.metrics.close()
        rank_zero_info(f"[selfloop] done: {self.config.generations} generations in {self.runner.run.path}")
        print_summary(self.runner)

    def _end_phase(self) -> None:
        # A finished fit leaves reference cycles (Trainer, callbacks, model) that Python's rare full
        # collections would free late: peak memory would then creep up generation after generation.
        gc.collect()
        self.stop.check()

    def _record(self, generation: int, arch: str, metrics: dict) -> None:
        """The one place a run's metrics are recorded: rows of ``metrics.csv`` (and the loggers); the FID
        table follows the generator's rows, built from the rows held in memory (a generator row comes
        from a measurement, so ``_fid`` is built by then)."""
        self.runner.metrics.log(generation, arch, metrics)
        summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        rank_zero_info(f"[selfloop] generation {generation} · {arch}: {summary}")
        if arch == GENERATOR_ARCH and self._fid is not None and rank_zero_only.rank == 0:
            write_fid_table(*self.runner.run.fid_tables, self._fid.table_rows(self.runner.metrics.rows))

    # Fitted once per run on real data -----------------------------------------------------------

    def _fit_judge(self) -> None:
        """The independent judge of class fidelity (``gen_label_acc``, q_t): a classifier of the scorer
        arch trained once per run on the real data with a seed of its own. It never scores the filter,
        so the filter's model (f_{n-1}) does not judge its own work."""
        if self.runner.done(Phase.judge()):
            return
        self.datamodule.set_generated(None)
        self._fit_once(Phase.judge(), self.runner.run.judge_weights, self.datamodule, self._judge_args())
        self.runner.complete(Phase.judge())

    def _judge_args(self) -> dict[str, Any]:
        return {"arch": self.scorer_arch}

    def _fit_subgroup_oracle(self) -> None:
        """Where the data set has subgroups but no exact oracle (colour), a classifier of (class, subgroup)
        cells trained once per run on the real set reads the subgroups of generated images; its accuracy
        on the real test split is recorded, since u_t is an estimate through it."""
        if self._cells is None or self.runner.done(Phase.subgroup_oracle()):
            return
        cells = self._cells
        model = self._fit_once(
            Phase.subgroup_oracle(), self.runner.run.subgroup_oracle_weights, cells, self._oracle_args()
        )
        test = cells.real.test
        correct = model.predict_labels(test.images) % cells.num_subgroups == test.subgroups
        self._record(0, "subgroup_oracle", {"subgroup_acc": correct.float().mean().item()})
        self.runner.complete(Phase.subgroup_oracle())

    def _oracle_args(self) -> dict[str, Any]:
        assert self._cells is not None
        return {"arch": self.scorer_arch, "num_classes": self._cells.num_classes}

    @functools.cached_property
    def _cells(self) -> SubgroupCellData | None:
        """The real data by (class, subgroup) cell, where a subgroup oracle must be trained."""
        dm = self.datamodule
        if dm.subgroup_oracle is not None or dm.num_subgroups < 2:
            return None
        return SubgroupCellData(dm)

    def _fit_once(
        self, phase: Phase, path: Path, data: L.LightningDataModule, overrides: dict[str, Any]
    ) -> ImageClassifier:
        """Fit a classifier on real data and save it to ``path`` (the caller completes ``phase``)."""
        self.runner.begin(phase)
        model = self.classifier.build(**overrides)
        data.loader_seed = phase.seed(self.runner.base_seed, "loader")
        name = phase.step.replace("_", " ")
        callbacks = [*self._fit_callbacks(f"{name} fit"), FitProgress(self.runner, phase)]
        trainer = self._trainer("gen_000", phase.step, callbacks)
        self._fit(trainer, model, data)
        self.runner.save(path, model.state_dict(), trainer.strategy)
        return model.eval()

    def _load_once(self, path: Path, overrides: dict[str, Any]) -> ImageClassifier:
        model = self.classifier.build(**overrides)
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()

    # Generator phase -----------------------------------------------------------------------------

    @functools.cached_property
    def _sample_metrics(self) -> GeneratedSampleMetrics:
        """What every generation's samples are measured for, in the order of their ``metrics.csv`` rows:
        class fidelity by the judge, the counts, u_t (data sets with subgroups), FID (unless
        ``--loop.fid_extractor none``) and diversity (precision, recall, KID). Built once per process: the judge and oracle are loaded once, the
        FID's real statistics computed (or read from their cache) once."""
        dm = self.datamodule
        metrics: list[SampleMetric] = [ClassFidelity(self._judge), SampleCounts()]
        oracle = self._subgroup_oracle()
        if oracle is not None:
            metrics.append(SubgroupBalance(oracle, dm.real.train, dm.num_classes, dm.num_subgroups))
        if self._fid is not None:
            metrics.append(self._fid)
        metrics.append(self._diversity)
        return GeneratedSampleMetrics(metrics)

    @functools.cached_property
    def _diversity(self) -> Diversity:
        """Precision, recall and KID against the real set, in the FID's feature space (the judge's
        penultimate features when FID is off), on as many real images as FID compares."""
        dm = self.datamodule
        real = dm.real.train.images
        if self._fid is not None:
            extractor, num_samples = self._fid.tracker.extractor, self._fid.tracker.num_samples
        else:
            extractor = penultimate_extractor(self._judge)
            num_samples = min(self.config.fid_samples, self._kept_per_class() * dm.num_classes, len(real))
        return Diversity(extractor, real, num_samples, self.config.seed, device=self._topology.device)

    @functools.cached_property
    def _judge(self) -> ImageClassifier:
        return self._load_once(self.runner.run.judge_weights, self._judge_args())

    def _subgroup_oracle(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Reads the subgroup of generated images: the data set's exact oracle (colour), else the trained
        cell classifier; ``None`` when the data set has no subgroups."""
        if self.datamodule.subgroup_oracle is not None:
            return self.datamodule.subgroup_oracle
        if self._cells is None:
            return None
        model = self._load_once(self.runner.run.subgroup_oracle_weights, self._oracle_args())
        groups = self._cells.num_subgroups
        return lambda images: model.predict_labels(images) % groups

    @functools.cached_property
    def _fid(self) -> FrechetDistance | None:
        """FID against the real training set, its statistics computed once per run and cached."""
        if self.config.fid_extractor == "none":
            return None
        real = self.datamodule.real.train.images
        kept = self._kept_per_class() * self.datamodule.num_classes
        num_samples = min(self.config.fid_samples, kept, len(real))
        if self.config.fid_extractor == "inception":
            extractor = InceptionFeatures(self.config.fid_inception_weights)
        else:
            extractor = penultimate_extractor(self._judge)
        tracker = FidTracker(
            extractor, num_samples, self.config.seed, self.config.fid_extractor, device=self._topology.device
        )
        cache = self.runner.run.fid_real_stats
        # Later generations' FID rests on this file: one that differs from its recorded hash is recomputed.
        trusted = self.runner.intact(cache)
        if cache.is_file() and self.runner.recorded(cache) and not trusted:
            rank_zero_warn(
                f"{cache} does not match the hash in {self.runner.run.manifest_file} (edited or damaged); "
                "recomputed the real set's FID statistics from the real training set"
            )
        tracker.set_real(real, cache_path=cache, use_cache=trusted)
        self.runner.record(cache)
        return FrechetDistance(tracker)

    def _controller(self, n: int) -> GenerationController:
        plan = GenerationPlan(
            generation=n,
            kept_per_class=self._kept_per_class(),
            class_names=self.datamodule.class_names,
            world_size=self._topology.world_size,
            grid_per_class=self.config.grid_per_class,
            human_review=self.config.human_review,
            resume_command=self.resume_command,
        )
        previous = self._load_classifier(n - 1, self.scorer_arch)
        return GenerationController(
            plan,
            self.runner,
            self.sample_filter,
            previous,
            self._sample_metrics,
            self._record,
            self.stop.check,
            self._pool_inputs,
        )

    @functools.cached_property
    def _pool_inputs(self) -> PoolInputs | None:
        """What the filter's pool-level selection reads: subgroups through the oracle, the real set's mix,
        the judge's features for ``diversity``; None when the data set has no subgroups and the selection
        needs no features (the per-sample filter alone)."""
        dm, selection = self.datamodule, self.sample_filter.selection
        oracle = self._subgroup_oracle()
        if oracle is None and selection != "diversity":
            return None
        real = dm.real.train
        real_mix = (
            subgroup_mix(real.labels, real.subgroups, dm.num_classes, dm.num_subgroups) if oracle else None
        )
        extractor = penultimate_extractor(self._judge) if selection == "diversity" else None
        return PoolInputs(oracle, dm.num_subgroups, real_mix, extractor)

    def _fit_generator(self, n: int) -> None:
        """Fit g_n on real + Q_{n-1}; at the end of the fit its ``GenerationController`` samples, filters
        and pushes the survivors (a fit finished before an interruption is not redone: its saved weights
        sample)."""
        controller = self._controller(n)
        phase = Phase.generator(n)
        if self.runner.done(phase):
            rank_zero_info(
                f"[selfloop] generation {n}/{self.config.generations} · generator · resuming after its fit"
            )
            strategy = self._topology.local_strategy()
            controller.resume(
                strategy, self._load_generator(n, f"sampling generation {n}").to(strategy.root_device)
            )
            return
        self.runner.begin(phase)
        generator = self._fresh_generator()
        self._prepare_data(phase)
        callbacks = [
            FiniteLossCheck(f"generation {n}, generator fit"),
            FitProgress(self.runner, phase),
            controller,
        ]
        # The generator's own step floor also stops early stopping-like requests from ending a fit before it.
        overrides: dict[str, Any] = {
            "max_epochs": self.config.generator_epochs,
            "min_steps": generator.min_steps,
        }
        if generator.max_steps is not None:
            overrides["max_steps"] = generator.max_steps
        if generator.ddp_find_unused_parameters and self.trainer_kwargs.get("strategy") == "ddp":
            overrides["strategy"] = "ddp_find_unused_parameters_true"
        trainer = self._trainer(f"gen_{n:03d}", "generator", callbacks, **overrides)
        self._fit(trainer, generator, self.datamodule)

    def _fresh_generator(self) -> ConditionalGenerator:
        generator = self.generator.build()
        generator.class_names = self.datamodule.class_names
        return generator

    def _load_generator(self, n: int, purpose: str) -> ConditionalGenerator:
        path = self.runner.run.generator_weights(n)
        if not self.runner.intact(path):
            raise MissingRunFileError(
                f"generator weights {path} are missing or damaged, and {purpose} needs them. Restore the file, "
                "or start a new run in another --loop.run_dir"
            )
        generator = self._fresh_generator()
        generator.load_generator_state(torch.load(path, weights_only=True))
        return generator

    def _repair_queue(self) -> None:
        """Rebuild every queue shard that is missing or does not match its recorded hash."""
        queue = self.runner.queue
        for shard in list(queue.shards):
            if queue.verify(shard):
                continue
            path = queue.folder / shard.file
            rank_zero_warn(
                f"queue shard {path} is missing or damaged (hash mismatch); rebuilding it from generation {shard.generation}'s candidates"
            )
            self._fit_judge()
            self._fit_subgroup_oracle()
            self._controller(shard.generation).rebuild_shard(
                self._topology.local_strategy(),
                lambda g=shard.generation, p=path: self._load_generator(
                    g, f"rebuilding the queue shard {p} (its saved candidates are missing or damaged too)"
                ),
            )

    @functools.cached_property
    def _topology(self) -> Topology:
        return Topology.of(self.trainer_kwargs)

    def _kept_per_class(self) -> int:
        total = self.config.samples_count(len(self.datamodule.real.train))
        return math.ceil(total / self.datamodule.num_classes)

    # Classifier phase ----------------------------------------------------------------------------

    def _fit_classifiers(self, n: int) -> None:
        """Fit and evaluate generation n's panel: one fit after another, or ``--loop.panel_workers`` at once."""
        if self.config.panel_workers == 1:
            for arch in self.archs:
                if (fit := self._classifier_fit(n, arch)) is not None:
                    model, metrics, strategy = fit.run(before_fit=self.stop.check)
                    self._finish_classifier(n, arch, model.state_dict(), metrics, strategy)
            return
        fits = [fit for arch in self.archs if (fit := self._classifier_fit(n, arch)) is not None]

        def finish(fit: ClassifierFit, state: dict[str, torch.Tensor], metrics: dict) -> None:
            self._finish_classifier(n, fit.arch, state, metrics, self._topology.local_strategy())

        fit_concurrently(fits, self.config.panel_workers, finish, self.stop.check)

    def _classifier_fit(self, n: int, arch: str) -> ClassifierFit | None:
        """Generation n's fit of ``arch``, prepared (``None`` when the phase is done)."""
        phase = Phase.classifier(n, arch)
        if self.runner.done(phase):
            return None
        if self.runner.manifest.is_done(phase.key):
            self._check_retrainable(n, arch)
        seed = self.runner.begin(phase)
        self._prepare_data(phase)
        callbacks = self._fit_callbacks(f"generation {n}, classifier {arch}")
        if self.config.panel_workers == 1:
            callbacks.append(FitProgress(self.runner, phase))
            return ClassifierFit(
                self.classifier,
                arch,
                seed,
                self.datamodule,
                self._trainer_kwargs(f"gen_{n:03d}", arch, callbacks),
            )
        # Fitted later in a worker: its own copy of the data module (the next phase prepares the shared one
        # anew), its own device, and TensorBoard alone for its curves (user loggers are not process-safe).
        kwargs = self._trainer_kwargs(
            f"gen_{n:03d}", arch, callbacks, user_loggers=False
        ) | self._worker_placement(arch)
        data = copy.copy(self.datamodule)
        data.trainer = None  # the last phase's Trainer: not the worker's, and not picklable
        return ClassifierFit(self.classifier, arch, seed, data, kwargs)

    def _worker_placement(self, arch: str) -> dict[str, Any]:
        """A concurrent fit's device (round-robin over the visible GPUs) and no progress bar (several
        would interleave)."""
        placement: dict[str, Any] = {"enable_progress_bar": False}
        if self._topology.device.type == "cuda":
            placement["devices"] = [self.archs.index(arch) % torch.cuda.device_count()]
        return placement

    def _finish_classifier(
        self, n: int, arch: str, state: dict[str, torch.Tensor], metrics: dict, strategy: Strategy
    ) -> None:
        """Save f_n's weights, write its metrics rows and mark its phase finished."""
        phase = Phase.classifier(n, arch)
        self.runner.save(self.runner.run.classifier_weights(n, arch), state, strategy)
        labels = self.datamodule.test_set.labels
        self._record(n, arch, {**metrics, CHANCE_P: chance_p_value(metrics["acc"], labels)})
        if warning := chance_warning(metrics["acc"], labels):
            rank_zero_warn(f"generation {n} · {arch}: {warning}")
        self.runner.complete(phase)
        self._end_phase()

    def _check_retrainable(self, n: int, arch: str) -> None:
        """A finished f_n whose weights were lost is retrained on generation n's own training data (same
        seed, so the same model and metrics); refused in one line when that data has left the queue."""
        path = self.runner.run.classifier_weights(n, arch)
        needed = self.config.queued_generations(n)
        missing = sorted(set(needed) - set(self.runner.queue.generations))
        if missing:
            raise MissingRunFileError(
                f"classifier weights {path} are missing or damaged, and they cannot be retrained: generation "
                f"{n}'s training data included the samples of generation(s) {missing}, which have left the queue "
                "since. Restore the file, or start a new run in another --loop.run_dir"
            )
        rank_zero_warn(
            f"classifier weights {path} are missing or damaged; retraining them on generation {n}'s data"
        )

    def _load_classifier(self, n: int, arch: str) -> ImageClassifier:
        """f_n of ``arch``; lost or damaged weights are retrained first (or refused, see ``_check_retrainable``)."""
        path = self.runner.run.classifier_weights(n, arch)
        fit = None if self.runner.intact(path) else self._classifier_fit(n, arch)
        if fit is not None:
            model, metrics, strategy = fit.run(before_fit=self.stop.check)
            self._finish_classifier(n, arch, model.state_dict(), metrics, strategy)
        model = self.classifier.build(arch=arch)
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()

    # Shared --------------------------------------------------------------------------------------

    def _prepare_data(self, phase: Phase) -> None:
        """Rebuild the train set from real (its share, ``--loop.real_fraction``) + queue, and key the
        loader order to this phase."""
        # The queue as it stood for this phase: after generation n-1's filter for g_n, after n's for f_n.
        stage = phase.generation - 1 if phase.step == "generator" else phase.generation
        generated = self.runner.queue.load(self.config.queued_generations(stage))
        share = None
        if generated is not None and self.config.real_fraction < 1:
            seed = Phase.generator(phase.generation).seed(self.runner.base_seed, "real_share")
            labels = self.datamodule.real.train.labels
            share = stratified_split(
                labels, (self.config.real_fraction,), torch.Generator().manual_seed(seed)
            )[0]
        self.datamodule.set_generated(generated, share)
        self.datamodule.loader_seed = phase.seed(self.runner.base_seed, "loader")

    def _fit_callbacks(self, label: str) -> list[Callback]:
        """Every classifier fit's: stop on a non-finite loss (named by ``label``), early stopping."""
        return [
            FiniteLossCheck(label),
            EarlyStopping("val_loss", patience=self.config.early_stopping_patience, mode="min"),
        ]

    def _fit(self, trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule) -> None:
        # A stop signal that landed between phases is honoured here: Trainer.fit resets Lightning's flag.
        self.stop.check()
        trainer.fit(model, datamodule=datamodule)

    def _trainer(self, name: str, version: str, callbacks: list[Callback], **overrides: Any) -> L.Trainer:
        return L.Trainer(**self._trainer_kwargs(name, version, callbacks, **overrides))

    def _trainer_kwargs(
        self,
        name: str,
        version: str,
        callbacks: list[Callback],
        *,
        user_loggers: bool = True,
        **overrides: Any,
    ) -> dict[str, Any]:
        """A phase's Trainer arguments: the ``trainer`` group, the user's callbacks and ``callbacks``, the
        phase's TensorBoard logger under ``<name>/<version>`` (and the user's loggers, prefixed the same)."""
        kwargs = {**self.trainer_kwargs, **overrides}
        kwargs["callbacks"] = copy.deepcopy(self.user_callbacks) + callbacks
        own = TensorBoardLogger(self.runner.run.phase_log_dir(), name=name, version=version)
        users = self.user_loggers if user_loggers else []
        kwargs["logger"] = [own, *(PhasePrefixed(user, f"{name}/{version}") for user in users)]
        kwargs["default_root_dir"] = str(self.runner.run.path)
        return kwargs
