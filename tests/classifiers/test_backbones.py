"""From-scratch backbones: shapes, Dropout (MC-dropout), input specs and argument errors."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch
from torch import nn

from selfloop.classifiers.backbones import ARCHS, Arch, InputSpec, build_backbone

NUM_CLASSES = 5


@pytest.fixture(autouse=True)
def _isolated_hub(hub_dir):
    """No test here may see real weights."""


def _dropouts(model: nn.Module) -> list[nn.Dropout]:
    return [m for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0]


def test_archs_match_literal():
    assert ARCHS == ("lenet", "alexnet", "vgg19", "resnet50", "mobilenet_v3", "deit_s")
    assert typing.get_args(Arch) == ARCHS


@pytest.mark.parametrize(
    ("arch", "in_channels", "image_size"),
    [
        ("lenet", 3, 32),
        ("lenet", 1, 32),
        ("lenet", 1, 28),
        ("alexnet", 3, 32),
        ("alexnet", 1, 32),
        ("alexnet", 1, 28),
        ("vgg19", 3, 32),
        ("vgg19", 1, 28),
        ("resnet50", 3, 32),
        ("resnet50", 1, 32),
        ("mobilenet_v3", 3, 32),
        ("mobilenet_v3", 1, 28),
        ("deit_s", 3, 32),
        ("deit_s", 1, 28),
    ],
)
def test_scratch_backbone(arch, in_channels, image_size):
    torch.manual_seed(0)
    model, spec = build_backbone(arch, NUM_CLASSES, in_channels=in_channels, image_size=image_size)

    assert spec == InputSpec(size=image_size, mean=(0.5,) * in_channels, std=(0.5,) * in_channels)

    x = torch.rand(2, in_channels, image_size, image_size)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, NUM_CLASSES)
    assert torch.isfinite(out).all()

    # MC dropout: eval mode everywhere except Dropout -> two passes differ.
    dropouts = _dropouts(model)
    assert dropouts, f"{arch} has no nn.Dropout with p > 0"
    for module in dropouts:
        module.train()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert not torch.equal(first, second)


def test_dropout_probability_is_used():
    model, _ = build_backbone("resnet50", 3, dropout=0.3)
    assert {m.p for m in _dropouts(model)} == {0.3}
    model, _ = build_backbone("deit_s", 3, dropout=0.25)
    assert 0.25 in {m.p for m in _dropouts(model)}


def test_input_spec_is_frozen():
    spec = InputSpec(size=32, mean=(0.5,), std=(0.5,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.size = 64  # type: ignore[misc]


def test_unknown_arch_lists_valid_names():
    with pytest.raises(ValueError, match="unknown arch 'foo'") as info:
        build_backbone("foo", 10)
    for name in ARCHS:
        assert name in str(info.value)


def test_pretrained_lenet_rejected():
    with pytest.raises(ValueError, match="lenet has no ImageNet weights"):
        build_backbone("lenet", 10, pretrained=True)


@pytest.mark.parametrize("arch", ["resnet50", "deit_s"])
def test_pretrained_needs_three_channels(arch):
    with pytest.raises(ValueError, match="in_channels") as info:
        build_backbone(arch, 10, in_channels=1, pretrained=True)
    assert "repeated to 3 channels" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"num_classes": 0}, {"in_channels": 0}, {"dropout": 1.0}, {"dropout": -0.1}, {"image_size": 4}],
)
def test_invalid_arguments(kwargs):
    args = {"num_classes": 10} | kwargs
    with pytest.raises(ValueError):
        build_backbone("lenet", **args)


def test_mobilenet_from_scratch_predicts_in_eval_mode_after_a_short_fit():
    """torchvision's BatchNorm momentum (0.01, for ImageNet-sized epochs) left eval mode at chance here."""
    torch.manual_seed(0)
    model, _ = build_backbone("mobilenet_v3", 2, in_channels=3, image_size=32)
    labels = torch.arange(32) % 2
    images = torch.rand(32, 3, 32, 32) * 0.5
    images[:, 0] += 0.5 * labels.view(-1, 1, 1)  # class 1 reddish, class 0 bluish
    images[:, 2] += 0.5 * (1 - labels).view(-1, 1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(80):  # 80 steps of 16: a few epochs of a small data set
        batch = torch.randperm(32)[:16]
        loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.9
