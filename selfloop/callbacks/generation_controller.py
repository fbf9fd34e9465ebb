"""After a generator fit: sample, filter, and push the survivors into the stacking queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch import Tensor
from typing_extensions import override

from selfloop.callbacks.generated_sample_metrics import GeneratedSampleMetrics, GeneratedSamples
from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.core.catalogue import GENERATOR_ARCH
from selfloop.filtering.audit import write_audit
from selfloop.filtering.review import ReviewPending, export_review, read_review
from selfloop.filtering.sample_filter import FilterResult, SampleFilter
from selfloop.filtering.scorers import ScoringContext
from selfloop.generators.base import ConditionalGenerator
from selfloop.metrics.diversity import features_of
from selfloop.run.phases import Phase, PhaseRunner
from selfloop.run.sample_grid import save_sample_grid


@dataclass
class GenerationPlan:
    """What one generation produces.

    Args:
        generation: n >= 1.
        kept_per_class: survivors per class (S / number of classes).
        class_names: a name per class.
        grid_per_class: kept samples per class shown in the sample grid.
        world_size: the run's processes: candidates are sampled in that many slices, slice r with seed
            + r, whether by that many ranks or, on resume, by one process.
        human_review: stop for a person's review of the filter's decisions.
        resume_command: the command that resumes this run (shown when review stops it).
    """

    generation: int
    kept_per_class: int
    class_names: list[str]
    world_size: int = 1
    grid_per_class: int = 8
    human_review: bool = False
    resume_command: str | None = None


@dataclass
class PoolInputs:
    """What the filter's pool-level selections read of the candidates, beyond their scores.

    Args:
        oracle: reads each image's subgroup (``AMBIGUOUS`` where it cannot); None without subgroups.
        num_subgroups: G.
        real_mix: the real training set's subgroup shares per class (``balance_target: real``).
        extractor: the feature module ``diversity`` spreads the kept samples in (the judge's penultimate
            features); None when the selection needs no features.
    """

    oracle: Callable[[Tensor], Tensor] | None
    num_subgroups: int
    real_mix: Tensor | None = None
    extractor: torch.nn.Module | None = None

    def filter_kwargs(self, images: Tensor, device: torch.device) -> dict[str, Any]:
        """The keyword arguments of ``SampleFilter.__call__`` for these candidates."""
        kwargs: dict[str, Any] = {}
        if self.oracle is not None:
            kwargs.update(subgroups=self.oracle(images).cpu().long(), num_subgroups=self.num_subgroups)
            kwargs["real_mix"] = self.real_mix
        if self.extractor is not None:
            kwargs["features"] = features_of(self.extractor, images, device=device)
        return kwargs


@dataclass
class Survivors:
    """The filter's survivors of one generation, with what was measured on the way."""

    images: Tensor
    labels: Tensor
    scores: Tensor
    metrics: dict[str, float]


class GenerationController(Callback):
    """Owns what happens at the end of a generator fit in generation n.

    1. save the generator's weights (``Phase.generator``),
    2. sample ``candidates_per_class`` images per class and save them (``Phase.sample``),
    3. score them with the filter (using f_{n-1}), keep the best ``kept_per_class`` per class
       (optionally after a person's review), write the audit trail (every candidate's scores and
       decision, a score histogram, the borderline samples), and measure the candidates and the
       survivors (``measure``: class fidelity by the independent judge, u_t, FID) and ``record`` the values,
    4. write the shard, push it into the queue, make the manifest durable, then delete evicted
       shards (``Phase.filter``), and save a grid of kept samples.

    Each step is recorded in the manifest with the hash of the file it wrote, so a resumed run
    restarts at the first unfinished step (``resume``), and a damaged shard is rebuilt from the
    saved candidates (``rebuild_shard``) instead of being used. Both run outside any fit, given a
    Lightning ``Strategy`` (a ``SingleDeviceStrategy`` in the one process that resumes), and write
    what an uninterrupted run writes.

    Args:
        plan: what this generation produces.
        runner: the run's phases: run directory, manifest, queue and metrics log.
        sample_filter: the expert-guided filter.
        previous_classifier: f_{n-1} of the scorer arch (used by the uncertainty scorer).
        measure: what is measured on the candidates and the survivors.
        record: records the generation's metrics (``record(generation, arch, metrics)``) before the
            filter step is marked finished, so a finished step always has its metrics rows.
        stop_check: raises when a stop signal arrived; called between sampling, filtering and pushing.
        pool: what the filter's pool-level selections read (subgroups, the real mix, features); None for
            the per-sample selection alone.
    """

    def __init__(
        self,
        plan: GenerationPlan,
        runner: PhaseRunner,
        sample_filter: SampleFilter,
        previous_classifier: ImageClassifier,
        measure: GeneratedSampleMetrics,
        record: Callable[[int, str, dict[str, float]], None],
        stop_check: Callable[[], None] = lambda: None,
        pool: PoolInputs | None = None,
    ) -> None:
        self.plan = plan
        self.runner = runner
        self.sample_filter = sample_filter
        self.previous_classifier = previous_classifier
        self.measure = measure
        self.record = record
        self.stop_check = stop_check
        self.pool = pool

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert isinstance(pl_module, ConditionalGenerator)
        # Lightning's teardown has moved the module to the CPU by now: sample on the training device.
        pl_module.to(trainer.strategy.root_device)
        n = self.plan.generation
        self.runner.save(self.runner.run.generator_weights(n), pl_module.generator_state(), trainer.strategy)
        if trainer.is_global_zero:
            # e.g. the LoRA in the format a stock diffusers pipeline loads
            pl_module.save_artifacts(self.runner.run.generation_dir(n))
        self.runner.complete(Phase.generator(n))
        self.resume(trainer.strategy, pl_module)

    def resume(self, strategy: Strategy, generator: ConditionalGenerator) -> None:
        """Run the sampling and filtering steps that are not finished yet."""
        n = self.plan.generation
        if not self.runner.done(Phase.sample(n)):
            self.stop_check()
            self._sample(strategy, generator)
        if not self.runner.done(Phase.filter(n)):
            self.stop_check()
            survivors = self._select(*self._load_candidates(), strategy)
            self.stop_check()
            self._push(strategy, survivors)

    def rebuild_shard(self, strategy: Strategy, load_generator: Callable[[], ConditionalGenerator]) -> None:
        """Rewrite this generation's damaged queue shard from its saved candidates.

        Filtering is deterministic (fixed seeds, saved f_{n-1}), so the rebuilt shard is the one the
        run wrote the first time; candidates that are damaged too are sampled again from the saved
        generator weights.
        """
        n = self.plan.generation
        if not self.runner.done(Phase.sample(n)):
            self._sample(strategy, load_generator().to(strategy.root_device))
        survivors = self._select(*self._load_candidates(), strategy)
        if strategy.is_global_zero:
            rebuilt = self.runner.queue.rewrite(n, survivors.images, survivors.labels, survivors.scores)
            if not rebuilt:
                rank_zero_warn(
                    f"generation {n}: the rebuilt shard differs from the original; the manifest now records it"
                )
        self.runner.queue.shards = strategy.broadcast(self.runner.queue.shards, src=0)
        self.runner.save_manifest()
        strategy.barrier()

    def _load_candidates(self) -> tuple[Tensor, Tensor]:
        candidates = torch.load(self.runner.run.candidates_file(self.plan.generation), weights_only=True)
        return candidates["images"], candidates["labels"]

    def _sample(self, strategy: Strategy, generator: ConditionalGenerator) -> None:
        plan = self.plan
        per_class = self.sample_filter.candidates_per_class(plan.kept_per_class)
        labels = torch.arange(len(plan.class_names)).repeat_interleave(per_class)
        phase = Phase.sample(plan.generation)
        seed = phase.seed(self.runner.base_seed)
        rank_zero_info(f"[selfloop] generation {plan.generation}: sampling {len(labels)} candidates")
        images = _sample_across_ranks(strategy, generator, labels, seed, plan.world_size)
        candidates = {"images": images, "labels": labels}
        self.runner.save(self.runner.run.candidates_file(plan.generation), candidates, strategy)
        self.runner.complete(phase)

    def _select(self, images: Tensor, labels: Tensor, strategy: Strategy) -> Survivors:
        plan = self.plan
        device = strategy.root_device
        seed = Phase.filter(plan.generation).seed(self.runner.base_seed)
        context = ScoringContext(plan.class_names, self.previous_classifier.to(device), seed, device)
        pool = self.pool.filter_kwargs(images, device) if self.pool is not None else {}
        result = self.sample_filter(images, labels, context, plan.kept_per_class, **pool)
        if plan.human_review:
            result = result.with_keep(self._reviewed(images, labels, result), labels)
        # Rank 0 decides; every rank trains on exactly the samples rank 0 writes into the shard.
        result = replace(result, keep=strategy.broadcast(result.keep, src=0))
        if self._is_global_zero():
            write_audit(
                self.runner.run.audit_dir(plan.generation),
                plan.generation,
                labels,
                result,
                images,
                plan.class_names,
            )
        metrics = self.measure(GeneratedSamples(images, labels, result.keep, device))
        if self.sample_filter.selection != "score":
            metrics.update(result.cell_metrics())  # what the pool-level rule kept and missed per cell
        return Survivors(images[result.keep], labels[result.keep], result.scores[result.keep], metrics)

    def _reviewed(self, images: Tensor, labels: Tensor, result: FilterResult) -> Tensor:
        """The keep mask after a person's review; the first time, export the proposal and stop."""
        phase = Phase.review_exported(self.plan.generation)
        folder = self.runner.run.review_dir(self.plan.generation)
        if self.runner.done(phase):
            return read_review(folder, len(labels))
        if self._is_global_zero():
            export_review(folder, images, labels, result, self.plan.class_names)
        self.runner.complete(phase)
        raise ReviewPending(folder, self.plan.resume_command)

    @staticmethod
    def _is_global_zero() -> bool:
        return rank_zero_only.rank == 0

    def _push(self, strategy: Strategy, survivors: Survivors) -> None:
        plan = self.plan
        self.record(plan.generation, GENERATOR_ARCH, survivors.metrics)
        queue = self.runner.queue
        evicted = []
        if strategy.is_global_zero:
            evicted = queue.push(plan.generation, survivors.images, survivors.labels, survivors.scores)
            grid = self.runner.run.sample_grid(plan.generation)
            save_sample_grid(grid, survivors.images, survivors.labels, plan.grid_per_class)
        # Only rank 0 wrote the shard; every rank adopts its view of the queue.
        queue.shards, evicted = strategy.broadcast((queue.shards, evicted), src=0)
        self.runner.complete(Phase.filter(plan.generation))
        if strategy.is_global_zero:
            queue.discard(evicted)
        strategy.barrier()


def _sample_across_ranks(
    strategy: Strategy, generator: ConditionalGenerator, labels: Tensor, seed: int, world_size: int
) -> Tensor:
    """Slice r of ``labels`` (of ``world_size``) is sampled with seed + r, and the slices are joined in
    order: by every rank its own slice, or by one process all of them, with the same result."""
    slices = labels.tensor_split(world_size)
    if getattr(strategy, "world_size", 1) == 1:
        return torch.cat([generator.sample(s, seed=seed + r) for r, s in enumerate(slices)])
    rank = strategy.global_rank
    mine = generator.sample(slices[rank], seed=seed + rank)
    # all_gather needs equal shapes: pad every slice to the longest, then trim.
    size = max(len(s) for s in slices)
    padded = torch.zeros(size, *mine.shape[1:], dtype=mine.dtype)
    padded[: len(mine)] = mine
    gathered = strategy.all_gather(padded.to(strategy.root_device)).cpu()
    return torch.cat([gathered[r][: len(slices[r])] for r in range(world_size)])
