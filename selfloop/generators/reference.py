"""Reference generators whose answer is known by construction: they replay memorised images.

``PerfectGenerator`` returns real training images, so the loop changes nothing in distribution: any
bias that grows across generations with it comes from the classifiers or the filter, never from
generation. ``DensitySeekingGenerator`` over-draws each class's most frequent subgroup by a known
factor, so the growth of the majority share through the queue can be computed exactly.

Both "train" in seconds: a fit memorises the data in ``on_fit_start`` and stops at the first batch
whatever ``max_epochs`` is, without running a single optimisation step. Select them in YAML with::

    generator:
      class_path: selfloop.generators.reference.DensitySeekingGenerator
      init_args:
        tilt: 2.0
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn
from typing_extensions import override

from selfloop.data.base import SelfLoopDataModule
from selfloop.data.image_set import ImageSet
from selfloop.generators.base import ConditionalGenerator

__all__ = ["DensitySeekingGenerator", "PerfectGenerator"]


class _MemorisingGenerator(ConditionalGenerator):
    """A generator that memorises images at the start of a fit and samples by resampling them.

    The memory (uint8 images, labels, subgroups) lives in the module's ``state_dict`` as its extra
    state, so the default ``generator_state`` / ``load_generator_state`` save and restore it and a
    resumed run samples the same images. It stays on the CPU (``sample`` returns CPU images anyway)
    and is not a buffer, so DDP never broadcasts it.
    """

    def __init__(self, num_classes: int, channels: int, image_size: int) -> None:
        super().__init__(num_classes, channels, image_size)
        self.automatic_optimization = False
        # DDP refuses a module without a trainable parameter; this one is never used.
        self._anchor = nn.Parameter(torch.zeros(1))
        self._memory = ImageSet(
            torch.empty(0, channels, image_size, image_size, dtype=torch.uint8),
            torch.empty(0, dtype=torch.long),
            torch.empty(0, dtype=torch.long),
        )

    @property
    def memory(self) -> ImageSet:
        """The memorised images, labels and subgroups (empty before a fit or a state load)."""
        return self._memory

    def _memorise(self, datamodule: SelfLoopDataModule) -> ImageSet:
        """What to remember from the data module at the start of a fit."""
        raise NotImplementedError

    def _weights(self, members: Tensor) -> Tensor:
        """Relative draw probabilities of the memorised images ``members`` (indices of one class)."""
        return torch.ones(len(members), dtype=torch.float64)

    @override
    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if not isinstance(datamodule, SelfLoopDataModule):
            raise ValueError(
                f"{type(self).__name__} memorises a SelfLoopDataModule: fit it with "
                "Trainer.fit(generator, datamodule=...), not with bare dataloaders"
            )
        self._set_memory(self._memorise(datamodule))

    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int:
        # Memorising is the whole training: end the fit now rather than after max_epochs passes.
        self.trainer.should_stop = True
        return -1

    @override
    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        """Nothing to learn (never reached: ``on_train_batch_start`` skips every batch)."""

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Lightning warns about a fit without an optimizer; this one never steps.
        return torch.optim.SGD([self._anchor], lr=0.0)

    @override
    def get_extra_state(self) -> dict[str, Tensor]:
        return {
            "images": self._memory.images,
            "labels": self._memory.labels,
            "subgroups": self._memory.subgroups,
        }

    @override
    def set_extra_state(self, state: dict[str, Tensor]) -> None:
        self._set_memory(ImageSet(state["images"].cpu(), state["labels"].cpu(), state["subgroups"].cpu()))

    def _set_memory(self, memory: ImageSet) -> None:
        expected = (self.channels, self.image_size, self.image_size)
        if len(memory) and tuple(memory.images.shape[1:]) != expected:
            raise ValueError(
                f"{type(self).__name__} was built for {expected} images but got "
                f"{tuple(memory.images.shape[1:])}; --generator.init_args.channels / image_size must match the data"
            )
        self._memory = ImageSet(
            memory.images.detach().cpu().contiguous(),
            memory.labels.detach().cpu().long(),
            memory.subgroups.detach().cpu().long(),
        )

    @override
    @torch.no_grad()
    def sample(self, labels: Tensor, seed: int, batch_size: int = 256) -> Tensor:
        """Draw, for every label, one memorised image of that class (with replacement).

        Classes are visited in increasing order with one ``torch.Generator`` seeded by ``seed``, so
        the result depends only on the memory, ``labels`` and ``seed``. ``batch_size`` is unused:
        resampling needs no forward pass.

        Raises:
            ValueError: before a fit (or ``load_generator_state``), or for a class with no memorised image.
        """
        labels = labels.detach().cpu().long()
        out = torch.empty(len(labels), self.channels, self.image_size, self.image_size, dtype=torch.uint8)
        if not len(labels):
            return out
        memory = self._memory
        if not len(memory):
            raise ValueError(
                f"{type(self).__name__} has memorised nothing yet: fit it on a data module or load a saved state before sampling"
            )
        generator = torch.Generator().manual_seed(seed)
        for c in labels.unique().tolist():
            positions = (labels == c).nonzero().flatten()
            members = (memory.labels == c).nonzero().flatten()
            if not len(members):
                raise ValueError(
                    f"{type(self).__name__} cannot sample class {c}: it memorised no image of it"
                )
            draws = torch.multinomial(
                self._weights(members), len(positions), replacement=True, generator=generator
            )
            out[positions] = memory.images[members[draws]]
        return out


class PerfectGenerator(_MemorisingGenerator):
    """The ideal generator: it returns real training images of the requested classes.

    A fit memorises the real training split only (``datamodule.real.train``, never the queue), and
    ``sample`` resamples those images uniformly with replacement within each class, seeded by
    ``seed``. Its samples follow the real distribution exactly in every generation, so a loop run
    with it isolates what the classifiers and the filter do on their own.

    Args:
        num_classes: classes to condition on (linked from the data set).
        channels: image channels (linked from the data set).
        image_size: image side (linked from the data set).
    """

    def __init__(self, num_classes: int = 10, channels: int = 3, image_size: int = 32) -> None:
        super().__init__(num_classes, channels, image_size)
        self.save_hyperparameters()

    @override
    def _memorise(self, datamodule: SelfLoopDataModule) -> ImageSet:
        return datamodule.real.train


class DensitySeekingGenerator(_MemorisingGenerator):
    """A generator that over-produces each class's most frequent subgroup by a known factor.

    A fit memorises its whole training set (``datamodule.train_set``: real images plus the queue)
    and reads every image's subgroup with the data set's exact subgroup oracle
    (``datamodule.subgroup_oracle``). Let ``p(g|c)`` be the share of subgroup g among the memorised
    images of class c and ``m_c = argmax_g p(g|c)`` its majority subgroup (ties: the lowest id). An
    image the oracle cannot read (id -1, e.g. a blank or mixed-colour generated digit) counts in
    ``p(.|c)`` as one more subgroup that is never the majority.
    Sampling class c draws subgroup g with probability

        q(g|c) = p(g|c) * t^[g = m_c] / (t * p(m_c|c) + 1 - p(m_c|c)),    t = ``tilt``,

    and, within a subgroup, a memorised image uniformly (equivalently: every memorised image of class
    c is drawn with weight t if its subgroup is m_c, else 1). The majority share thus goes from p to
    ``t p / (t p + 1 - p)``; the other subgroups keep their relative proportions. ``tilt = 1`` is
    plain resampling of the training set. Through the queue the tilt compounds: the next
    generation's training set already holds more of the majority, and is tilted again.

    Args:
        num_classes: classes to condition on (linked from the data set).
        channels: image channels (linked from the data set).
        image_size: image side (linked from the data set).
        tilt: the factor t applied to the majority subgroup's weight (> 0; 1 = no tilt, < 1 tilts
            away from the majority).
        source: what a fit memorises: ``training_set`` (real share + queue, so the tilt compounds through
            the queue) or ``real`` (the real training split only, so every generation draws the same tilted
            distribution: a one-time shift when generated data first enters, and no compounding).

    Raises:
        ValueError: at fit time, for a data set without an exact subgroup oracle.
    """

    def __init__(
        self,
        num_classes: int = 10,
        channels: int = 3,
        image_size: int = 32,
        tilt: float = 2.0,
        source: Literal["training_set", "real"] = "training_set",
    ) -> None:
        super().__init__(num_classes, channels, image_size)
        if not (tilt > 0 and tilt < float("inf")):
            raise ValueError(f"--generator.init_args.tilt must be a finite number > 0, got {tilt}")
        if source not in ("training_set", "real"):
            raise ValueError(f"--generator.init_args.source must be 'training_set' or 'real', got {source!r}")
        self.save_hyperparameters()
        self.tilt = tilt
        self.source = source

    @override
    def _memorise(self, datamodule: SelfLoopDataModule) -> ImageSet:
        oracle = datamodule.subgroup_oracle
        if oracle is None:
            raise ValueError(
                f"DensitySeekingGenerator needs a data set with an exact subgroup oracle (e.g. the colourised "
                f"digits, selfloop.data.digits.ColoredDigitsDataModule); {type(datamodule).__name__} has none"
            )
        if self.source == "real":
            train = datamodule.real.train
        else:
            train = datamodule.train_set
            if train is None:
                datamodule.setup("fit")
                train = datamodule.train_set
        assert train is not None
        subgroups = torch.as_tensor(oracle(train.images), dtype=torch.long).cpu()
        return ImageSet(train.images, train.labels, subgroups)

    def majority_subgroups(self) -> Tensor:
        """``m_c`` per class: int64 ``(num_classes,)``, -1 where a class has no image of a known subgroup."""
        memory = self.memory
        return torch.stack([_majority(memory.subgroups[memory.labels == c]) for c in range(self.num_classes)])

    @override
    def _weights(self, members: Tensor) -> Tensor:
        subgroups = self.memory.subgroups[members]
        weights = torch.ones(len(members), dtype=torch.float64)
        majority = _majority(subgroups)
        if majority >= 0:
            weights[subgroups == majority] = self.tilt
        return weights


def _majority(subgroups: Tensor) -> Tensor:
    """The most frequent subgroup id >= 0 (ties: the lowest id), or -1 when there is none."""
    known = subgroups[subgroups >= 0]
    if not len(known):
        return torch.tensor(-1)
    # argmax returns the first maximum, so ties go to the lowest id.
    return torch.bincount(known).argmax()
