"""Sentences the report repeats wherever what they describe appears (one place to change them)."""

from __future__ import annotations

Q_JUDGE = (
    "an independent judge: a classifier of the scorer arch (--loop.scorer_arch, default the first of "
    "--loop.archs) trained once on real data only, with a seed of its own, that never scores the filter"
)
"""Who decides whether a generated sample shows its class."""

Q_TEXT = (
    f"Class fidelity gen_label_acc (all samples) and q_t = gen_label_acc_kept (the samples the filter kept): "
    f"the fraction of a generation's samples labelled as the class they were generated for by {Q_JUDGE}."
)
"""What q_t is and who judged it."""
