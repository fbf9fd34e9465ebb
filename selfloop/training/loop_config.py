"""The ``loop`` config group: how many generations, how much generated data, which panel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from jsonargparse.typing import PositiveInt

from selfloop.classifiers.backbones import Arch


@dataclass
class LoopConfig:
    """Settings of the self-consuming loop.

    Args:
        generations: N, the generations after generation 0 (classifiers on real data only). Each
            generation n = 1..N trains a fresh generator on real + queue, samples, filters, pushes
            to the queue, and trains and evaluates the classifier panel on real + queue.
        queue_capacity: how many generations of samples the stacking queue keeps (paper: 3); used by
            ``data_policy: queue`` only.
        data_policy: which generated samples every later training set holds (the data axis of the
            model-collapse literature): ``queue`` (the paper's data stacking: the last
            ``queue_capacity`` generations), ``accumulate`` (every generation's samples are kept;
            Gerstgrasser et al. 2024, "Is model collapse inevitable?") or ``replace`` (only the newest
            generation's; Shumailov et al. 2024, "AI models collapse when trained on recursively
            generated data").
        real_fraction: the share of the real training set in every training set that also holds
            generated samples: 1 (the paper) keeps all of it; 0 trains on generated samples alone (the
            fully synthetic loop of Alemohammad et al. 2024, "Self-consuming generative models go MAD").
            Generation 0's classifiers and generation 1's generator always train on the whole real set.
            Generation n's share is a class-stratified subset drawn afresh with generation n's seed, the
            same for its generator and its classifiers.
        samples_per_generation: survivors added per generation: an int is a count, a float is a
            fraction of the real training set (the paper's mix ratio p).
        seed: base seed; every phase is seeded from (seed, generation, phase, arch).
        archs: the classifier panel trained every generation (default: ``--model.arch`` alone).
        scorer_arch: the arch whose f_{n-1} scores samples for the filter, and of the independent judge
            of ``gen_label_acc`` (trained once on real data with its own seed; default: the first of
            ``archs``).
        panel_workers: how many classifier fits of a generation run at once, each in a process of its own
            (1: one after another in this process). The fits of a generation depend only on its training
            set, so the results are the same; concurrent fits go round-robin over the visible GPUs
            (several per GPU when there are more workers than GPUs) and share the CPU threads. Their
            per-fit curves go to TensorBoard only (``--trainer.logger`` still gets every generation's
            metrics); cannot be combined with a multi-process (DDP) ``trainer``.
        generator_epochs: epochs of every generator fit.
        early_stopping_patience: validation epochs without improvement before a classifier stops
            (its epoch cap is ``--trainer.max_epochs``).
        grid_per_class: kept samples per class in each generation's PNG grid.
        human_review: stop after filtering each generation so a person can review the filter's
            decisions (contact sheet + ``review.csv`` in ``generations/gen_<n>/review/``); rerunning
            the same command applies the edited ``keep`` column and goes on.
        fid_extractor: features for FID per generation: ``domain`` (penultimate features of the
            judge, the scorer arch trained on real data only; suits 28-32 px data),
            ``inception`` (the standard FID Inception-v3, from ``fid_inception_weights``) or ``none``.
        fid_samples: N, images per FID computation (fixed per run; capped by the samples per
            generation and the real set size).
        fid_inception_weights: local file of the FID Inception weights
            (``weights-inception-2015-12-05-6726825d.pth``; default: the torch hub cache).
        root: parent folder of runs.
        name: runs go to ``<root>/<name>/version_<k>``.
        run_dir: an explicit run directory (overrides root/name/version).
    """

    generations: PositiveInt = 3
    queue_capacity: PositiveInt = 3
    data_policy: Literal["queue", "accumulate", "replace"] = "queue"
    real_fraction: float = 1.0
    samples_per_generation: int | float = 0.5
    seed: int = 0
    archs: list[Arch] | None = None
    scorer_arch: Arch | None = None
    panel_workers: PositiveInt = 1
    generator_epochs: PositiveInt = 30
    early_stopping_patience: PositiveInt = 5
    grid_per_class: PositiveInt = 8
    human_review: bool = False
    fid_extractor: Literal["domain", "inception", "none"] = "domain"
    fid_samples: PositiveInt = 500
    fid_inception_weights: str | None = None
    root: str = "lightning_logs"
    name: str = "selfloop"
    run_dir: str | None = None

    def problems(self, default_arch: str) -> list[str]:
        """Messages naming each flag with an invalid value (empty when all are valid)."""
        found = []
        if isinstance(self.samples_per_generation, bool) or self.samples_per_generation <= 0:
            found.append(
                f"--loop.samples_per_generation must be a positive count (int) or a positive fraction of the "
                f"real training set (float); got {self.samples_per_generation}"
            )
        if not 0 <= self.real_fraction <= 1:
            found.append(f"--loop.real_fraction must be in [0, 1], got {self.real_fraction}")
        panel = self.panel(default_arch)
        if len(set(panel)) != len(panel):
            found.append(f"--loop.archs lists an arch twice: {panel}")
        if self.scorer_arch is not None and self.scorer_arch not in panel:
            found.append(f"--loop.scorer_arch {self.scorer_arch!r} is not in the panel --loop.archs {panel}")
        return found

    def panel(self, default_arch: str) -> list[str]:
        """The archs trained every generation."""
        return list(self.archs) if self.archs else [default_arch]

    def scorer(self, default_arch: str) -> str:
        return self.scorer_arch or self.panel(default_arch)[0]

    def kept_generations(self) -> int | None:
        """How many generations of samples the training sets hold (``None``: all of them)."""
        return {"queue": self.queue_capacity, "accumulate": None, "replace": 1}[self.data_policy]

    def queued_generations(self, n: int) -> list[int]:
        """The generations whose samples the queue holds once generation n is filtered (none for n = 0)."""
        kept = self.kept_generations()
        generations = list(range(1, n + 1))
        return generations if kept is None else generations[-kept:]

    def samples_count(self, real_train_size: int) -> int:
        """S as a count of images."""
        if isinstance(self.samples_per_generation, float):
            return max(1, round(self.samples_per_generation * real_train_size))
        return self.samples_per_generation
