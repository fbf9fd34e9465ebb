"""DeviceBatches gives the DataLoader path's batches bit for bit, and a whole run the same metrics."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from selfloop.cli.app import SelfLoopCLI
from selfloop.data.device_batches import DeviceBatches
from selfloop.data.digits import ColoredDigitsDataModule
from selfloop.data.image_set import ImageSet, collate_batch


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    """The embedded digits' real train split at 16 px (1,259 images)."""
    return ColoredDigitsDataModule(image_size=16).real.train


def _epochs(loader, epochs: int, exhaust: bool) -> list[list[tuple[torch.Tensor, ...]]]:
    """Batches of ``epochs`` passes: ``exhaust`` asks for one batch past the last (a ``for`` loop);
    otherwise stop at ``len(loader)``, as Lightning does."""
    out = []
    for _ in range(epochs):
        iterator = iter(loader)
        out.append(list(iterator if exhaust else itertools.islice(iterator, len(loader))))
    return out


def _assert_same_batches(expected, actual) -> None:
    assert len(expected) == len(actual)
    for epoch, (want, got) in enumerate(zip(expected, actual, strict=True)):
        assert len(want) == len(got), f"epoch {epoch}: {len(want)} vs {len(got)} batches"
        for step, (a, b) in enumerate(zip(want, got, strict=True)):
            for x, y in zip(a, b, strict=True):
                assert x.dtype == y.dtype and x.shape == y.shape, f"epoch {epoch} step {step}"
                assert torch.equal(x, y), f"epoch {epoch} step {step}"


@pytest.mark.parametrize("exhaust", [True, False], ids=["for-loop", "stop-at-len"])
@pytest.mark.parametrize(
    ("size", "batch_size", "drop_last"),
    [(None, 64, False), (None, 64, True), (640, 64, False), (640, 64, True), (50, 64, False)],
    ids=["partial-last", "partial-dropped", "full-last", "full-drop-last", "one-small-batch"],
)
def test_same_batches_and_random_numbers_as_the_dataloader(digits, size, batch_size, drop_last, exhaust):
    data = digits if size is None else digits.subset(torch.arange(size))
    epochs = 3

    def run(make):
        torch.manual_seed(123)
        generator = torch.Generator().manual_seed(7)
        batches = _epochs(make(generator), epochs, exhaust)
        # What the loader drew must match too: the next epoch's order and the global RNG (dropout).
        return batches, generator.get_state(), torch.get_rng_state()

    loader_batches, loader_gen, loader_rng = run(
        lambda g: DataLoader(
            data, batch_size, shuffle=True, generator=g, drop_last=drop_last, collate_fn=collate_batch
        )
    )
    device_batches, device_gen, device_rng = run(
        lambda g: DeviceBatches(data, batch_size, shuffle=True, generator=g, drop_last=drop_last)
    )
    _assert_same_batches(loader_batches, device_batches)
    assert torch.equal(loader_gen, device_gen)
    assert torch.equal(loader_rng, device_rng)
    # Every epoch is a new order that covers the set once.
    first = [torch.cat([b[1] for b in epoch]) for epoch in device_batches]
    assert not all(torch.equal(first[0], f) for f in first[1:])
    if not drop_last:
        assert all(len(f) == len(data) for f in first)


@pytest.mark.parametrize("shuffle", [True, False], ids=["global-rng-shuffle", "sequential"])
def test_without_a_generator_the_global_rng_is_drawn_as_the_dataloader_draws_it(digits, shuffle):
    def run(make):
        torch.manual_seed(5)
        return _epochs(make(), 2, exhaust=True), torch.get_rng_state()

    loader_batches, loader_rng = run(
        lambda: DataLoader(digits, 100, shuffle=shuffle, collate_fn=collate_batch)
    )
    device_batches, device_rng = run(lambda: DeviceBatches(digits, 100, shuffle=shuffle))
    _assert_same_batches(loader_batches, device_batches)
    assert torch.equal(loader_rng, device_rng)


def test_an_iterator_never_advanced_draws_nothing(digits):
    # Lightning calls iter() once on every non-DataLoader iterable only to check it, then drops it.
    generator = torch.Generator().manual_seed(3)
    batches = DeviceBatches(digits, 64, shuffle=True, generator=generator)
    before, global_before = generator.get_state(), torch.get_rng_state()
    iter(batches)
    iter(DeviceBatches(digits, 64, shuffle=False))
    assert torch.equal(generator.get_state(), before) and torch.equal(torch.get_rng_state(), global_before)


def _module_epochs(dm: ColoredDigitsDataModule, epochs: int) -> tuple[list, list]:
    train, val = dm.train_dataloader(), dm.val_dataloader()
    return _epochs(train, epochs, exhaust=False), _epochs(val, epochs, exhaust=False)


def test_data_module_gives_identical_batches_with_and_without_device_batches():
    generated = ImageSet.generated(
        torch.randint(0, 256, (77, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)),
        torch.arange(77) % 10,
    )
    results = {}
    for device_batches in (False, True):
        dm = ColoredDigitsDataModule(image_size=16, batch_size=32, device_batches=device_batches)
        dm.set_generated(generated)  # real + queue, as a generation >= 1 trains on
        dm.loader_seed = 11
        dm.setup("fit")
        torch.manual_seed(0)
        results[device_batches] = (_module_epochs(dm, 3), torch.get_rng_state())
        loaders = (dm.train_dataloader(), dm.val_dataloader())
        assert all(isinstance(x, DeviceBatches) == device_batches for x in loaders)
    (train, val), rng = results[False]
    (device_train, device_val), device_rng = results[True]
    _assert_same_batches(train, device_train)
    _assert_same_batches(val, device_val)
    assert torch.equal(rng, device_rng)
    # The queue's images are in the batches: subgroup -1 marks them.
    assert any((b[2] == -1).any() for b in device_train[0])
    assert device_train[0][0][0].dtype == torch.uint8 and device_train[0][0][0].shape == (32, 3, 16, 16)


def test_batches_are_on_the_attached_trainers_device():
    dm = ColoredDigitsDataModule(image_size=16, device_batches=True)
    dm.setup("fit")
    dm.trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    images, labels, subgroups = next(iter(dm.train_dataloader()))
    assert {t.device for t in (images, labels, subgroups)} == {dm.trainer.strategy.root_device}


def test_device_batches_refuses_workers_and_several_processes():
    with pytest.raises(ValueError, match="--data.init_args.num_workers 0"):
        ColoredDigitsDataModule(image_size=16, device_batches=True, num_workers=2)
    dm = ColoredDigitsDataModule(image_size=16, device_batches=True)
    dm.setup("fit")
    dm.trainer = SimpleNamespace(world_size=2, strategy=SimpleNamespace(root_device=torch.device("cpu")))
    with pytest.raises(ValueError, match="device_batches true runs on one device.*2 processes"):
        dm.train_dataloader()


def test_bad_arguments_name_the_problem(digits):
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DeviceBatches(digits, 0, shuffle=False)
    with pytest.raises(ValueError, match="cannot shuffle an empty image set"):
        DeviceBatches(digits.subset(torch.arange(0)), 8, shuffle=True)


@pytest.mark.slow
def test_a_run_gives_the_same_metrics_csv_with_device_batches(tiny_run_args, tiny_cli_run, tmp_path):
    # The DataLoader run is the session's shared run: its first generation, which a 1-generation run repeats
    # (tests/test_cli_end_to_end.py), is what the device-batches run must match.
    device = tmp_path / "device"
    one_generation = ("--loop.generations", "1", "--loop.queue_capacity", "1")
    SelfLoopCLI(args=tiny_run_args(device, *one_generation, "--data.init_args.device_batches", "true"))
    assert "device_batches: true" in (device / "config.yaml").read_text()
    lines = (tiny_cli_run / "metrics.csv").read_text().splitlines()
    expected = [line for line in lines if line.startswith(("generation,", "0,", "1,"))]
    # Generation 0 and 1, classifier and generator rows: a run that did the loop's work.
    assert {"lenet", "generator"} <= {line.split(",")[1] for line in expected[1:]}
    assert (device / "metrics.csv").read_text().splitlines() == expected
