"""What the loop asks of a generative model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

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

    Args:
        num_classes: number of classes to condition on.
        channels: image channels.
        image_size: side of the square images.
    """

    # DDP must look for parameters without gradients when one training step runs several backward
    # passes over parts of the model (a GAN's discriminator and generator steps).
    ddp_find_unused_parameters: bool = False

    def __init__(self, num_classes: int, channels: int, image_size: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.channels = channels
        self.image_size = image_size
        self.class_names: list[str] = [str(c) for c in range(num_classes)]

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
