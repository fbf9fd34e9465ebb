"""Scorers rate generated samples; higher means a better sample of its intended class."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor

from selfloop.classifiers.image_classifier import ImageClassifier


@dataclass
class ScoringContext:
    """What a scorer may use besides the samples.

    Args:
        class_names: a name per class (prompts for text-image scorers).
        previous_classifier: f_{n-1}, the previous generation's classifier of the scorer arch.
        seed: seed for any randomness in scoring (MC dropout).
        device: where scoring models run.
    """

    class_names: list[str]
    previous_classifier: ImageClassifier | None = None
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


class Scorer(ABC):
    """Rates every generated sample; plug-in point of the expert-guided filter."""

    name: str = "scorer"

    def preflight(self) -> None:
        """Check now that scoring will work (e.g. that model weights are on disk); raise if not.

        ``SampleFilter`` calls it when it is built, so that a run stops before any training work.
        Default: nothing to check.
        """
        return

    @abstractmethod
    def score(self, images: Tensor, labels: Tensor, context: ScoringContext) -> Tensor:
        """Score samples.

        Args:
            images: uint8 ``(N, C, H, W)`` generated images.
            labels: int64 ``(N,)`` the classes they were generated for.
            context: see ``ScoringContext``.

        Returns:
            float ``(N,)``, higher is better.
        """


class UncertaintyScorer(Scorer):
    """The previous generation's classifier's confidence in the intended class, under MC dropout.

    The score is the softmax probability of the intended class averaged over ``mc_passes`` forward
    passes with dropout active (Gal & Ghahramani, 2016): a sample the classifier finds ambiguous or
    off-class scores low.

    Args:
        mc_passes: stochastic forward passes T per sample.
    """

    name = "uncertainty"

    def __init__(self, mc_passes: int = 10) -> None:
        if mc_passes < 1:
            raise ValueError(f"mc_passes must be >= 1, got {mc_passes}")
        self.mc_passes = mc_passes

    def score(self, images: Tensor, labels: Tensor, context: ScoringContext) -> Tensor:
        if context.previous_classifier is None:
            raise ValueError("the uncertainty scorer needs the previous generation's classifier")
        probs = context.previous_classifier.mc_dropout_probs(images, self.mc_passes, seed=context.seed)
        return probs.gather(1, labels.long().view(-1, 1)).squeeze(1)
