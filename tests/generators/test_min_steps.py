"""ConditionalGenerator.min_steps: a floor of optimizer steps under the generator's epoch budget.

A real Trainer fits a tiny DCGAN on 16 images in batches of 8: 2 batches per epoch, and 2 optimizer
steps per batch (a discriminator and a generator step), so 4 steps (``trainer.global_step``) per
epoch. The Trainer is built as the loop builds a generator's: ``min_steps=generator.min_steps``.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import Tensor

from selfloop.data.image_set import ImageSet
from selfloop.generators.base import ConditionalGenerator
from selfloop.generators.dcgan import ConditionalDCGAN

STEPS_PER_EPOCH = 4


def _gan(min_steps: int | None) -> ConditionalDCGAN:
    torch.manual_seed(0)
    gan = ConditionalDCGAN(num_classes=4, channels=1, image_size=16, width=8, latent_dim=8)
    gan.min_steps = min_steps
    return gan


def _fit(
    generator: ConditionalGenerator,
    max_epochs: int,
    trainer_min_steps: int | None = None,
    trainer_max_steps: int = -1,
) -> L.Trainer:
    images = torch.randint(
        0, 256, (16, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    data = ImageSet(images, torch.arange(16) % 4, torch.zeros(16, dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=8, collate_fn=lambda b: b)
    trainer = L.Trainer(
        max_epochs=max_epochs,
        min_steps=generator.min_steps if trainer_min_steps is None else trainer_min_steps,
        max_steps=trainer_max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(generator, loader)
    return trainer


def test_min_steps_extends_a_one_epoch_fit_by_whole_epochs():
    trainer = _fit(_gan(min_steps=18), max_epochs=1)
    # 18 steps need 5 epochs of 4: whole epochs, so every image is seen equally often.
    assert trainer.global_step == 20 and trainer.current_epoch == 5


def test_lightnings_own_min_steps_does_not_outlast_max_epochs():
    # Why the floor lives in the module: Trainer(min_steps=18, max_epochs=1) alone stops after 1 epoch.
    trainer = _fit(_gan(min_steps=None), max_epochs=1, trainer_min_steps=18)
    assert trainer.global_step == STEPS_PER_EPOCH


def test_epochs_decide_when_they_give_more_steps_than_min_steps():
    assert _fit(_gan(min_steps=5), max_epochs=3).global_step == 3 * STEPS_PER_EPOCH
    assert _fit(_gan(min_steps=None), max_epochs=2).global_step == 2 * STEPS_PER_EPOCH


class _Constant(ConditionalGenerator):
    """The smallest generator: passes ``min_steps`` through its own ``__init__`` as subclasses do."""

    def __init__(self, min_steps: int | None = None) -> None:
        super().__init__(num_classes=2, channels=1, image_size=4, min_steps=min_steps)

    def sample(self, labels: Tensor, seed: int, batch_size: int = 256) -> Tensor:
        return torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8)


def test_min_steps_is_an_init_argument_and_none_by_default():
    assert _Constant().min_steps is None
    assert _Constant(min_steps=300).min_steps == 300


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "100"])
def test_min_steps_must_be_a_positive_integer_and_the_error_names_the_flag(bad):
    with pytest.raises(ValueError, match=r"--generator\.init_args\.min_steps must be a positive integer"):
        _Constant(min_steps=bad)
    gan = _gan(None)
    with pytest.raises(ValueError, match="min_steps"):
        gan.min_steps = bad


def test_max_steps_caps_a_fit_whatever_its_epochs_and_equal_bounds_fix_the_budget():
    capped = _gan(None)
    capped.max_steps = 6
    trainer = _fit(capped, max_epochs=5, trainer_max_steps=capped.max_steps)
    assert trainer.global_step == 6  # mid-epoch: 5 epochs would have been 20 steps
    fixed = _gan(min_steps=10)
    fixed.max_steps = 10
    assert _fit(fixed, max_epochs=1, trainer_max_steps=fixed.max_steps).global_step == 10


def test_max_steps_below_min_steps_is_refused_naming_both_flags():
    with pytest.raises(
        ValueError, match=r"max_steps \(5\) must be at least --generator\.init_args\.min_steps \(10\)"
    ):
        ConditionalDCGAN(num_classes=4, channels=1, image_size=16, min_steps=10, max_steps=5)
    with pytest.raises(ValueError, match=r"--generator\.init_args\.max_steps must be a positive integer"):
        ConditionalDCGAN(num_classes=4, channels=1, image_size=16, max_steps=0)
