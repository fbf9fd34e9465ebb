"""ImageNet weights for the pretrained backbones, through torchvision's and timm's own loaders.

Weights live in the torch hub cache, ``<torch.hub.get_dir()>/checkpoints/<file name from the URL>``
(``torch.hub.get_dir()`` is ``$TORCH_HOME/hub``, by default ``~/.cache/torch/hub``):

* torchvision networks (AlexNet, VGG19, ResNet50, MobileNetV3-Large) via
  ``torchvision.models.get_model_weights(...)`` and ``Weights.get_state_dict``, which downloads into
  that cache on first use;
* DeiT-S via ``timm.create_model("deit_small_patch16_224", pretrained=True)`` pointed at the official
  DeiT release file in the same cache directory.

Offline machines (no network, ``SELFLOOP_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) never try to download:
a missing file raises :class:`MissingWeightsError` naming the exact path to put it at and its URL.
"""

from __future__ import annotations

import os
from http.client import HTTPException
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from selfloop.core.errors import MissingWeightsError, SelfLoopError
from selfloop.core.offline import download_blocker, downloads_allowed_by_env

__all__ = [
    "DEIT_S_URL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRETRAINED_ARCHS",
    "CorruptWeightsError",
    "MissingWeightsError",
    "expected_weights_path",
    "load_pretrained",
    "weights_problem",
    "weights_url",
]

IMAGENET_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, ...] = (0.229, 0.224, 0.225)

PRETRAINED_ARCHS: tuple[str, ...] = ("alexnet", "vgg19", "resnet50", "mobilenet_v3", "deit_s")

# arch -> (torchvision model name, weights enum member). Pinned rather than ``.DEFAULT`` so that a
# torchvision upgrade cannot silently change the weights (these are the DEFAULTs of torchvision 0.29).
_TORCHVISION_WEIGHTS: dict[str, tuple[str, str]] = {
    "alexnet": ("alexnet", "IMAGENET1K_V1"),
    "vgg19": ("vgg19", "IMAGENET1K_V1"),
    "resnet50": ("resnet50", "IMAGENET1K_V2"),
    "mobilenet_v3": ("mobilenet_v3_large", "IMAGENET1K_V2"),
}

DEIT_S_TIMM_NAME = "deit_small_patch16_224"
DEIT_S_URL = "https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth"


class CorruptWeightsError(SelfLoopError, RuntimeError):
    """A cached weights file exists but cannot be loaded (truncated, corrupt or wrong checkpoint).

    Args:
        message: Human-readable explanation (names the file and says to delete and re-download it).
        path: The offending file.
    """

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self) -> tuple[type, tuple[str, Path | None]]:
        return type(self), (str(self), self.path)


def _check_arch(arch: str) -> None:
    if arch == "lenet":
        raise ValueError(
            "lenet has no ImageNet weights; build it with pretrained=False or choose one of: "
            + ", ".join(PRETRAINED_ARCHS)
        )
    if arch not in PRETRAINED_ARCHS:
        raise ValueError(
            f"no pretrained weights for arch {arch!r}; choose one of: {', '.join(PRETRAINED_ARCHS)}"
        )


def _torchvision_weights(arch: str) -> torchvision.models.WeightsEnum:
    model_name, member = _TORCHVISION_WEIGHTS[arch]
    return torchvision.models.get_model_weights(model_name)[member]


def weights_url(arch: str) -> str:
    """URL of the ImageNet weights file for ``arch``.

    Args:
        arch: One of :data:`PRETRAINED_ARCHS`.

    Returns:
        The download URL.

    Raises:
        ValueError: If ``arch`` has no ImageNet weights.
    """
    _check_arch(arch)
    if arch == "deit_s":
        return DEIT_S_URL
    return _torchvision_weights(arch).url


def expected_weights_path(arch: str) -> Path:
    """Path at which the torch hub cache holds (or will hold) the ImageNet weights of ``arch``.

    This is ``<torch.hub.get_dir()>/checkpoints/<file name of the URL>``, exactly where
    ``torch.hub.load_state_dict_from_url`` (used by torchvision) looks.

    Args:
        arch: One of :data:`PRETRAINED_ARCHS`.

    Returns:
        The expected file path (it may not exist).

    Raises:
        ValueError: If ``arch`` has no ImageNet weights.
    """
    file_name = os.path.basename(urlparse(weights_url(arch)).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def _how_to_fetch(path: Path, url: str) -> str:
    return (
        f"Download {url} to {path} on a machine with internet (e.g. `curl -L --create-dirs -o {path} {url}`), "
        f"or set TORCH_HOME so that $TORCH_HOME/hub/checkpoints/{path.name} holds the file."
    )


def _missing(arch: str, path: Path, url: str, reason: str) -> MissingWeightsError:
    return MissingWeightsError(
        f"ImageNet weights for {arch!r} are not available: {reason}. Expected file: {path} (URL: {url}). "
        + _how_to_fetch(path, url),
        path=path,
        url=url,
    )


def _corrupt(arch: str, path: Path, url: str, exc: BaseException) -> CorruptWeightsError:
    return CorruptWeightsError(
        f"could not load the cached ImageNet weights for {arch!r} from {path} "
        f"({type(exc).__name__}: {exc}). The file is probably truncated, corrupt or not the expected "
        f"checkpoint: delete {path} and re-download it from {url}.",
        path=path,
    )


def weights_problem(arch: str, allow_download: bool | None = None) -> MissingWeightsError | None:
    """The error ``load_pretrained`` would raise for a weights file that is neither cached nor downloadable
    now (downloading off, or its host unreachable), found without loading anything; ``None`` otherwise."""
    if allow_download is None:
        allow_download = downloads_allowed_by_env()
    path, url = expected_weights_path(arch), weights_url(arch)
    if path.is_file():
        return None
    blocked = download_blocker(url, allow_download)
    return (
        None
        if blocked is None
        else _missing(arch, path, url, f"the file is not in the torch hub cache, and {blocked}")
    )


def load_pretrained(
    arch: str,
    allow_download: bool | None = None,
    *,
    num_classes: int | None = None,
    dropout: float | None = None,
) -> nn.Module:
    """Build the standard ImageNet network for ``arch`` and load its ImageNet weights.

    Args:
        arch: One of :data:`PRETRAINED_ARCHS`.
        allow_download: Whether a missing weights file may be downloaded into the torch hub cache.
            ``None`` means True unless the environment variable ``SELFLOOP_OFFLINE`` or
            ``HF_HUB_OFFLINE`` is set to ``1``.
        num_classes: If given, replace the final classification layer by a freshly initialised one
            with this many outputs (ResNet50 gets ``Dropout -> Linear`` since it has no Dropout of its
            own; DeiT-S uses timm's ``num_classes``). ``None`` keeps the 1000-class ImageNet head.
        dropout: If given, dropout probability of the classification head (the existing Dropout
            layers of AlexNet, VGG19 and MobileNetV3, timm's ``drop_rate`` for DeiT-S, the new
            head of ResNet50). ``None`` keeps the architecture defaults (ResNet50: 0.5 when its
            head is replaced, no Dropout otherwise).

    Returns:
        The network with ImageNet weights loaded (in train mode).

    Raises:
        ValueError: If ``arch`` has no ImageNet weights.
        MissingWeightsError: If the weights file is not cached and downloading is disabled or fails.
            The message names the expected path and the URL.
        CorruptWeightsError: If the cached weights file cannot be loaded into the network.
    """
    _check_arch(arch)
    if allow_download is None:
        allow_download = downloads_allowed_by_env()
    problem = weights_problem(arch, allow_download)
    if problem is not None:
        raise problem
    path, url = expected_weights_path(arch), weights_url(arch)
    if arch == "deit_s":
        return _load_deit_s(path, url, num_classes=num_classes, dropout=dropout)
    return _load_torchvision(arch, path, url, num_classes=num_classes, dropout=dropout)


def _load_torchvision(
    arch: str, path: Path, url: str, *, num_classes: int | None, dropout: float | None
) -> nn.Module:
    weights = _torchvision_weights(arch)
    model_name, _ = _TORCHVISION_WEIGHTS[arch]
    kwargs = {"dropout": dropout} if dropout is not None and arch != "resnet50" else {}
    model = torchvision.models.get_model(model_name, weights=None, **kwargs)
    try:
        # Downloads into <hub dir>/checkpoints/ if absent (atomically: a failed download leaves no file).
        state_dict = weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:
        if path.is_file():
            raise _corrupt(arch, path, url, exc) from exc
        if isinstance(exc, (OSError, RuntimeError, HTTPException)):  # URLError is an OSError
            raise _missing(arch, path, url, f"downloading failed ({type(exc).__name__}: {exc})") from exc
        raise
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise _corrupt(arch, path, url, exc) from exc
    if num_classes is not None or (arch == "resnet50" and dropout is not None):
        _replace_head(model, arch, num_classes, dropout)
    return model


def _replace_head(model: nn.Module, arch: str, num_classes: int | None, dropout: float | None) -> None:
    """Replace the final ``nn.Linear`` of a torchvision ImageNet network (in place)."""
    if arch == "resnet50":
        old = model.fc
        head = nn.Linear(old.in_features, num_classes) if num_classes is not None else old
        model.fc = nn.Sequential(nn.Dropout(p=0.5 if dropout is None else dropout), head)
        return
    # alexnet, vgg19 and mobilenet_v3_large all end in ``classifier[-1] = nn.Linear``.
    old = model.classifier[-1]
    model.classifier[-1] = nn.Linear(old.in_features, num_classes)


def _load_deit_s(path: Path, url: str, *, num_classes: int | None, dropout: float | None) -> nn.Module:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Writes to a temporary file and renames it at the end: a failed download leaves no file.
            torch.hub.download_url_to_file(url, str(path), progress=True)
        except (OSError, RuntimeError, HTTPException) as exc:
            raise _missing("deit_s", path, url, f"downloading failed ({type(exc).__name__}: {exc})") from exc
    kwargs: dict[str, object] = {}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if dropout is not None:
        kwargs["drop_rate"] = dropout
    import timm  # only a DeiT needs it: the command line starts without it

    try:
        return timm.create_model(
            DEIT_S_TIMM_NAME, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs
        )
    except Exception as exc:
        raise _corrupt("deit_s", path, url, exc) from exc
