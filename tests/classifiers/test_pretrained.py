"""Pretrained weights through the real torchvision/timm loaders, against a temporary hub cache.

No network: the cache is filled with locally built state dicts, or left empty with downloads disabled.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from torch import nn

from selfloop.classifiers.backbones import InputSpec, build_backbone
from selfloop.classifiers.pretrained import (
    DEIT_S_URL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CorruptWeightsError,
    MissingWeightsError,
    expected_weights_path,
    load_pretrained,
    weights_url,
)

MARK = 0.123


@pytest.fixture
def offline(hub_dir, monkeypatch) -> Path:
    """Like ``hub_dir``, and any accidental download attempt is refused."""
    monkeypatch.setenv("SELFLOOP_OFFLINE", "1")
    return hub_dir


def _save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)


def test_expected_paths(hub_dir):
    checkpoints = hub_dir / "checkpoints"
    assert expected_weights_path("mobilenet_v3") == checkpoints / "mobilenet_v3_large-5c1a4163.pth"
    assert expected_weights_path("resnet50") == checkpoints / "resnet50-11ad3fa6.pth"
    assert expected_weights_path("alexnet") == checkpoints / "alexnet-owt-7be5be79.pth"
    assert expected_weights_path("vgg19") == checkpoints / "vgg19-dcbb9e9d.pth"
    assert expected_weights_path("deit_s") == checkpoints / "deit_small_patch16_224-cd65a155.pth"
    assert weights_url("deit_s") == DEIT_S_URL
    assert weights_url("resnet50") == torchvision.models.ResNet50_Weights.DEFAULT.url


def test_lenet_has_no_weights(hub_dir):
    with pytest.raises(ValueError, match="lenet has no ImageNet weights"):
        load_pretrained("lenet")
    with pytest.raises(ValueError, match="lenet has no ImageNet weights"):
        expected_weights_path("lenet")


@pytest.mark.parametrize("arch", ["resnet50", "deit_s"])
def test_missing_weights_offline(hub_dir, arch):
    path, url = expected_weights_path(arch), weights_url(arch)
    with pytest.raises(MissingWeightsError) as info:
        load_pretrained(arch, allow_download=False)
    message = str(info.value)
    assert str(path) in message
    assert url in message
    assert "TORCH_HOME" in message
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.path == path and info.value.url == url
    assert not path.exists()

    restored = pickle.loads(pickle.dumps(info.value))
    assert str(restored) == message and restored.path == path


@pytest.mark.parametrize("var", ["SELFLOOP_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_env_disables_download(hub_dir, monkeypatch, var):
    monkeypatch.setenv(var, "1")
    with pytest.raises(MissingWeightsError, match="downloading is off"):
        build_backbone("mobilenet_v3", 7, pretrained=True)
    with pytest.raises(MissingWeightsError, match="deit_small_patch16_224-cd65a155.pth"):
        build_backbone("deit_s", 7, pretrained=True)


def test_mobilenet_from_cache(offline):
    reference = torchvision.models.mobilenet_v3_large()
    with torch.no_grad():
        reference.features[0][0].weight.fill_(MARK)
    _save(reference.state_dict(), expected_weights_path("mobilenet_v3"))

    model, spec = build_backbone("mobilenet_v3", 7, pretrained=True, dropout=0.3)

    assert torch.all(model.features[0][0].weight == MARK)
    assert model.features[0][0].stride == (2, 2)  # standard ImageNet stem, unchanged
    head = model.classifier[-1]
    assert isinstance(head, nn.Linear) and head.out_features == 7
    for name, tensor in reference.state_dict().items():
        if not name.startswith("classifier.3."):
            assert torch.equal(model.state_dict()[name], tensor), name
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3]
    assert spec == InputSpec(size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 224, 224)).shape == (1, 7)

    # Without num_classes the ImageNet head is kept.
    imagenet = load_pretrained("mobilenet_v3")
    assert imagenet.classifier[-1].out_features == 1000
    assert torch.equal(imagenet.classifier[-1].weight, reference.classifier[-1].weight)


def test_resnet50_from_cache_gets_dropout_head(offline):
    reference = torchvision.models.resnet50()
    with torch.no_grad():
        reference.conv1.weight.fill_(MARK)
    _save(reference.state_dict(), expected_weights_path("resnet50"))

    model, spec = build_backbone("resnet50", 4, pretrained=True, dropout=0.2)

    assert torch.all(model.conv1.weight == MARK)
    assert model.conv1.kernel_size == (7, 7)
    assert isinstance(model.fc, nn.Sequential)
    assert isinstance(model.fc[0], nn.Dropout) and model.fc[0].p == 0.2
    assert isinstance(model.fc[1], nn.Linear) and model.fc[1].out_features == 4
    assert spec.size == 224


@pytest.mark.parametrize("wrap", [False, True], ids=["state_dict", "official_format"])
def test_deit_from_cache(offline, wrap):
    reference = timm.create_model("deit_small_patch16_224", pretrained=False)
    with torch.no_grad():
        reference.patch_embed.proj.weight.fill_(MARK)
    state_dict = reference.state_dict()
    # The official DeiT release stores {"model": state_dict}.
    _save({"model": state_dict} if wrap else state_dict, expected_weights_path("deit_s"))

    model, spec = build_backbone("deit_s", 7, pretrained=True, dropout=0.4)

    assert torch.all(model.patch_embed.proj.weight == MARK)
    assert torch.equal(model.pos_embed, reference.pos_embed)
    assert model.head.out_features == 7
    assert 0.4 in {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    assert spec == InputSpec(size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)

    imagenet = load_pretrained("deit_s")
    assert torch.equal(imagenet.head.weight, reference.head.weight)


def _truncated_checkpoint(path: Path) -> None:
    _save({"weight": torch.arange(10_000, dtype=torch.float32)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("arch", ["mobilenet_v3", "deit_s"])
def test_corrupt_cache_file(offline, arch):
    path = expected_weights_path(arch)
    _truncated_checkpoint(path)
    with pytest.raises(CorruptWeightsError) as info:
        load_pretrained(arch)
    assert str(path) in str(info.value)
    assert "delete" in str(info.value)
    assert info.value.path == path


def test_wrong_checkpoint_in_cache(offline):
    path = expected_weights_path("mobilenet_v3")
    _save({"not.a.mobilenet": torch.zeros(3)}, path)
    with pytest.raises(CorruptWeightsError, match="delete"):
        load_pretrained("mobilenet_v3")
