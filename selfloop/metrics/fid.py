"""Fréchet distance of each generation's samples to the real set (the paper's Table 1).

``FidTracker`` wraps torchmetrics' ``FrechetInceptionDistance`` with ``reset_real_features=False``:
the real set's feature statistics are computed once per run (and can be persisted to a file, so a
resumed run does not recompute them), and every generation is scored against them on a fixed number
``N`` of images, drawn from each set with a seeded generator (FID is biased by ``N``, so ``N`` must
not change within a table).

Two feature extractors:

* ``inception``: the standard FID Inception-v3 (TensorFlow weights of 2015-12-05 converted by
  torch-fidelity), through torchmetrics' ``NoTrainInceptionV3``. It needs the ``torch-fidelity``
  package and the weights file ``weights-inception-2015-12-05-6726825d.pth``; nothing is downloaded
  here. torch-fidelity would fetch it from ``INCEPTION_WEIGHTS_URL`` into torch hub's cache, so the
  default location is ``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``
  (``~/.cache/torch/hub/checkpoints/`` by default; see ``default_inception_weights_path``). Images
  are resized to 299 px inside the extractor: ``tf1_bilinear`` (torch-fidelity's port of
  TensorFlow 1's bilinear resize, the reference FID protocol) or ``antialias_bilinear``
  (torchmetrics' default).
* ``domain``: the penultimate features of a frozen classifier trained on the real set
  (``penultimate_extractor``), which suits 28-32 px digits far better than ImageNet features.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from selfloop.core.errors import SelfLoopError
from selfloop.run.atomic import atomic_torch_save, atomic_write_text

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
InceptionResize = Literal["tf1_bilinear", "antialias_bilinear"]
_REAL_STATES = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")
_CACHE_FORMAT = 1


class MissingInceptionWeightsError(SelfLoopError, FileNotFoundError):
    """The FID Inception weights file is not where it was expected."""


def default_inception_weights_path() -> Path:
    """Where torch-fidelity caches the FID Inception weights: ``<torch hub dir>/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def inception_weights_problem(weights_path: str | Path | None = None) -> MissingInceptionWeightsError | None:
    """The error for a FID Inception weights file that is not there (``None`` when it is); nothing is loaded.

    Args:
        weights_path: the weights file (default: ``default_inception_weights_path()``).
    """
    path = Path(weights_path) if weights_path is not None else default_inception_weights_path()
    if path.is_file():
        return None
    return MissingInceptionWeightsError(
        f"FID Inception weights not found at {path}. Download {INCEPTION_WEIGHTS_URL} on a machine with "
        f"internet and copy it to {path} (or pass its location as --loop.fid_inception_weights); "
        f"torchmetrics/torch-fidelity look for {INCEPTION_WEIGHTS_FILE} in torch hub's checkpoints folder"
    )


class InceptionFeatures(nn.Module):
    """The standard 2048-d FID Inception-v3 pool features of uint8 images (grayscale repeated to RGB).

    Args:
        weights_path: the weights file (default: ``default_inception_weights_path()``).
        resize: how images are resized to 299 px (see the module doc).
    """

    num_features = 2048

    def __init__(
        self, weights_path: str | Path | None = None, resize: InceptionResize = "tf1_bilinear"
    ) -> None:
        super().__init__()
        if resize not in ("tf1_bilinear", "antialias_bilinear"):
            raise ValueError(f"resize must be 'tf1_bilinear' or 'antialias_bilinear', got {resize!r}")
        path = Path(weights_path) if weights_path is not None else default_inception_weights_path()
        missing = inception_weights_problem(path)
        if missing is not None:
            raise missing
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
            from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
        except ImportError as error:  # pragma: no cover - torchmetrics is a dependency
            raise ModuleNotFoundError(f"the inception FID extractor needs torchmetrics: {error}") from error
        if not _TORCH_FIDELITY_AVAILABLE:
            raise ModuleNotFoundError(
                "the inception FID extractor needs the torch-fidelity package: pip install torch-fidelity "
                "(or torchmetrics[image]); or use the domain extractor"
            )
        self.resize = resize
        self.weights_path = path
        self.inception = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=[str(self.num_features)],
            feature_extractor_weights_path=str(path),
            antialias=resize == "antialias_bilinear",
        )

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return self.inception(images.contiguous())


class _PenultimateFeatures(nn.Module):
    """A frozen copy of a classifier that returns the input of its last linear layer."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        # A copy: freezing and eval mode must not leak into the caller's model. Lightning modules
        # drop their trainer when copied (LightningModule.__getstate__).
        self.classifier = copy.deepcopy(classifier).eval().requires_grad_(False)
        self.head = _last_linear(self.classifier)
        self.num_features = int(self.head.in_features)
        self._captured: Tensor | None = None
        self.head.register_forward_pre_hook(self._capture)

    def _capture(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        self._captured = args[0]

    def train(self, mode: bool = True) -> _PenultimateFeatures:
        # Features must be deterministic: dropout and batch norm stay in eval mode whatever the caller does.
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        self._captured = None
        self.classifier(images)
        features, self._captured = self._captured, None
        if features is None:
            raise RuntimeError(
                "the classifier's last linear layer was not called; penultimate features unavailable"
            )
        return features.flatten(1).float()


def _last_linear(model: nn.Module) -> nn.Linear:
    """The classification head: the last ``nn.Linear`` producing ``num_classes`` outputs, else the last one."""
    backbone = getattr(model, "net", model)
    linears = [m for m in backbone.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to take penultimate features from")
    hparams = getattr(model, "hparams", None)
    num_classes = hparams.get("num_classes") if isinstance(hparams, Mapping) else None
    heads = [m for m in linears if m.out_features == num_classes]
    return heads[-1] if heads else linears[-1]


def penultimate_extractor(classifier: nn.Module) -> nn.Module:
    """The ``domain`` extractor: features entering the classifier's last linear layer.

    Works for ``ImageClassifier`` (uint8 images in, its own preprocessing) and any module whose
    forward ends in an ``nn.Linear``; the head is found in ``classifier.net`` if present. The
    classifier is copied and frozen in eval mode (dropout off); the result has ``num_features``.

    Args:
        classifier: a classifier trained on the real set (f_0).
    """
    return _PenultimateFeatures(classifier)


class FidTracker:
    """FID of each generation's samples against the real set's cached statistics.

    Args:
        extractor: maps uint8 ``(B, C, H, W)`` images to ``(B, D)`` features; a ``num_features``
            attribute spares torchmetrics a probe with a random 3x299x299 image.
        num_samples: N, images drawn from the real set and from each generation's samples.
        seed: seeds the draws (the same indices for the same set size).
        extractor_name: recorded in ``describe`` (``inception`` or ``domain``).
        resize: how images are resized for the extractor, recorded in ``describe`` (default: the
            extractor's ``resize`` attribute, else ``native``).
        batch_size: images per forward pass.
        device: where the extractor runs.
    """

    def __init__(
        self,
        extractor: nn.Module,
        num_samples: int,
        seed: int,
        extractor_name: str,
        resize: str | None = None,
        batch_size: int = 256,
        device: torch.device | str = "cpu",
    ) -> None:
        if num_samples < 2:
            raise ValueError(
                f"FID num_samples must be >= 2 (a covariance needs two samples), got {num_samples}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_samples = num_samples
        self.seed = seed
        self.extractor_name = extractor_name
        self.resize = resize if resize is not None else str(getattr(extractor, "resize", "native"))
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.extractor = extractor
        # normalize=False: images go in as uint8, as the Inception weights expect.
        # sync_on_compute=False: under DDP every rank scores the same images, so summing the
        # states across ranks would count each image once per rank.
        self.metric = FrechetInceptionDistance(
            feature=extractor, reset_real_features=False, normalize=False, sync_on_compute=False
        )
        self.metric.to(self.device)
        self.num_features = int(self.metric.real_features_sum.numel())
        self._has_real = False

    def describe(self) -> dict[str, Any]:
        """The settings that make FID values comparable, for the metrics log."""
        return {
            "extractor": self.extractor_name,
            "num_samples": self.num_samples,
            "resize": self.resize,
            "seed": self.seed,
            "num_features": self.num_features,
        }

    def _subsample(self, images: Tensor, stream: int, what: str) -> Tensor:
        if len(images) < self.num_samples:
            raise ValueError(
                f"FID needs {self.num_samples} {what} images (fixed N per run), got {len(images)}; "
                "lower the FID sample count or provide more images"
            )
        generator = torch.Generator().manual_seed(self.seed * 2 + stream)
        index = torch.randperm(len(images), generator=generator)[: self.num_samples]
        return images[index]

    def _update(self, images: Tensor, real: bool) -> None:
        for chunk in images.split(self.batch_size):
            self.metric.update(chunk.to(self.device), real=real)

    def _cache_meta(self, num_real: int, image_shape: tuple[int, ...]) -> dict[str, Any]:
        return {
            "format": _CACHE_FORMAT,
            **self.describe(),
            "num_real": num_real,
            "image_shape": list(image_shape),
        }

    def set_real(self, images: Tensor, cache_path: str | Path | None = None, use_cache: bool = True) -> None:
        """Compute (or load) the real set's feature statistics from N of its images.

        Args:
            images: uint8 ``(M, C, H, W)`` real images, ``M >= N``.
            cache_path: a file for the statistics: loaded if it exists and was made with the same
                settings (``describe()``, number and shape of real images), else computed and written
                atomically. A file made with other settings is recomputed and overwritten.
            use_cache: ``False`` recomputes and overwrites the file whatever it holds (the caller found
                it untrustworthy, e.g. not matching its recorded hash).
        """
        meta = self._cache_meta(len(images), tuple(images.shape[1:]))
        path = Path(cache_path) if cache_path is not None else None
        if path is not None and use_cache and path.is_file():
            try:
                cached = torch.load(path, map_location="cpu", weights_only=True)
            except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):
                cached = {}  # unreadable: recomputed like a file made with other settings
            if isinstance(cached, dict) and cached.get("meta") == meta:
                for name in _REAL_STATES:
                    setattr(self.metric, name, cached[name].to(self.device))
                self._has_real = True
                return
        for name in _REAL_STATES:
            setattr(self.metric, name, torch.zeros_like(getattr(self.metric, name)))
        with torch.no_grad():
            self._update(self._subsample(images, 0, "real"), real=True)
        self._has_real = True
        if path is not None:
            states = {name: getattr(self.metric, name).detach().cpu() for name in _REAL_STATES}
            atomic_torch_save(path, {"meta": meta, **states})

    def score(self, images: Tensor) -> float:
        """FID of N of ``images`` (uint8 ``(M, C, H, W)``, ``M >= N``) against the real statistics."""
        if not self._has_real:
            raise RuntimeError("FidTracker.score called before set_real: the real statistics are missing")
        self.metric.reset()  # fake statistics only: reset_real_features=False keeps the real ones
        with torch.no_grad():
            self._update(self._subsample(images, 1, "generated"), real=False)
            return float(self.metric.compute())


def write_fid_table(
    csv_path: str | Path, md_path: str | Path, rows: Iterable[Mapping[str, Any]], digits: int = 2
) -> None:
    """Write a Table-1-style FID table: a row per setting, a column per generation.

    Args:
        csv_path: the CSV file (``setting, g0, g1, ...``; full precision, empty where missing).
        md_path: the markdown file (``digits`` decimals, ``-`` where missing).
        rows: records with keys ``setting`` (str), ``generation`` (int) and ``fid`` (float), e.g. the
            FID entries of the metrics log; settings keep their first-seen order.
        digits: decimals in the markdown table.
    """
    table: dict[str, dict[int, float]] = {}
    for i, row in enumerate(rows):
        try:
            setting, generation, fid = str(row["setting"]), int(row["generation"]), float(row["fid"])
        except KeyError as error:
            raise ValueError(
                f"FID table row {i} lacks the key {error}; rows need setting, generation, fid"
            ) from None
        cells = table.setdefault(setting, {})
        if generation in cells:
            raise ValueError(f"FID table: setting {setting!r} has two values for generation {generation}")
        cells[generation] = fid
    generations = sorted({g for cells in table.values() for g in cells})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["setting", *(f"g{g}" for g in generations)])
    for setting, cells in table.items():
        writer.writerow([setting, *(repr(cells[g]) if g in cells else "" for g in generations)])
    atomic_write_text(csv_path, buffer.getvalue())

    def fmt(value: float | None) -> str:
        return "-" if value is None else ("nan" if math.isnan(value) else f"{value:.{digits}f}")

    lines = [
        "| setting | " + " | ".join(f"gen {g}" for g in generations) + " |",
        "| --- | " + " | ".join("---:" for _ in generations) + " |",
    ]
    lines += [
        f"| {setting.replace('|', '/')} | " + " | ".join(fmt(cells.get(g)) for g in generations) + " |"
        for setting, cells in table.items()
    ]
    atomic_write_text(md_path, "\n".join(lines) + "\n")
