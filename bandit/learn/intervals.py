"""Confidence intervals for off-policy estimates that hold when rewards are rare.

The normal interval ``V̂ ± 1.96·SE`` assumes the estimate is close to normally
distributed. With a reward rate near 0.5%, IPS's per-round terms ``w_i r_i`` are 0 in
99.5% of the rounds and large in the rest: their mean is strongly skewed, the sample
standard error is small exactly when few rewards happened to be logged, and the normal
interval misses the truth on the high side more often than 2.5% of the time.
``experiments/studies/ope_coverage.py`` measures it.

Two constructions that do not assume normality, each a function of the per-round terms:

- **Empirical likelihood** (Owen, *Empirical likelihood ratio confidence intervals for a
  single functional*, Biometrika 1988; the construction VW's ``estimators`` library uses
  for its Cressie-Read intervals, which are the same idea with the extra constraint
  ``E[w] = 1``). For an estimating function ``z_i(μ)`` whose mean is zero at the true
  value (``w_i r_i − μ`` for IPS, ``w_i (r_i − μ)`` for SNIPS, the DR round term minus
  ``μ``), the profile likelihood ratio is

  ``R(μ) = max { Π n p_i : p_i ≥ 0, Σ p_i = 1, Σ p_i z_i(μ) = 0 }``,

  attained at ``p_i = 1 / (n (1 + λ z_i))`` with ``λ`` the root of
  ``Σ z_i / (1 + λ z_i) = 0``, so ``−2 log R(μ) = 2 Σ log(1 + λ z_i)``, which is
  asymptotically ``χ²₁`` (Wilks). The 95% interval is ``{μ : −2 log R(μ) ≤ χ²₁(0.95)}``:
  it re-weights the logged rounds instead of assuming a shape, so it is longer on the
  side where the rare large terms lie, and it never leaves the range of the terms.
- **Empirical likelihood with the largest possible weight** (``el_wmax``): as VW's
  Cressie-Read interval does (``estimators/bandits/cressieread.py``: one fake round at
  ``wmax``), each end is found with one pseudo-round added at the most extreme term the
  policy could have produced: for the high end the largest importance weight ``w_max``
  the policy can have on these contexts (``max π(a|x)/π_0(a|x)`` over every eligible
  action, when the logging probabilities are known) with the largest reward, for the low
  end with the smallest. The data cannot show a rare large term that happened not to be
  logged; the pseudo-round allows for one. It is what held 93% coverage where plain
  empirical likelihood did not (experiments/README.md, "Off-policy evaluation").
- **Empirical Bernstein** (Maurer & Pontil, *Empirical Bernstein bounds and sample
  variance penalization*, 2009, Theorem 4), two-sided with ``δ/2`` per side: for terms
  in a range of width ``R``, ``|E[X] − X̄| ≤ √(2 V ln(4/δ) / n) + 7 R ln(4/δ) / (3 (n − 1))``
  with ``V`` the sample variance. Valid in finite samples for bounded terms (here the
  observed range stands for the bound), but the range term makes it wide.

Pure numpy; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

INTERVALS = ("normal", "el", "el_wmax", "bernstein")
"""The interval constructions ``bandit.learn.ope``'s estimators take (``interval=``)."""

CHI2_1_95 = 3.841458820694124
"""``χ²₁``'s 95% quantile (= 1.96²): the empirical likelihood ratio's threshold."""

_LAMBDA_STEPS = 80
_MU_STEPS = 48


def el_statistic(z: np.ndarray) -> float:
    """``−2 log R`` for the hypothesis ``E[z] = 0`` (see the module docstring).

    Infinite when 0 lies outside the range of ``z`` (no re-weighting of the rounds has
    mean 0); 0 when every ``z_i`` is 0. ``λ`` by bisection on the decreasing function
    ``g(λ) = Σ z_i / (1 + λ z_i)``, within the bracket where every ``1 + λ z_i ≥ 1/n``
    (at the root every ``p_i ≤ 1``, so the root lies inside it)."""
    z = np.asarray(z, dtype=float)
    n = len(z)
    zmax, zmin = float(z.max()), float(z.min())
    if zmax <= 0 or zmin >= 0:
        return 0.0 if zmax == zmin == 0 else math.inf
    lo, hi = (1 / n - 1) / zmax, (1 / n - 1) / zmin
    for _ in range(_LAMBDA_STEPS):
        mid = 0.5 * (lo + hi)
        if float(np.sum(z / (1 + mid * z))) > 0:
            lo = mid
        else:
            hi = mid
    lam = 0.5 * (lo + hi)
    return float(2 * np.sum(np.log1p(lam * z)))


def el_interval(z_of: Callable[[float], np.ndarray], center: float, lowest: float, highest: float,
                threshold: float = CHI2_1_95) -> tuple[float, float]:
    """The empirical likelihood interval ``{μ : −2 log R(μ) ≤ threshold}`` for the value
    whose estimating function is ``z_of(μ)`` (mean zero at the truth), searched between
    ``lowest`` and ``highest`` (the range of values the data can support) on each side of
    ``center`` (the point estimate, where the statistic is 0). Bisection on ``μ``: the
    statistic grows monotonically away from ``center`` on each side."""
    if not math.isfinite(center):
        return math.nan, math.nan

    def bound(far: float) -> float:
        if far == center or el_statistic(z_of(far)) <= threshold:
            return far
        inside, outside = center, far
        for _ in range(_MU_STEPS):
            mid = 0.5 * (inside + outside)
            if el_statistic(z_of(mid)) <= threshold:
                inside = mid
            else:
                outside = mid
        return 0.5 * (inside + outside)

    return bound(min(lowest, center)), bound(max(highest, center))


def el_interval_with_extremes(z_of: Callable[[float], np.ndarray], low_pseudo: Callable[[float], float],
                              high_pseudo: Callable[[float], float], low_center: float, high_center: float,
                              lowest: float, highest: float) -> tuple[float, float]:
    """``el_wmax``: the low end of ``el_interval`` with the pseudo-round ``low_pseudo(μ)`` added
    to ``z_of(μ)`` (``low_center`` the augmented estimate), the high end with ``high_pseudo(μ)``."""
    low = el_interval(lambda mu: np.append(z_of(mu), low_pseudo(mu)), low_center, lowest, highest)[0]
    high = el_interval(lambda mu: np.append(z_of(mu), high_pseudo(mu)), high_center, lowest, highest)[1]
    return low, high


def bernstein_interval(terms: np.ndarray, delta: float = 0.05) -> tuple[float, float]:
    """The two-sided empirical Bernstein interval for the mean of ``terms`` (module
    docstring), with the observed range as the terms' range."""
    terms = np.asarray(terms, dtype=float)
    n = len(terms)
    mean = float(terms.mean())
    if n < 2:
        return -math.inf, math.inf
    log_term = math.log(4 / delta)
    width = float(terms.max() - terms.min())
    half = math.sqrt(2 * float(terms.var(ddof=1)) * log_term / n) + 7 * width * log_term / (3 * (n - 1))
    return mean - half, mean + half
