"""The models eq. 6 is compared with: a constant factor per arch and generation effects, with and without
eq. 6's data terms.

Like eq. 6 (``selfloop.analysis.eq6_fit``), each is fitted by least squares of the one-step prediction
``B_{t+1} - A B_t`` from the observed ``B_t``:

* a constant factor per arch, ``A = c_M`` (``constant_factors``);
* generation effects, ``A = c_M g_t`` (``generation_factors``): a factor per transition t -> t+1 shared
  by every seed and arch;
* eq. 6 plus generation effects, ``A = c_M g_t (1 + kappa_Q (qbar_t - q_t) + kappa_U (u_t - ubar_t))``
  (``solve_with_generations``), whose kappas can use only how q_t and u_t vary at one transition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from selfloop.analysis.eq6_transitions import Transitions


def full_column_rank(columns: Sequence[np.ndarray], b0: np.ndarray) -> bool:
    """Whether a linearised design (one column per parameter) identifies every parameter.

    Columns are normalised before the rank test, so a column whose norm is only rounding relative to
    ``b0`` (e.g. deviations of q_t from a transition's mean when every seed has the same q_t) counts as
    zero rather than as a regressor of its own. Fewer rows than columns never identify them all.

    Args:
        columns: the design's columns, each one value per transition.
        b0: ``B_t`` of the same transitions (the scale of every column).
    """
    if not columns:
        return True
    design = np.stack(columns, axis=1)
    norms = np.linalg.norm(design, axis=0)
    if design.shape[0] < design.shape[1] or norms.min() <= 1e-9 * np.linalg.norm(b0):
        return False
    return int(np.linalg.matrix_rank(design / norms, tol=1e-8)) == design.shape[1]


def constant_factors(obs: Transitions) -> np.ndarray:
    """Per arch the least-squares ``c`` of ``B_{t+1} = c B_t`` (NaN without a transition with B_t != 0)."""
    num = np.bincount(obs.arch, obs.b0 * obs.b1, minlength=obs.n_arch)
    den = np.bincount(obs.arch, obs.b0**2, minlength=obs.n_arch)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


@dataclass(frozen=True)
class GenerationEffects:
    """``A = c_M g_t (1 + kappa_Q (qbar_t - q_t) + kappa_U (u_t - ubar_t))``: a factor per arch times one
    per transition, and optionally the effect of a seed's q_t / u_t departing from the transition's mean.

    The transition factor ``g_t`` (t -> t+1) is shared by every seed and arch (the archs differ by ``c_M``
    only, as in eq. 6), so it captures any change of A with the generation index, whatever drives it. With
    the kappas at 0 this is the generation-effects model. With them free it is eq. 6 plus generation
    effects in its within-transition form: ``g_t`` absorbs A at the transition's mean quality and
    unbalance (``qbar_t``, ``ubar_t``, means over the fitted transitions), and the kappas (eq. 6's, to first
    order, signs included: lower quality raises A) can only use how q_t and u_t vary across seeds at one
    transition, which the generation index cannot explain. Centring also keeps the fit well conditioned.

    Args:
        c: per arch (NaN for an arch without information).
        g: per starting generation t (NaN for a transition without information).
        kappa_q: the q_t term (0 in the generation-effects model).
        kappa_u: the u_t term.
        q_mean: ``qbar_t`` per starting generation (None with both kappas at 0).
        u_mean: ``ubar_t``.
    """

    c: np.ndarray
    g: np.ndarray
    kappa_q: float = 0.0
    kappa_u: float = 0.0
    q_mean: np.ndarray | None = None
    u_mean: np.ndarray | None = None

    def factor(self, arch: np.ndarray, t: np.ndarray, q: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A per transition (NaN for an arch or transition the fit has not seen)."""
        seen = t < len(self.g)
        index = np.where(seen, t, 0)
        a = np.where(seen, self.c[arch] * self.g[index], np.nan)
        if self.q_mean is None or self.u_mean is None:
            return a
        return a * (1.0 + self.kappa_q * (self.q_mean[index] - q) + self.kappa_u * (u - self.u_mean[index]))


def generation_factors(obs: Transitions, n_generations: int, iterations: int = 500) -> GenerationEffects:
    """Least squares of ``B_{t+1} - c_M g_t B_t`` by alternating the two closed-form updates.

    The problem is bilinear: with g fixed, each ``c_M`` is a ratio of sums, and with c fixed each ``g_t``;
    alternating never raises the squared error and stops when it no longer falls (relative 1e-12). The
    scale split between c and g is arbitrary (only their product predicts); ``g`` is normalised to mean 1.

    Args:
        obs: the transitions to fit.
        n_generations: length of ``g``, more than the largest starting generation in ``obs``.
        iterations: most alternations.
    """
    live = obs.subset(obs.b0 != 0)
    c = constant_factors(live)
    seen_a = np.isfinite(c)
    seen_t = np.bincount(live.t, minlength=n_generations) > 0
    if not len(live):
        return GenerationEffects(c, np.full(n_generations, np.nan))
    c = np.where(seen_a, c, 0.0)
    g = np.ones(n_generations)

    def ratio(index: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
        den = np.bincount(index, x * x, minlength=n)
        return np.bincount(index, x * live.b1, minlength=n) / np.where(den > 0, den, 1.0)

    last = math.inf
    for _ in range(iterations):
        g = np.where(seen_t, ratio(live.t, c[live.arch] * live.b0, n_generations), 1.0)
        c = ratio(live.arch, g[live.t] * live.b0, obs.n_arch)
        sse = float(np.sum((c[live.arch] * g[live.t] * live.b0 - live.b1) ** 2))
        if sse >= last * (1 - 1e-12):
            break
        last = sse
    scale = float(np.mean(g[seen_t]))
    if scale > 0:
        g, c = g / scale, c * scale
    return GenerationEffects(np.where(seen_a, c, np.nan), np.where(seen_t, g, np.nan))


def _transition_means(obs: Transitions, n_generations: int) -> tuple[np.ndarray, np.ndarray]:
    """``qbar_t`` and ``ubar_t``: q_t and u_t averaged over the transitions from generation t."""
    count = np.maximum(np.bincount(obs.t, minlength=n_generations), 1)
    return (
        np.bincount(obs.t, obs.q, minlength=n_generations) / count,
        np.bincount(obs.t, obs.u, minlength=n_generations) / count,
    )


def within_generation_terms(obs: Transitions) -> tuple[bool, bool]:
    """Whether kappa_Q and kappa_U are identified next to generation effects: (free_q, free_u).

    Next to a factor per transition, q_t and u_t inform only through their variation across seeds (and
    archs) at one transition; a term whose regressor is a function of t (or of the other term) is not
    identified. Checked on the design linearised at kappa = 0, as in ``spec``.
    """
    live = obs.subset(obs.b0 != 0)
    if not len(live):
        return False, False
    q_mean, u_mean = _transition_means(live, int(live.t.max()) + 1)
    archs = [a for a in range(obs.n_arch) if np.any(live.arch == a)]
    base = [live.b0 * (live.t == t) for t in np.unique(live.t)] + [
        live.b0 * (live.arch == a) for a in archs[1:]
    ]

    q_col, u_col = live.b0 * (q_mean[live.t] - live.q), live.b0 * (live.u - u_mean[live.t])
    if obs.use_u and full_column_rank([*base, q_col, u_col], live.b0):
        return True, True
    if full_column_rank([*base, q_col], live.b0):
        return True, False
    return False, bool(obs.use_u and full_column_rank([*base, u_col], live.b0))


def solve_with_generations(obs: Transitions, n_generations: int) -> GenerationEffects:
    """Least squares of eq. 6 plus generation effects (``GenerationEffects`` with free kappas).

    Starts from ``generation_factors``; the first arch's ``c`` is fixed (c and g share one scale). Kappas
    that ``within_generation_terms`` finds unidentified stay 0, so without any the result is generation
    effects.

    Args:
        obs: the transitions to fit.
        n_generations: length of ``g``, more than the largest starting generation in ``obs``.
    """
    start = generation_factors(obs, n_generations)
    free_q, free_u = within_generation_terms(obs)
    if not (free_q or free_u):
        return start
    live = obs.subset((obs.b0 != 0) & np.isfinite(start.factor(obs.arch, obs.t, obs.q, obs.u)))
    q_mean, u_mean = _transition_means(live, n_generations)
    archs, ts = np.unique(live.arch), np.unique(live.t)
    arch_pos, t_pos = np.searchsorted(archs, live.arch), np.searchsorted(ts, live.t)
    dq, du = q_mean[live.t] - live.q, live.u - u_mean[live.t]
    n_free = int(free_q) + int(free_u)

    def unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
        c = np.concatenate([[start.c[archs[0]]], x[: len(archs) - 1]])
        g = x[len(archs) - 1 : len(archs) - 1 + len(ts)]
        kappas = x[len(x) - n_free :]
        return c, g, float(kappas[0]) if free_q else 0.0, float(kappas[-1]) if free_u else 0.0

    def residuals(x: np.ndarray) -> np.ndarray:
        c, g, kq, ku = unpack(x)
        return c[arch_pos] * g[t_pos] * (1.0 + kq * dq + ku * du) * live.b0 - live.b1

    def jacobian(x: np.ndarray) -> np.ndarray:
        c, g, kq, ku = unpack(x)
        data = 1.0 + kq * dq + ku * du
        columns = [g[t_pos] * data * live.b0 * (arch_pos == i) for i in range(1, len(archs))]
        columns += [c[arch_pos] * data * live.b0 * (t_pos == i) for i in range(len(ts))]
        scale = c[arch_pos] * g[t_pos] * live.b0
        columns += [scale * dq] if free_q else []
        columns += [scale * du] if free_u else []
        return np.stack(columns, axis=1)

    x0 = np.concatenate([start.c[archs[1:]], start.g[ts], np.zeros(n_free)])
    c, g, kq, ku = unpack(least_squares(residuals, x0, jacobian, method="trf", x_scale="jac").x)
    full_c, full_g = np.full(obs.n_arch, np.nan), np.full(n_generations, np.nan)
    full_c[archs], full_g[ts] = c, g
    return GenerationEffects(full_c, full_g, kq, ku, q_mean, u_mean)
