"""How precise a number read back from text is (a file, a command's output): what the tolerances of tests
that recompute a printed figure from other printed figures follow from, on any CPU."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from decimal import Decimal


def written_rounding(text: str) -> float:
    """The most that writing a value as ``text`` changed it: half a unit in its last written digit
    (``"0.1234567"``: 5e-8; ``"1.5e-05"``: 5e-7; ``"12.5"``: 0.05)."""
    return 0.5 * 10.0 ** Decimal(text).as_tuple().exponent


def agrees_within_rounding(printed: str, f: Callable[..., float], *inputs: str | Sequence[str]) -> bool:
    """Whether ``printed`` can be ``f`` of the values that ``inputs`` were rounded from.

    ``f`` must be monotone in each argument (sums, quotients of positive values, medians), so that its
    extremes over the box of unrounded values lie at the box's corners. An input may be a list of texts
    (e.g. the runs whose median ``f`` takes); ``f`` then gets a list.
    """
    groups = [[text] if isinstance(text, str) else list(text) for text in inputs]
    flat = [text for group in groups for text in group]
    bounds = [(float(t) - written_rounding(t), float(t) + written_rounding(t)) for t in flat]
    found = []
    for corner in itertools.product(*bounds):
        values, args = iter(corner), []
        for text, group in zip(inputs, groups, strict=True):
            args.append(next(values) if isinstance(text, str) else [next(values) for _ in group])
        found.append(f(*args))
    # A relative 1e-12 for the float arithmetic of f itself.
    slack = written_rounding(printed) + 1e-12 * max(abs(v) for v in found)
    return min(found) - slack <= float(printed) <= max(found) + slack
