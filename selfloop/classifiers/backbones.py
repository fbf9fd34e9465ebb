"""Classifier backbones for the self-consuming loop experiments.

Every backbone is built by :func:`build_backbone`, which returns the network together with the
:class:`InputSpec` (spatial size and normalisation) it expects for float images in ``[0, 1]``.

Two flavours exist:

* **from scratch** (``pretrained=False``): the networks are adapted with CIFAR-style stems so that
  28-32 px inputs keep enough spatial resolution and stay cheap on a CPU;
* **pretrained** (``pretrained=True``): the standard ImageNet architecture with ImageNet weights
  (see :mod:`selfloop.classifiers.pretrained`) and only the final classification layer replaced.
  Such networks expect 224 px, 3-channel, ImageNet-normalised inputs.

Every backbone contains at least one :class:`torch.nn.Dropout` with ``p > 0`` because MC-dropout
uncertainty scoring relies on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torchvision
from torch import nn

from selfloop.classifiers.pretrained import IMAGENET_MEAN, IMAGENET_STD, PRETRAINED_ARCHS, load_pretrained

__all__ = ["ARCHS", "Arch", "InputSpec", "LeNet", "build_backbone"]

Arch = Literal["lenet", "alexnet", "vgg19", "resnet50", "mobilenet_v3", "deit_s"]
ARCHS: tuple[str, ...] = ("lenet", "alexnet", "vgg19", "resnet50", "mobilenet_v3", "deit_s")


@dataclass(frozen=True)
class InputSpec:
    """What a backbone expects as input.

    Inputs are float images in ``[0, 1]`` that the caller resizes to ``size`` x ``size`` and
    normalises per channel with ``(x - mean) / std``.

    Attributes:
        size: Spatial side length (height = width) in pixels.
        mean: Per-channel mean, one entry per input channel.
        std: Per-channel standard deviation, one entry per input channel.
    """

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


class LeNet(nn.Module):
    """LeNet-5-like network: two conv+pool stages and three fully connected layers.

    An adaptive average pool brings the feature map to 5x5 (the classic LeNet-5 size for 28 px
    inputs with padded first conv or 32 px inputs), so any input of at least ~16 px works.

    Args:
        num_classes: Number of output logits.
        in_channels: Number of input image channels.
        dropout: Dropout probability before the last fully connected layer.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d((5, 5))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute logits.

        Args:
            x: Images of shape ``(batch, in_channels, height, width)``.

        Returns:
            Logits of shape ``(batch, num_classes)``.
        """
        return self.classifier(self.pool(self.features(x)))


def build_backbone(
    arch: str,
    num_classes: int,
    in_channels: int = 3,
    image_size: int = 32,
    pretrained: bool = False,
    dropout: float = 0.5,
) -> tuple[nn.Module, InputSpec]:
    """Build a classifier backbone and describe the input it expects.

    Args:
        arch: One of :data:`ARCHS`.
        num_classes: Number of output logits.
        in_channels: Number of input channels (1 or 3 are typical). Pretrained networks require 3;
            grayscale images must then be repeated to 3 channels by the caller.
        image_size: Input side length for networks trained from scratch. Ignored when
            ``pretrained`` is True (ImageNet networks expect 224 px, see the returned spec).
        pretrained: Load ImageNet weights and replace only the final classification layer.
            Weights come from the torch hub cache, see :func:`selfloop.classifiers.pretrained.load_pretrained`.
        dropout: Dropout probability of the classification head (for pretrained AlexNet, VGG19 and
            MobileNetV3 it replaces the probability of their existing Dropout layers). ``0`` keeps the
            Dropout modules but makes MC-dropout scoring degenerate (zero variance).

    Returns:
        The network (randomly initialised or with ImageNet weights, in train mode) and its
        :class:`InputSpec`.

    Raises:
        ValueError: If ``arch`` is unknown, ``lenet`` is requested pretrained, ``in_channels`` is not
            3 for a pretrained network, or an argument is out of range.
        selfloop.classifiers.pretrained.MissingWeightsError: If pretrained weights are neither cached nor
            downloadable.
        selfloop.classifiers.pretrained.CorruptWeightsError: If the cached weights file cannot be loaded.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of: {', '.join(ARCHS)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")

    if pretrained:
        if arch not in PRETRAINED_ARCHS:
            raise ValueError(
                f"{arch} has no ImageNet weights; use pretrained=False or one of: "
                f"{', '.join(PRETRAINED_ARCHS)}"
            )
        if in_channels != 3:
            raise ValueError(
                f"pretrained {arch!r} needs in_channels=3, got in_channels={in_channels}; grayscale inputs "
                "must be repeated to 3 channels by the caller, so set in_channels=3"
            )
        model = load_pretrained(arch, num_classes=num_classes, dropout=dropout)
        return model, InputSpec(size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)

    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    model = _SCRATCH_BUILDERS[arch](num_classes, in_channels, image_size, dropout)
    spec = InputSpec(size=image_size, mean=(0.5,) * in_channels, std=(0.5,) * in_channels)
    return model, spec


# --------------------------------------------------------------------------- from-scratch builders


def _small_stem(in_channels: int, out_channels: int, bias: bool) -> nn.Conv2d:
    """3x3 stride-1 convolution replacing an ImageNet stem, with torchvision's conv init."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=bias)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _drop_underflowing_pools(features: nn.Sequential, image_size: int) -> None:
    """Replace max-pools that would shrink the feature map below 1 px by ``nn.Identity``.

    Assumes every convolution in ``features`` preserves the spatial size (true for the adapted
    AlexNet and VGG feature extractors).

    Args:
        features: Feature extractor, modified in place.
        image_size: Input side length.
    """
    size = image_size
    for index, module in enumerate(features):
        if isinstance(module, nn.MaxPool2d):
            kernel = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            stride = module.stride if isinstance(module.stride, int) else module.stride[0]
            padding = module.padding if isinstance(module.padding, int) else module.padding[0]
            if size + 2 * padding < kernel:
                features[index] = nn.Identity()
            else:
                size = (size + 2 * padding - kernel) // stride + 1


def _build_lenet(num_classes: int, in_channels: int, image_size: int, dropout: float) -> nn.Module:
    return LeNet(num_classes, in_channels=in_channels, dropout=dropout)


def _build_alexnet(num_classes: int, in_channels: int, image_size: int, dropout: float) -> nn.Module:
    model = torchvision.models.alexnet(weights=None)
    # 11x11 stride-4 stem -> 3x3 stride 1; the three 3x3/2 max-pools then give 32 -> 15 -> 7 -> 3.
    model.features[0] = _small_stem(in_channels, 64, bias=True)
    _drop_underflowing_pools(model.features, image_size)
    # The 9216 -> 4096 -> 4096 ImageNet head is oversized for 3x3 feature maps: pool to 2x2 and
    # use a 1024-wide head with the same layout (Dropout, FC, ReLU, Dropout, FC, ReLU, FC).
    model.avgpool = nn.AdaptiveAvgPool2d((2, 2))
    model.classifier = nn.Sequential(
        nn.Dropout(p=dropout),
        nn.Linear(256 * 2 * 2, 1024),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(1024, 1024),
        nn.ReLU(inplace=True),
        nn.Linear(1024, num_classes),
    )
    return model


def _build_vgg19(num_classes: int, in_channels: int, image_size: int, dropout: float) -> nn.Module:
    model = torchvision.models.vgg19(weights=None)
    if in_channels != 3:
        model.features[0] = _small_stem(in_channels, 64, bias=True)
    _drop_underflowing_pools(model.features, image_size)
    model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    model.classifier = nn.Sequential(
        nn.Dropout(p=dropout),
        nn.Linear(512, 512),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(512, num_classes),
    )
    return model


def _build_resnet50(num_classes: int, in_channels: int, image_size: int, dropout: float) -> nn.Module:
    model = torchvision.models.resnet50(weights=None)
    model.conv1 = _small_stem(in_channels, 64, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(model.fc.in_features, num_classes))
    return model


def _build_mobilenet_v3(num_classes: int, in_channels: int, image_size: int, dropout: float) -> nn.Module:
    model = torchvision.models.mobilenet_v3_large(weights=None, num_classes=num_classes, dropout=dropout)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(
        in_channels, stem.out_channels, kernel_size=3, stride=1, padding=1, bias=False
    )
    nn.init.kaiming_normal_(model.features[0][0].weight, mode="fan_out")
    # torchvision's MobileNetV3 sets BatchNorm momentum 0.01, tuned for ImageNet's 10,000 steps an epoch.
    # On a few thousand images (55 steps an epoch) the running statistics stay near their initial values
    # for many epochs, so the network in eval mode predicts one class (10% accuracy on 10 classes) while
    # it trains well: PyTorch's default 0.1 lets them follow the batches within an epoch.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
    return model


def _deit_patch_size(image_size: int) -> int:
    """Patch size for a from-scratch DeiT: 16 px from 64 px up, 4 px (or a divisor) below."""
    for patch in (16, 8, 4, 2, 1):
        if patch <= (16 if image_size >= 64 else 4) and image_size % patch == 0:
            return patch
    return 1  # unreachable: 1 divides every size


def _build_deit_s(num_classes: int, in_channels: int, image_size: int, dropout: float) -> nn.Module:
    import timm  # only a DeiT needs it: the command line starts without it

    return timm.create_model(
        "deit_small_patch16_224",
        pretrained=False,
        num_classes=num_classes,
        in_chans=in_channels,
        img_size=image_size,
        patch_size=_deit_patch_size(image_size),
        drop_rate=dropout,
    )


_SCRATCH_BUILDERS = {
    "lenet": _build_lenet,
    "alexnet": _build_alexnet,
    "vgg19": _build_vgg19,
    "resnet50": _build_resnet50,
    "mobilenet_v3": _build_mobilenet_v3,
    "deit_s": _build_deit_s,
}
