import math
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from selfloop.data.digits import ColoredDigitsDataModule
from selfloop.data.image_set import ImageSet
from selfloop.generators.reference import DensitySeekingGenerator, PerfectGenerator

DIGITS_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "digits.yaml"
SIZE = 16
PER_CLASS = 500  # samples per class when measuring subgroup shares: 5,000 draws in all


class _EpochCounter(Callback):
    def __init__(self) -> None:
        self.epochs = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs += 1


def _digits(**kwargs) -> ColoredDigitsDataModule:
    return ColoredDigitsDataModule(image_size=SIZE, **kwargs)


def _fit(generator, datamodule, max_epochs: int = 3) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[_EpochCounter()],
    )
    trainer.fit(generator, datamodule=datamodule)
    return trainer


def _density(tilt: float) -> DensitySeekingGenerator:
    return DensitySeekingGenerator(num_classes=10, channels=3, image_size=SIZE, tilt=tilt)


def _majority_shares(subgroups: torch.Tensor, labels: torch.Tensor, majority: torch.Tensor) -> torch.Tensor:
    """Per class, the share of images whose subgroup is that class's majority subgroup."""
    return torch.stack([(subgroups[labels == c] == majority[c]).double().mean() for c in range(10)])


def _tilted(p: torch.Tensor, tilt: float) -> torch.Tensor:
    """The documented formula: the majority share after one tilted draw."""
    return tilt * p / (tilt * p + 1 - p)


def _measured_and_tolerance(generator: DensitySeekingGenerator, expected: torch.Tensor, seed: int):
    """Pooled majority share of PER_CLASS samples per class (read by the exact oracle) and 4 binomial s.d."""
    labels = torch.arange(10).repeat_interleave(PER_CLASS)
    samples = generator.sample(labels, seed=seed)
    subgroups = _digits().subgroup_oracle(samples)
    measured = (subgroups == generator.majority_subgroups()[labels]).double().mean().item()
    n = len(labels)
    sd = math.sqrt(float((expected * (1 - expected)).sum()) * PER_CLASS) / n
    return measured, 4 * sd, samples, labels


def test_perfect_generator_returns_only_real_training_images_of_the_requested_class():
    dm = _digits()
    # Generated images in the train set must never come back: only the real split is memorised.
    junk = torch.full((40, 3, SIZE, SIZE), 255, dtype=torch.uint8)
    dm.set_generated(ImageSet.generated(junk, torch.arange(40) % 10))
    generator = PerfectGenerator(num_classes=10, channels=3, image_size=SIZE)
    _fit(generator, dm)
    real = dm.real.train
    assert len(generator.memory) == len(real)

    labels = torch.arange(10).repeat(30)
    samples = generator.sample(labels, seed=3)
    assert samples.dtype == torch.uint8 and samples.shape == (300, 3, SIZE, SIZE)
    # Every sample equals a real training image of its own class.
    equal = (samples.flatten(1)[:, None] == real.images.flatten(1)[None]).all(-1)
    assert (equal & (labels[:, None] == real.labels[None])).any(1).all()
    # Resampled, not one image per class: most of the 300 draws are distinct images.
    assert len(torch.unique(samples.flatten(1), dim=0)) > 250

    assert torch.equal(samples, generator.sample(labels, seed=3))
    assert not torch.equal(samples, generator.sample(labels, seed=4))


def test_a_fit_costs_one_skipped_batch_whatever_max_epochs():
    generator = PerfectGenerator(num_classes=10, channels=3, image_size=SIZE)
    trainer = _fit(generator, _digits(), max_epochs=50)
    counter = next(c for c in trainer.callbacks if isinstance(c, _EpochCounter))
    assert counter.epochs == 1 and trainer.global_step == 0
    assert torch.equal(generator._anchor, torch.zeros(1))


def test_density_seeking_with_tilt_one_keeps_the_training_mix():
    dm = _digits(bias="biased", majority=0.6)
    generator = _density(tilt=1.0)
    _fit(generator, dm)
    memory = generator.memory
    # The exact oracle reads back the real colours of the memorised real images.
    assert torch.equal(memory.subgroups, dm.real.train.subgroups)
    majority = generator.majority_subgroups()
    assert torch.equal(majority, torch.arange(10) % 3)
    train_share = _majority_shares(memory.subgroups, memory.labels, majority)

    measured, tolerance, _, _ = _measured_and_tolerance(generator, train_share, seed=0)
    expected = train_share.mean().item()
    assert abs(measured - expected) < tolerance, (measured, expected, tolerance)


@pytest.mark.parametrize("tilt", [2.0, 4.0])
def test_density_seeking_raises_the_majority_share_by_the_formula(tilt):
    dm = _digits(bias="biased", majority=0.6)
    generator = _density(tilt)
    _fit(generator, dm)
    memory = generator.memory
    train_share = _majority_shares(memory.subgroups, memory.labels, generator.majority_subgroups())
    expected_per_class = _tilted(train_share, tilt)

    measured, tolerance, _, _ = _measured_and_tolerance(generator, expected_per_class, seed=1)
    expected = expected_per_class.mean().item()
    # tilt 2: 0.6 -> 0.75; tilt 4: 0.6 -> 0.857 (training mix 0.6 up to rounding of the counts).
    assert abs(measured - expected) < tolerance, (measured, expected, tolerance)
    assert measured > train_share.mean().item() + 0.1


def test_the_tilt_compounds_through_the_queue():
    tilt = 2.0
    dm = _digits(bias="biased", majority=0.6)
    first = _density(tilt)
    _fit(first, dm)
    real = first.memory
    majority = first.majority_subgroups()
    p1 = _majority_shares(real.subgroups, real.labels, majority)
    q1_measured, tolerance1, samples, labels = _measured_and_tolerance(first, _tilted(p1, tilt), seed=2)
    assert abs(q1_measured - _tilted(p1, tilt).mean().item()) < tolerance1

    # Generation 2 trains on real + the first generation's samples (as the queue hands them over).
    dm.set_generated(ImageSet.generated(samples, labels))
    second = _density(tilt)
    _fit(second, dm)
    assert len(second.memory) == len(real) + len(samples)
    assert torch.equal(second.majority_subgroups(), majority)
    p2 = _majority_shares(second.memory.subgroups, second.memory.labels, majority)
    assert (p2 > p1).all()
    expected2 = _tilted(p2, tilt)
    q2_measured, tolerance2, _, _ = _measured_and_tolerance(second, expected2, seed=3)
    # 0.60 -> 0.75 in generation 1; its 5,000 samples next to 1,259 real images make a training mix of
    # 0.72, tilted to 0.84 in generation 2.
    assert abs(q2_measured - expected2.mean().item()) < tolerance2, (q2_measured, expected2.mean())
    assert q2_measured > q1_measured + tolerance1 + tolerance2


@pytest.mark.parametrize("make", [lambda: PerfectGenerator(10, 3, SIZE), lambda: _density(3.0)])
def test_saved_state_samples_the_same_images(tmp_path, make):
    dm = _digits(bias="biased", majority=0.6)
    dm.set_generated(
        ImageSet.generated(torch.zeros(20, 3, SIZE, SIZE, dtype=torch.uint8), torch.arange(20) % 10)
    )
    fitted = make()
    _fit(fitted, dm)
    torch.save(fitted.generator_state(), tmp_path / "generator.pt")

    restored = make()
    restored.load_generator_state(torch.load(tmp_path / "generator.pt", weights_only=True))
    labels = torch.tensor([9, 0, 3, 3, 7, 1, 1, 1, 5, 2] * 20)
    assert torch.equal(restored.sample(labels, seed=11), fitted.sample(labels, seed=11))
    assert torch.equal(restored.memory.subgroups, fitted.memory.subgroups)


def test_sampling_before_memorising_anything_says_what_to_do():
    with pytest.raises(ValueError, match="memorised nothing yet"):
        PerfectGenerator(10, 3, SIZE).sample(torch.tensor([0]), seed=0)
    assert PerfectGenerator(10, 3, SIZE).sample(torch.empty(0, dtype=torch.long), seed=0).shape == (
        0,
        3,
        SIZE,
        SIZE,
    )


def test_tilt_must_be_positive():
    with pytest.raises(ValueError, match="--generator.init_args.tilt"):
        _density(0.0)


class _DigitsWithoutOracle(ColoredDigitsDataModule):
    subgroup_oracle = None


def test_density_seeking_needs_a_data_set_with_an_exact_oracle():
    with pytest.raises(ValueError) as info:
        _fit(_density(2.0), _DigitsWithoutOracle(image_size=SIZE))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("DensitySeekingGenerator needs a data set with an exact subgroup oracle")
    assert "colourised digits" in message


def _parsed(capsys, *extra: str) -> dict:
    from selfloop.cli.app import SelfLoopCLI

    with pytest.raises(SystemExit) as info:
        SelfLoopCLI(args=["fit", "--config", str(DIGITS_CONFIG), *extra, "--print_config"])
    assert info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("extra", "cls", "init_args"),
    [
        (["--generator", "selfloop.generators.reference.PerfectGenerator"], PerfectGenerator, {}),
        (
            [
                "--generator",
                "selfloop.generators.reference.DensitySeekingGenerator",
                "--generator.init_args.tilt",
                "3",
            ],
            DensitySeekingGenerator,
            {"tilt": 3.0, "source": "training_set"},
        ),
    ],
)
def test_reference_generators_are_selectable_in_the_config(capsys, extra, cls, init_args):
    config = _parsed(capsys, *extra)["generator"]
    assert config["class_path"] == f"{cls.__module__}.{cls.__name__}"
    # The DCGAN's arguments of the config file do not leak into the new class.
    # (num_classes, channels and image_size are linked from the data set, so not printed.)
    assert config.get("init_args", {}) == init_args
