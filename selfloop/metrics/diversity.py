"""Diversity of a generation's samples against the real set: precision, recall and KID.

FID mixes two failures into one number: samples that look unlike real data (low fidelity) and a
generator that covers only part of the real data (low diversity, e.g. lost minority modes). These
metrics tell them apart:

* **Precision and recall** (Kynkäänniemi et al., 2019, "Improved Precision and Recall Metric for
  Assessing Generative Models"), on features: each sample of a set gets a ball whose radius is the
  distance to its ``k``-th nearest other sample of the same set (``k = 3`` by default); the balls'
  union estimates the set's support. *Precision* is the share of generated samples that lie in some
  real sample's ball (fidelity); *recall* the share of real samples that lie in some generated
  sample's ball (coverage: it drops when the generator loses modes). A point on a ball's boundary is
  inside, as in the authors' code.
* **KID** (Bińkowski et al., 2018): the unbiased MMD² between real and generated features with the
  cubic polynomial kernel ``k(x, y) = (x . y / d + 1) ** 3``, averaged over random subsets, through
  torchmetrics' ``KernelInceptionDistance`` fed uint8 images and a feature module, as ``FidTracker``
  does for FID (``selfloop.metrics.fid``: ``penultimate_extractor`` of the judge for small images, or
  ``InceptionFeatures``). Unlike FID it is unbiased in the sample count, so small generations compare
  fairly; the subset size must not exceed either set, so it is chosen from the counts
  (:func:`kid_subset_size`) unless given.

Features and images are expected in the same space for real and generated samples (same extractor).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torchmetrics.image.kid import KernelInceptionDistance

KID_MAX_SUBSET_SIZE = 1000
"""torchmetrics' default subset size, used where both sets are at least this large."""


@torch.no_grad()
def features_of(
    feature: nn.Module, images: Tensor, batch_size: int = 256, device: torch.device | str = "cpu"
) -> Tensor:
    """float ``(N, D)`` CPU features of uint8 ``(N, C, H, W)`` images, computed in batches on ``device``.

    The same call gives the features for :func:`precision_recall` and for the filter's ``diversity``
    selection (``SampleFilter(..., features=...)``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    feature = feature.to(device)
    chunks = [feature(chunk.to(device)).flatten(1).float().cpu() for chunk in images.split(batch_size)]
    return torch.cat(chunks) if chunks else torch.zeros(0, 0)


def _distances(a: Tensor, b: Tensor) -> Tensor:
    # float64: a point exactly on a ball's boundary must not fall out through float32 rounding.
    return torch.cdist(a.double(), b.double())


def knn_radii(features: Tensor, k: int = 3, batch_size: int = 1024) -> Tensor:
    """float64 ``(N,)``: each sample's distance to its ``k``-th nearest other sample of ``features``.

    Args:
        features: ``(N, D)`` features of one set, ``N > k``.
        k: the neighbourhood size.
        batch_size: rows of the distance matrix computed at once (memory ``batch_size * N``).
    """
    features = features.flatten(1)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(features) <= k:
        raise ValueError(f"k-NN radii with k = {k} need more than {k} samples, got {len(features)}")
    # Each row holds the sample's distance to itself (0), so the k-th other neighbour is the (k+1)-th
    # smallest entry.
    return torch.cat(
        [_distances(chunk, features).kthvalue(k + 1, dim=1).values for chunk in features.split(batch_size)]
    )


def _coverage(points: Tensor, centers: Tensor, radii: Tensor, batch_size: int) -> float:
    """The share of ``points`` inside at least one ball (``centers``, ``radii``)."""
    inside = [
        (_distances(chunk, centers) <= radii.unsqueeze(0)).any(dim=1) for chunk in points.split(batch_size)
    ]
    return float(torch.cat(inside).double().mean())


def precision_recall(
    real_features: Tensor, fake_features: Tensor, k: int = 3, batch_size: int = 1024
) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) of generated against real features.

    Args:
        real_features: ``(N, D)`` features of real samples, ``N > k``.
        fake_features: ``(M, D)`` features of generated samples (same extractor), ``M > k``.
        k: neighbourhood size of the k-NN balls (the paper's default 3).
        batch_size: rows of each distance matrix computed at once.

    Returns:
        ``{"precision": ..., "recall": ...}``, each in [0, 1].
    """
    real, fake = real_features.flatten(1).cpu(), fake_features.flatten(1).cpu()
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real features have {real.shape[1]} dimensions, generated ones {fake.shape[1]}")
    return {
        "precision": _coverage(fake, real, knn_radii(real, k, batch_size), batch_size),
        "recall": _coverage(real, fake, knn_radii(fake, k, batch_size), batch_size),
    }


def kid_subset_size(num_real: int, num_fake: int, cap: int = KID_MAX_SUBSET_SIZE) -> int:
    """KID's subset size: ``min(cap, num_real, num_fake)`` (torchmetrics refuses a larger one)."""
    size = min(cap, num_real, num_fake)
    if size < 2:
        raise ValueError(
            f"KID needs at least 2 real and 2 generated samples (an unbiased MMD), got {num_real} and {num_fake}"
        )
    return size


def kernel_inception_distance(
    real_images: Tensor,
    fake_images: Tensor,
    feature: nn.Module,
    subsets: int = 100,
    subset_size: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """KID of generated against real images through torchmetrics' ``KernelInceptionDistance``.

    Args:
        real_images: uint8 ``(N, C, H, W)`` real images.
        fake_images: uint8 ``(M, C, H, W)`` generated images.
        feature: maps uint8 images to ``(B, D)`` features (e.g. ``penultimate_extractor(judge)``).
        subsets: random subsets the MMD² is averaged over.
        subset_size: samples per subset (default :func:`kid_subset_size`: at most 1000 and at most
            either set's size).
        seed: seeds the subsets' draws (the global RNG is left as it was).
        batch_size: images per forward pass.
        device: where the feature module runs.

    Returns:
        ``{"kid": mean over subsets, "kid_std": their standard deviation, "kid_subset_size": ...}``.
    """
    size = subset_size if subset_size is not None else kid_subset_size(len(real_images), len(fake_images))
    if not 2 <= size <= min(len(real_images), len(fake_images)):
        raise ValueError(
            f"KID subset_size must lie in [2, {min(len(real_images), len(fake_images))}] (the smaller set), "
            f"got {size}"
        )
    # normalize=False: uint8 images go to the feature module unchanged, as for FID. sync_on_compute=False:
    # under DDP every rank scores the same images (see FidTracker).
    with warnings.catch_warnings():
        # Its warning that features are buffered would repeat every generation; the sets here are one
        # generation's samples and a real subset, which is what the buffer is for.
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(
            feature=feature, subsets=subsets, subset_size=size, normalize=False, sync_on_compute=False
        ).to(device)
    with torch.no_grad():
        for images, real in ((real_images, True), (fake_images, False)):
            for chunk in images.split(batch_size):
                metric.update(chunk.to(device), real=real)
        # KID draws its subsets with torch.randperm on the global CPU generator: seed a fork of it.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mean, std = metric.compute()
    return {"kid": float(mean), "kid_std": float(std), "kid_subset_size": float(size)}
