"""What is measured on a generation's samples: class fidelity, subgroup balance u_t, FID, diversity.

Each measurement is a small object with one job, called with the generation's candidates and the
filter's decision (:class:`GeneratedSamples`) and returning named values; :class:`GeneratedSampleMetrics`
runs a list of them in order. Adding a measurement (precision/recall, KID, ...) is a new class with a
``__call__`` and one more entry in the list the loop builds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from selfloop.classifiers.image_classifier import ImageClassifier
from selfloop.core.catalogue import GENERATOR_ARCH
from selfloop.data.image_set import ImageSet
from selfloop.metrics.diversity import features_of, kernel_inception_distance, precision_recall
from selfloop.metrics.fid import FidTracker
from selfloop.metrics.unbalance import ambiguous_fraction, unbalanced_generation


@dataclass(frozen=True)
class GeneratedSamples:
    """One generation's candidates and which of them the filter kept.

    Args:
        images: uint8 ``(M, C, H, W)`` candidates.
        labels: the class each candidate was generated for.
        keep: boolean mask of the survivors.
        device: where models that read the images run.
    """

    images: Tensor
    labels: Tensor
    keep: Tensor
    device: torch.device = torch.device("cpu")

    @property
    def kept_images(self) -> Tensor:
        return self.images[self.keep]

    @property
    def kept_labels(self) -> Tensor:
        return self.labels[self.keep]


class SampleMetric(Protocol):
    """A measurement of generated samples: named float values."""

    def __call__(self, samples: GeneratedSamples) -> dict[str, float]: ...


class ClassFidelity:
    """``gen_label_acc`` (q_t) of the candidates and of the kept samples, as judged by ``judge``.

    Args:
        judge: a classifier trained on real data only that never scores the filter.
    """

    def __init__(self, judge: ImageClassifier) -> None:
        self.judge = judge

    def __call__(self, samples: GeneratedSamples) -> dict[str, float]:
        judge = self.judge.to(samples.device)
        raw = judge.predict_labels(samples.images) == samples.labels
        kept = judge.predict_labels(samples.kept_images) == samples.kept_labels
        return {"gen_label_acc": raw.float().mean().item(), "gen_label_acc_kept": kept.float().mean().item()}


class SampleCounts:
    """How many candidates were drawn and how many the filter kept."""

    def __call__(self, samples: GeneratedSamples) -> dict[str, float]:
        return {"num_candidates": float(len(samples.labels)), "num_kept": float(int(samples.keep.sum()))}


class SubgroupBalance:
    """u_t of the kept samples (how far their subgroup mix is from the real set's, per class) and the
    fraction of them whose subgroup ``oracle`` could not read (left out of u_t).

    Args:
        oracle: subgroup id of each image (or ``AMBIGUOUS``).
        real: the real training split (its labels and subgroups are the reference mix).
        num_classes: C.
        num_subgroups: G.
    """

    def __init__(
        self, oracle: Callable[[Tensor], Tensor], real: ImageSet, num_classes: int, num_subgroups: int
    ) -> None:
        self.oracle = oracle
        self.real = real
        self.num_classes = num_classes
        self.num_subgroups = num_subgroups

    def __call__(self, samples: GeneratedSamples) -> dict[str, float]:
        subgroups = self.oracle(samples.kept_images)
        u_t = unbalanced_generation(
            subgroups,
            samples.kept_labels,
            self.real.subgroups,
            self.real.labels,
            self.num_classes,
            self.num_subgroups,
        )
        return {"u_t": u_t, "subgroup_ambiguous_frac": ambiguous_fraction(subgroups)}


class FrechetDistance:
    """``fid_raw`` and ``fid_kept``: FID of the candidates and of the kept samples against the real set
    (NaN for the kept ones when fewer than the tracker's N survived).

    Args:
        tracker: FID with the real set's statistics already set.
    """

    METRICS = ("fid_raw", "fid_kept")

    def __init__(self, tracker: FidTracker) -> None:
        self.tracker = tracker

    def __call__(self, samples: GeneratedSamples) -> dict[str, float]:
        kept = samples.kept_images
        enough = len(kept) >= self.tracker.num_samples
        return {
            "fid_raw": self.tracker.score(samples.images),
            "fid_kept": self.tracker.score(kept) if enough else float("nan"),
        }

    def table_rows(self, rows: Iterable[Mapping[str, str]]) -> list[dict]:
        """The FID table's rows (``setting, generation, fid``) from recorded metric rows, each setting
        labelled with what makes its values comparable (extractor, N, resize)."""
        info = self.tracker.describe()
        label = f"{info['extractor']}, N={info['num_samples']}, {info['resize']}"
        return [
            {
                "setting": f"{r['metric'].removeprefix('fid_')} ({label})",
                "generation": int(r["generation"]),
                "fid": float(r["value"]),
            }
            for r in rows
            if r["arch"] == GENERATOR_ARCH and r["metric"] in self.METRICS
        ]


class Diversity:
    """Precision, recall (Kynkäänniemi et al. 2019) and KID of the candidates (``_raw``) and of the kept
    samples (``_kept``) against a fixed subset of the real training images, in one feature space.

    A curation rule that buys subgroup balance with diversity shows here: recall falls when the kept
    samples cover less of the real data. Values are NaN where a set is too small (precision and recall
    need more than ``k`` samples, KID at least 2).

    Args:
        extractor: the feature module (the FID's: the judge's penultimate features or Inception).
        real: the real training images (uint8).
        num_samples: real images compared (a seeded subset when there are more).
        seed: draws the real subset and KID's subsets.
        k: the neighbourhood size of precision and recall.
        device: where the extractor runs.
    """

    def __init__(
        self, extractor: torch.nn.Module, real: Tensor, num_samples: int, seed: int, k: int = 3,
        device: torch.device | str = "cpu",
    ) -> None:  # fmt: skip
        generator = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(real), generator=generator)[: min(num_samples, len(real))]
        self.extractor = extractor
        self.real = real[pick.sort().values]
        self.seed = seed
        self.k = k
        self.device = device
        self.real_features = features_of(extractor, self.real, device=device)

    def _measure(self, images: Tensor) -> dict[str, float]:
        nan = float("nan")
        values = {"precision": nan, "recall": nan, "kid": nan}
        if len(images) > self.k:
            values.update(
                precision_recall(
                    self.real_features, features_of(self.extractor, images, device=self.device), self.k
                )
            )
        if len(images) >= 2:
            kid = kernel_inception_distance(
                self.real, images, self.extractor, seed=self.seed, device=self.device
            )
            values["kid"] = kid["kid"]
        return values

    def __call__(self, samples: GeneratedSamples) -> dict[str, float]:
        raw, kept = self._measure(samples.images), self._measure(samples.kept_images)
        return {**{f"{k}_raw": v for k, v in raw.items()}, **{f"{k}_kept": v for k, v in kept.items()}}


class GeneratedSampleMetrics:
    """Runs each measurement on a generation's samples and joins their values, in list order.

    Args:
        metrics: the measurements; two may not name the same value.

    Example::

        measure = GeneratedSampleMetrics([ClassFidelity(judge), SampleCounts()])
        measure(GeneratedSamples(images, labels, keep))  # {"gen_label_acc": ..., "num_kept": ...}
    """

    def __init__(self, metrics: Sequence[SampleMetric]) -> None:
        self.metrics = list(metrics)

    def __call__(self, samples: GeneratedSamples) -> dict[str, float]:
        values: dict[str, float] = {}
        for metric in self.metrics:
            measured = metric(samples)
            clash = values.keys() & measured.keys()
            if clash:
                raise ValueError(f"{type(metric).__name__} measures {sorted(clash)} again")
            values.update(measured)
        return values
