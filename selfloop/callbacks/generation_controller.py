"""After a generator fit: sample, filter, and push the survivors into the stacking queue."""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.filtering.sample_filter import SampleFilter
from selfloop.filtering.scorers import ScoringContext
from selfloop.generators.base import ConditionalGenerator
from selfloop.io import atomic_torch_save
from selfloop.run_state import RunState
from selfloop.sample_grid import save_sample_grid
from selfloop.seeding import phase_seed


@dataclass
class GenerationPlan:
    """What one generation produces.

    Args:
        generation: n >= 1.
        seed: the run's base seed.
        kept_per_class: survivors per class (S / number of classes).
        class_names: a name per class.
        grid_per_class: kept samples per class shown in the sample grid.
    """

    generation: int
    seed: int
    kept_per_class: int
    class_names: list[str]
    grid_per_class: int = 8


class GenerationController(Callback):
    """Owns what happens at the end of a generator fit in generation n.

    1. save the generator's weights (``g<n>/generator``),
    2. sample ``candidates_per_class`` images per class and save them (``g<n>/sample``),
    3. score them with the filter (using f_{n-1}), keep the best ``kept_per_class`` per class,
       record ``gen_label_acc`` of raw and kept samples as judged by f_0,
    4. write the shard, push it into the queue, make the manifest durable, then delete evicted
       shards (``g<n>/filter``), and save a grid of kept samples.

    Each step is recorded in the manifest, so a resumed run restarts at the first unfinished one
    (``resume`` runs steps 2-4 from saved weights or candidates without refitting).

    Args:
        plan: what this generation produces.
        state: run directory, manifest, queue and metrics log.
        sample_filter: the expert-guided filter.
        previous_classifier: f_{n-1} of the scorer arch (used by the uncertainty scorer).
        judge: f_0 of the scorer arch (real data only) that measures class fidelity.
    """

    def __init__(
        self,
        plan: GenerationPlan,
        state: RunState,
        sample_filter: SampleFilter,
        previous_classifier: ImageClassifier,
        judge: ImageClassifier,
    ) -> None:
        self.plan = plan
        self.state = state
        self.sample_filter = sample_filter
        self.previous_classifier = previous_classifier
        self.judge = judge

    def key(self, step: str) -> str:
        return f"g{self.plan.generation}/{step}"

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert isinstance(pl_module, ConditionalGenerator)
        self._save_generator(trainer, pl_module)
        self.resume(trainer, pl_module)

    def resume(self, trainer: L.Trainer, generator: ConditionalGenerator) -> None:
        """Run the sampling and filtering steps that are not finished yet."""
        run = self.state.run
        n = self.plan.generation
        if not self.state.manifest.is_done(self.key("sample")):
            self._sample(trainer, generator)
        if not self.state.manifest.is_done(self.key("filter")):
            candidates = torch.load(run.candidates_file(n), map_location="cpu", weights_only=True)
            self._filter(trainer, candidates["images"], candidates["labels"], generator.device)

    def _save_generator(self, trainer: L.Trainer, generator: ConditionalGenerator) -> None:
        if trainer.is_global_zero:
            atomic_torch_save(self.state.run.generator_weights(self.plan.generation), generator.generator_state())
        trainer.strategy.barrier()
        self.state.complete(self.key("generator"))

    def _sample(self, trainer: L.Trainer, generator: ConditionalGenerator) -> None:
        plan = self.plan
        per_class = self.sample_filter.candidates_per_class(plan.kept_per_class)
        labels = torch.arange(len(plan.class_names)).repeat_interleave(per_class)
        seed = phase_seed(plan.seed, plan.generation, "sample")
        rank_zero_info(f"[selfloop] generation {plan.generation}: sampling {len(labels)} candidates")
        images = generator.sample(labels, seed=seed)
        if trainer.is_global_zero:
            atomic_torch_save(self.state.run.candidates_file(plan.generation), {"images": images, "labels": labels})
        trainer.strategy.barrier()
        self.state.complete(self.key("sample"), seed)

    def _filter(self, trainer: L.Trainer, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> None:
        plan = self.plan
        seed = phase_seed(plan.seed, plan.generation, "filter")
        context = ScoringContext(plan.class_names, self.previous_classifier.to(device), seed, device)
        result = self.sample_filter(images, labels, context, plan.kept_per_class)
        kept_images, kept_labels = images[result.keep], labels[result.keep]

        judge = self.judge.to(device)
        raw_acc = (judge.predict_labels(images) == labels).float().mean().item()
        kept_acc = (judge.predict_labels(kept_images) == kept_labels).float().mean().item()
        rank_zero_info(
            f"[selfloop] generation {plan.generation}: kept {len(kept_labels)}/{len(labels)}, "
            f"gen_label_acc raw {raw_acc:.3f} kept {kept_acc:.3f}"
        )
        self.state.metrics.log(
            plan.generation,
            "generator",
            {
                "gen_label_acc": raw_acc,
                "gen_label_acc_kept": kept_acc,
                "num_candidates": float(len(labels)),
                "num_kept": float(len(kept_labels)),
            },
        )
        evicted = []
        if trainer.is_global_zero:
            evicted = self.state.queue.push(plan.generation, kept_images, kept_labels, result.scores[result.keep])
            save_sample_grid(
                self.state.run.sample_grid(plan.generation), kept_images, kept_labels, plan.grid_per_class
            )
        # Only rank 0 wrote the shard; every rank adopts its view of the queue.
        shards, evicted = trainer.strategy.broadcast((self.state.queue.shards, evicted), src=0)
        self.state.queue.shards = shards
        self.state.complete(self.key("filter"), seed)
        if trainer.is_global_zero:
            self.state.queue.discard(evicted)
        trainer.strategy.barrier()
