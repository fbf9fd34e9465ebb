"""What the loop asks of a generative model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor


class ConditionalGenerator(L.LightningModule, ABC):
    """A class-conditional generative model, re-initialised and trained every generation.

    Subclasses train in ``training_step`` on batches ``(uint8 images, labels, subgroups)`` and
    implement ``sample``. ``generator_state`` / ``load_generator_state`` carry what must be saved to
    sample again without retraining (the whole network for a GAN, only the LoRA for Stable Diffusion).

    The loop sets ``class_names`` (from the data set) before fitting or sampling, for generators that
    condition on text.

    Training budget: the loop fits every generator for ``--loop.generator_epochs`` epochs, which on a
    small data set are few optimizer steps (20 DCGAN epochs at batch size 128 are 8,440 batches on
    54,000 MNIST digits, 220 on 1,300). ``min_steps`` puts a floor under that: while
    ``trainer.global_step`` (Lightning's optimizer steps; a DCGAN takes 2 per batch, a discriminator
    and a generator step) is below it when the last epoch ends, one more epoch is run. Lightning's own ``Trainer(min_steps=...)`` does not do
    this: it only defers early stopping, and ``max_epochs`` still ends the fit (``_FitLoop.done``).
    ``max_steps`` caps it (Lightning's ``Trainer(max_steps=...)``): later generations train on real + queue,
    more data per epoch, and the cap keeps their fits as long as the first. ``min_steps == max_steps``
    gives every generation the same step budget whatever its data.
    Subclasses that override ``on_train_epoch_end`` must call ``super().on_train_epoch_end()``.

    Args:
        num_classes: number of classes to condition on.
        channels: image channels.
        image_size: side of the square images.
        min_steps: least number of optimizer steps (``trainer.global_step``) of a fit, reached by
            adding whole epochs beyond ``max_epochs``; ``None`` (default): the epochs alone decide.
        max_steps: most optimizer steps of a fit (at least ``min_steps``); ``None`` (default): no cap.
    """

    # DDP must look for parameters without gradients when one training step runs several backward
    # passes over parts of the model (a GAN's discriminator and generator steps).
    ddp_find_unused_parameters: bool = False

    def __init__(
        self,
        num_classes: int,
        channels: int,
        image_size: int,
        min_steps: int | None = None,
        max_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.channels = channels
        self.image_size = image_size
        self.min_steps = min_steps
        self.max_steps = max_steps
        if min_steps is not None and max_steps is not None and max_steps < min_steps:
            raise ValueError(
                f"--generator.init_args.max_steps ({max_steps}) must be at least --generator.init_args.min_steps "
                f"({min_steps})"
            )
        self.class_names: list[str] = [str(c) for c in range(num_classes)]

    @classmethod
    def image_size_problem(cls, size: int, init_args: Mapping[str, Any], flag: str) -> str | None:
        """Why this generator cannot make ``size`` x ``size`` images, as one line naming ``flag``; ``None``: it can.

        The command line asks this before any work, with the generator's configured ``init_args``. A
        generator whose architecture constrains the size (a DCGAN doubles a 4x4 start, a VAE downsamples
        by 8) overrides it.
        """
        return None if size >= 1 else f"{flag} must be >= 1, got {size}"

    @classmethod
    def missing_weights(cls, init_args: Mapping[str, Any]) -> str | None:
        """What is missing to build this generator with ``init_args`` (weights files), as one line saying how
        to obtain it; ``None``: nothing. Asked with the other prerequisites before any work."""
        return None

    @property
    def min_steps(self) -> int | None:
        """Least number of optimizer steps of a fit (see the class doc); ``None``: no floor."""
        return self._min_steps

    @min_steps.setter
    def min_steps(self, value: int | None) -> None:
        self._min_steps = _step_count("min_steps", value)

    @property
    def max_steps(self) -> int | None:
        """Most optimizer steps of a fit (see the class doc); ``None``: no cap."""
        return self._max_steps

    @max_steps.setter
    def max_steps(self, value: int | None) -> None:
        self._max_steps = _step_count("max_steps", value)

    def on_train_epoch_end(self) -> None:
        """Run one more epoch while the fit's last epoch ends below ``min_steps`` optimizer steps."""
        trainer = self.trainer
        max_epochs = trainer.max_epochs
        last_epoch = max_epochs is not None and max_epochs >= 0 and trainer.current_epoch + 1 >= max_epochs
        if self.min_steps is not None and last_epoch and trainer.global_step < self.min_steps:
            # The fit loop stops when the epochs processed reach ``max_epochs``, checked after this hook.
            # ``global_step`` is the same on every rank (steps are synchronous), so DDP ranks agree.
            trainer.fit_loop.max_epochs = trainer.current_epoch + 2

    @abstractmethod
    def sample(self, labels: Tensor, seed: int, batch_size: int = 256) -> Tensor:
        """Generate one image per label.

        Args:
            labels: int64 ``(N,)`` intended classes.
            seed: seed of the noise, so sampling is reproducible whatever ran before.
            batch_size: images generated per forward pass.

        Returns:
            uint8 ``(N, channels, image_size, image_size)`` on the CPU.
        """

    def generator_state(self) -> dict[str, Tensor]:
        """Tensors needed to sample again (default: the whole state dict)."""
        return self.state_dict()

    def load_generator_state(self, state: dict[str, Tensor]) -> None:
        """Inverse of ``generator_state``."""
        self.load_state_dict(state)

    def save_artifacts(self, folder: Path) -> None:
        """Write extra per-generation files into ``folder`` (the generation's directory); default: none.

        Called on rank 0 after the generator's weights are saved. ``StableDiffusionLoRA`` writes its
        LoRA in diffusers' format to ``folder/lora/``, loadable by a stock pipeline.
        """


def to_uint8(images: Tensor) -> Tensor:
    """Map images in [-1, 1] to uint8 [0, 255]."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_signed_unit(images: Tensor) -> Tensor:
    """Map uint8 images to float [-1, 1]."""
    return images.float() / 127.5 - 1.0


def _step_count(flag: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"--generator.init_args.{flag} must be a positive integer or null, got {value!r}")
    return value
