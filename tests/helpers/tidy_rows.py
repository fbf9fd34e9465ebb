"""Tidy metric rows (``generation, arch, seed, metric, value``) as ``metrics.csv`` holds them, for tests that
simulate runs without writing them (plain helpers)."""

from __future__ import annotations

from collections.abc import Sequence

from selfloop.analysis.runs import GENERATOR_ARCH

Q_METRIC, U_METRIC = "gen_label_acc_kept", "u_t"


def metric_rows(
    seed: int, arch: str, metric: str, values: Sequence[float], first_generation: int = 0
) -> list[dict]:
    """One row per value, for generations ``first_generation``, ``first_generation + 1``, ..."""
    return [
        {"generation": g, "arch": arch, "seed": seed, "metric": metric, "value": v}
        for g, v in enumerate(values, start=first_generation)
    ]


def quality_rows(seed: int, q: Sequence[float], u: Sequence[float], first_generation: int = 1) -> list[dict]:
    """The generator's q_t and u_t rows of generations ``first_generation``, ...: per generation q_t, then u_t."""
    q_rows = metric_rows(seed, GENERATOR_ARCH, Q_METRIC, q, first_generation)
    u_rows = metric_rows(seed, GENERATOR_ARCH, U_METRIC, u, first_generation)
    return [r for pair in zip(q_rows, u_rows, strict=True) for r in pair]
