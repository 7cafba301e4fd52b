"""Off-policy evaluation: what a policy would have earned on the logged decisions.

Every logged decision carries the eligible actions, the action taken, the logging
probability of that action and (at training time) its reward. A policy to evaluate
gives probabilities over the same eligible actions for each logged context. The
estimators below turn that into an estimate of the policy's value (mean reward per
decision) with a 95% confidence interval, so the promotion gate can compare a
candidate with the champion and with simple baselines on the same held-out log.

Notation (as in Open Bandit Pipeline's ``ope/estimators.py``):

- ``n`` logged rounds ``i``, each with eligible actions ``A_i``, taken action ``a_i``,
  logging probability ``p_i = π_0(a_i | x_i)`` and reward ``r_i``;
- ``π(a | x_i)`` the evaluated policy's probabilities over ``A_i``;
- ``w_i = π(a_i | x_i) / p_i`` the importance weight;
- ``q̂(x_i, a)`` a reward model (for the doubly robust estimator).

Intervals (``interval=``, ``INTERVALS``):

- ``normal`` (the default, what the retrain gate reads): ``V̂ ± 1.96·SE``, with the
  standard error from the per-round terms (IPS, DR) or from the delta method (SNIPS);
- ``el``: empirical likelihood (Owen 1988; the construction behind the Cressie-Read
  intervals of VW's ``estimators`` library, ``bandit.learn.intervals``): the values
  ``μ`` whose estimating equation ``E[z_i(μ)] = 0`` the data cannot reject,
  ``−2 log R(μ) ≤ χ²₁(0.95)``. It follows the skew of the per-round terms, which the
  normal interval ignores: with rare rewards most terms are 0 and a few are large, and
  ``V̂ ± 1.96·SE`` is too short on the high side;
- ``el_wmax``: empirical likelihood with, for each end, one pseudo-round at the most
  extreme term the policy could produce (its largest possible weight, ``max_weight``,
  times the largest or smallest reward), as VW's Cressie-Read interval adds one fake
  round at ``wmax``: it allows for the rare large term the log happened not to hold;
- ``bernstein``: the empirical Bernstein bound (Maurer & Pontil 2009) on the per-round
  (influence) terms: valid for any bounded terms, but wide.

``experiments/studies/ope_coverage.py`` measures each one's coverage on simulated logs
with rare rewards. Every interval needs enough overlap between the policies: the
effective sample size says how many logged rounds the estimate is really worth, and
``Estimate.trustworthy`` is false below a floor.

Arrays are padded to the largest number of eligible actions ``K``: row ``i`` holds
``A_i`` in its first ``len(A_i)`` columns; a policy's probabilities and a reward model's
predictions beyond them are ignored (treated as zero). A policy or a reward model may
also come as ``Ragged``: the same values without the padding (a window of ten million
decisions with three eligible actions each and ``K = 11`` is 30 million values, not 110
million). The estimators work on that form inside, whichever they are given, so both give
the same estimates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bandit.learn.intervals import INTERVALS, bernstein_interval, el_interval, el_interval_with_extremes

Z95 = 1.959963984540054
MIN_ESS = 100.0
__all__ = ["INTERVALS", "Estimate", "LoggedRounds", "Ragged", "action_codes", "difference", "dr", "effective_sample_size",
           "importance_weights", "ips", "max_weight", "mean_reward_model", "mean_rewards", "snips"]


@dataclass(frozen=True)
class LoggedRounds:
    """The held-out log in the shape the estimators need.

    ``n_actions[i]`` eligible actions in round ``i``; ``chosen[i]`` the index (into that
    round's eligible actions) of the action taken; ``propensity[i]`` its logging
    probability; ``reward[i]`` its reward; ``logging[i, k]``, when known, the logging
    probability of every eligible action (for the largest weight a policy can have,
    ``max_weight``)."""

    n_actions: np.ndarray  # (n,) int
    chosen: np.ndarray  # (n,) int
    propensity: np.ndarray  # (n,) float in (0, 1]
    reward: np.ndarray  # (n,) float
    logging: np.ndarray | None = None  # (n, K) float

    def __post_init__(self) -> None:
        n = len(self.chosen)
        for name in ("n_actions", "propensity", "reward"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"LoggedRounds.{name}: {len(getattr(self, name))} values for {n} rounds")
        if n and not np.all((self.propensity > 0) & (self.propensity <= 1)):
            raise ValueError("LoggedRounds.propensity: every logging probability must be in (0, 1]")
        if n and not np.all((self.chosen >= 0) & (self.chosen < self.n_actions)):
            raise ValueError("LoggedRounds.chosen: an index outside the round's eligible actions")

    def __len__(self) -> int:
        return len(self.chosen)

    @property
    def width(self) -> int:
        return int(self.n_actions.max()) if len(self) else 0

    def mask(self) -> np.ndarray:
        """(n, K) true where column ``k`` is one of round ``i``'s eligible actions."""
        return np.arange(self.width)[None, :] < self.n_actions[:, None]


@dataclass(frozen=True)
class Estimate:
    estimator: str
    value: float
    low: float
    high: float
    se: float
    n: int
    ess: float
    min_ess: float = MIN_ESS
    interval: str = "normal"  # how low and high were made (``INTERVALS``)

    @property
    def trustworthy(self) -> bool:
        """Enough effective samples for the interval to mean something."""
        return self.ess >= self.min_ess

    @property
    def warning(self) -> str | None:
        if self.trustworthy:
            return None
        return (f"{self.estimator}: effective sample size {self.ess:.0f} of {self.n} rounds is below "
                f"{self.min_ess:.0f}; the policy rarely agrees with the logged actions, do not trust this estimate")

    def as_dict(self) -> dict[str, float | int | str | bool]:
        return {"estimator": self.estimator, "value": self.value, "low": self.low, "high": self.high,
                "se": self.se, "n": self.n, "ess": self.ess, "trustworthy": self.trustworthy}


@dataclass(frozen=True, eq=False)
class Ragged:
    """Per-round values over each round's eligible actions only (a policy's probabilities, a
    reward model's predictions), without the padding of an (n, K) matrix: round ``i``'s are
    ``values[starts[i] : starts[i] + n_actions[i]]``, in the order of its eligible actions.
    Every round has at least one eligible action (``no_offer``)."""

    values: np.ndarray  # (sum of n_actions,)
    n_actions: np.ndarray  # (n,) int

    def __post_init__(self) -> None:
        if len(self.values) != int(np.sum(self.n_actions, dtype=np.int64)):
            raise ValueError(f"Ragged: {len(self.values)} values for {int(np.sum(self.n_actions))} eligible actions")

    @classmethod
    def of(cls, matrix: np.ndarray, n_actions: np.ndarray) -> "Ragged":
        """The first ``n_actions[i]`` columns of each row of an (n, K) ``matrix``."""
        matrix = np.asarray(matrix, dtype=float)
        width = int(n_actions.max()) if len(n_actions) else 0
        if matrix.ndim != 2 or matrix.shape[0] != len(n_actions) or matrix.shape[1] < width:
            raise ValueError(f"shape {matrix.shape}, need ({len(n_actions)}, >= {width})")
        return cls(matrix[:, :width][np.arange(width)[None, :] < n_actions[:, None]], n_actions)

    def __len__(self) -> int:
        return len(self.n_actions)

    @cached_property
    def starts(self) -> np.ndarray:
        """Where each round's values begin in ``values``."""
        return np.concatenate([[0], np.cumsum(self.n_actions, dtype=np.int64)[:-1]]) if len(self) else \
            np.zeros(0, dtype=np.int64)

    def at(self, index: np.ndarray) -> np.ndarray:
        """Each round's value at its eligible action ``index[i]``."""
        return self.values[self.starts + index]

    def row_sums(self, values: np.ndarray | None = None) -> np.ndarray:
        """Each round's sum of ``values`` (default its own), added in the order of its actions."""
        v = self.values if values is None else values
        return np.add.reduceat(v, self.starts) if len(self) else np.zeros(0)

    def rows(self, index: np.ndarray) -> "Ragged":
        """The rounds ``index`` (an integer array), in that order."""
        index = np.asarray(index, dtype=np.int64)
        lengths = self.n_actions[index].astype(np.int64)
        begin = np.cumsum(lengths) - lengths
        flat = np.repeat(self.starts[index] - begin, lengths) + np.arange(int(lengths.sum()))
        return Ragged(self.values[flat], self.n_actions[index])

    def __getitem__(self, index: np.ndarray) -> "Ragged":
        return self.rows(index)

    def dense(self, width: int | None = None) -> np.ndarray:
        """The (n, K) matrix, zero beyond each round's eligible actions."""
        k = max(int(self.n_actions.max()) if len(self) else 0, 1) if width is None else width
        out = np.zeros((len(self), k))
        out[np.arange(k)[None, :] < self.n_actions[:, None]] = self.values
        return out


def _eligible(log: LoggedRounds, values: "np.ndarray | Ragged", what: str) -> Ragged:
    """``values`` (an (n, K) matrix or ``Ragged``) over each round's eligible actions, as floats."""
    if isinstance(values, Ragged):
        if len(values) != len(log) or not np.array_equal(values.n_actions, log.n_actions):
            raise ValueError(f"{what}: {len(values)} rounds of other eligible actions than the log's {len(log)}")
        return values if values.values.dtype == np.float64 else Ragged(values.values.astype(float), log.n_actions)
    try:
        return Ragged.of(values, log.n_actions)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _policy_matrix(log: LoggedRounds, pi: "np.ndarray | Ragged") -> Ragged:
    """``pi`` checked and cut to the eligible actions, each round summing to 1."""
    pi = _eligible(log, pi, "policy probabilities")
    sums = pi.row_sums()
    if len(log) and not np.allclose(sums, 1.0, atol=1e-6):
        bad = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"policy probabilities: round {bad} sums to {sums[bad]:.6f} over its eligible actions, not 1")
    return pi


def importance_weights(log: LoggedRounds, pi: "np.ndarray | Ragged") -> np.ndarray:
    """``w_i = π(a_i | x_i) / p_i``."""
    return _policy_matrix(log, pi).at(log.chosen) / log.propensity


def max_weight(log: LoggedRounds, pi: "np.ndarray | Ragged") -> float:
    """The largest importance weight ``π`` can have on these contexts: ``max π(a|x_i) / π_0(a|x_i)``
    over every eligible action of every round when the logging probabilities are known
    (``LoggedRounds.logging``), else the largest weight observed."""
    pi = _policy_matrix(log, pi)
    observed = float(importance_weights(log, pi).max()) if len(log) else 0.0
    if log.logging is None:
        return observed
    p0 = _eligible(log, log.logging, "logging probabilities").values
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p0 > 0, pi.values / np.where(p0 > 0, p0, 1.0), 0.0)
    return max(observed, float(ratio.max()) if len(ratio) else 0.0)


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size of importance weights: ``ESS = (Σ w_i)² / Σ w_i²``.

    ``n`` when the evaluated policy is the logging policy (all ``w_i = 1``); small when
    a few rounds carry most of the weight."""
    w = np.asarray(w, dtype=float)
    sq = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / sq if sq > 0 else 0.0


def _check_interval(interval: str) -> None:
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval '{interval}' ({', '.join(INTERVALS)})")


def _mean_of_terms(name: str, terms: np.ndarray, w: np.ndarray, min_ess: float, interval: str = "normal") -> Estimate:
    """An estimate that is the mean of per-round terms (IPS, DR), with the interval asked for."""
    _check_interval(interval)
    n = len(terms)
    value = float(terms.mean()) if n else math.nan
    se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    if interval == "el" and n > 1:
        low, high = el_interval(lambda mu: terms - mu, value, float(terms.min()), float(terms.max()))
    elif interval == "bernstein" and n > 1:
        low, high = bernstein_interval(terms)
    else:
        low, high = value - Z95 * se, value + Z95 * se
    return Estimate(name, value, low, high, se, n, effective_sample_size(w), min_ess, interval)


def _with_extremes(name: str, terms: np.ndarray, w: np.ndarray, min_ess: float, lo: float, hi: float,
                   lowest: float, highest: float) -> Estimate:
    """``el_wmax`` for an estimate that is the mean of ``terms``: pseudo-rounds ``lo`` and ``hi``."""
    n = len(terms)
    value, se = float(terms.mean()), float(terms.std(ddof=1) / math.sqrt(n))
    total = float(terms.sum())
    low, high = el_interval_with_extremes(lambda mu: terms - mu, lambda mu: lo - mu, lambda mu: hi - mu,
                                          (total + lo) / (n + 1), (total + hi) / (n + 1),
                                          min(float(terms.min()), lo), max(float(terms.max()), hi))
    return Estimate(name, value, low, high, se, n, effective_sample_size(w), min_ess, "el_wmax")


def ips(log: LoggedRounds, pi: np.ndarray, min_ess: float = MIN_ESS, interval: str = "normal") -> Estimate:
    """Inverse propensity scoring.

    ``V̂_IPS(π) = (1/n) Σ_i w_i r_i`` with ``w_i = π(a_i | x_i) / p_i``.

    Unbiased when every action ``π`` may take had a positive logging probability; its
    variance grows with the weights. ``SE = sd(w_i r_i) / √n``."""
    w = importance_weights(log, pi)
    terms = w * log.reward
    if interval == "el_wmax" and len(log) > 1:
        wmax, r = max_weight(log, pi), log.reward
        hi, lo = wmax * max(float(r.max()), 0.0), wmax * min(float(r.min()), 0.0)
        return _with_extremes("ips", terms, w, min_ess, lo, hi, lo, hi)
    return _mean_of_terms("ips", terms, w, min_ess, interval)


def snips(log: LoggedRounds, pi: np.ndarray, min_ess: float = MIN_ESS, interval: str = "normal") -> Estimate:
    """Self-normalized inverse propensity scoring.

    ``V̂_SNIPS(π) = Σ_i w_i r_i / Σ_i w_i``.

    Slightly biased, much lower variance than IPS, and bounded by the observed rewards.
    Standard error by the delta method: ``SE = √(Σ_i w_i² (r_i − V̂)²) / Σ_i w_i``. Its
    estimating equation, for the empirical likelihood interval, is
    ``E[w_i (r_i − μ)] = 0``; the empirical Bernstein bound is taken on the influence
    terms ``n w_i (r_i − V̂) / Σ w``."""
    _check_interval(interval)
    w = importance_weights(log, pi)
    n, total = len(log), float(w.sum())
    if n == 0 or total == 0:
        return Estimate("snips", math.nan, math.nan, math.nan, math.inf, n, 0.0, min_ess, interval)
    value = float((w * log.reward).sum() / total)
    se = float(math.sqrt(float(np.sum((w * (log.reward - value)) ** 2))) / total)
    seen = log.reward[w > 0]
    if interval == "el" and n > 1:
        low, high = el_interval(lambda mu: w * (log.reward - mu), value, float(seen.min()), float(seen.max()))
    elif interval == "el_wmax" and n > 1:
        wmax, rlo, rhi = max_weight(log, pi), float(log.reward.min()), float(log.reward.max())
        swr = float((w * log.reward).sum())
        low, high = el_interval_with_extremes(
            lambda mu: w * (log.reward - mu), lambda mu: wmax * (rlo - mu), lambda mu: wmax * (rhi - mu),
            (swr + wmax * rlo) / (total + wmax), (swr + wmax * rhi) / (total + wmax), rlo, rhi)
    elif interval == "bernstein" and n > 1:
        low, high = bernstein_interval(value + n * w * (log.reward - value) / total)
    else:
        low, high = value - Z95 * se, value + Z95 * se
    return Estimate("snips", value, low, high, se, n, effective_sample_size(w), min_ess, interval)


def dr(log: LoggedRounds, pi: np.ndarray, q_hat: np.ndarray, min_ess: float = MIN_ESS,
       interval: str = "normal") -> Estimate:
    """Doubly robust.

    ``V̂_DR(π) = (1/n) Σ_i [ Σ_{a ∈ A_i} π(a | x_i) q̂(x_i, a) + w_i (r_i − q̂(x_i, a_i)) ]``.

    The reward model's prediction for the policy, corrected by importance-weighted
    residuals on the logged action: unbiased if either the propensities or the reward
    model are right, and lower variance than IPS when the model is good.
    ``SE = sd(per-round term) / √n``. ``q̂`` must not have been fitted on the rounds it
    scores (``bandit.learn.reward_model.cross_fit``): fitted on them, the residuals
    ``r_i − q̂(x_i, a_i)`` are too small and the interval too short."""
    pi = _policy_matrix(log, pi)
    q = _eligible(log, q_hat, "reward model predictions")
    w = pi.at(log.chosen) / log.propensity
    direct = pi.row_sums(pi.values * q.values)
    terms = direct + w * (log.reward - q.at(log.chosen))
    if interval == "el_wmax" and len(log) > 1:
        wmax, eligible = max_weight(log, pi), q.values
        hi = float(direct.max()) + wmax * max(float(log.reward.max()) - float(eligible.min()), 0.0)
        lo = float(direct.min()) + wmax * min(float(log.reward.min()) - float(eligible.max()), 0.0)
        return _with_extremes("dr", terms, w, min_ess, lo, hi, lo, hi)
    return _mean_of_terms("dr", terms, w, min_ess, interval)


def mean_reward_model(log: LoggedRounds, action_ids: list[list[str]], prior: float = 0.0,
                      prior_weight: float = 1.0) -> np.ndarray:
    """The simplest reward model for DR: each action's mean logged reward, shrunk toward
    ``prior`` with ``prior_weight`` pseudo-rounds. ``action_ids[i]`` names round ``i``'s
    eligible actions; returns ``q̂`` as an (n, K) array.

    It ignores the context, so DR with it corrects IPS only by a per-action baseline;
    a context model fits in the same slot."""
    codes, names, _ = action_codes(action_ids)
    return mean_rewards(log, codes, len(names), prior, prior_weight).dense(max(log.width, 1))


def action_codes(action_ids: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Every round's eligible action ids, flat, as integer codes; the names coded; and each
    round's number of eligible actions."""
    if hasattr(action_ids, "codes"):  # ``bandit.learn.evaluation.ActionIds``: coded already
        return action_ids.codes(), action_ids.names(), action_ids.lengths()
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(a, len(index)) for ids in action_ids for a in ids), dtype=np.int64)
    lengths = np.fromiter((len(ids) for ids in action_ids), dtype=np.int64, count=len(action_ids))
    return codes, list(index), lengths


def mean_rewards(log: LoggedRounds, codes: np.ndarray, n_codes: int, prior: float = 0.0,
                 prior_weight: float = 1.0) -> Ragged:
    """``mean_reward_model`` as ``Ragged``, the eligible actions given as integer ``codes`` (flat,
    round after round): ``q̂(a) = (Σ_{i: a_i = a} r_i + prior · prior_weight) / (n_a + prior_weight)``,
    ``prior`` for an action never taken."""
    starts = np.concatenate([[0], np.cumsum(log.n_actions, dtype=np.int64)[:-1]]) if len(log) else \
        np.zeros(0, dtype=np.int64)
    taken = codes[starts + log.chosen]
    sums = np.bincount(taken, weights=log.reward, minlength=n_codes)
    counts = np.bincount(taken, minlength=n_codes)
    with np.errstate(divide="ignore", invalid="ignore"):  # an action never taken: ``prior``, not 0/0
        means = np.where(counts > 0, (sums + prior * prior_weight) / (counts + prior_weight), prior)
    return Ragged(means[codes], log.n_actions)


def _influence(estimator: str, log: LoggedRounds, pi: np.ndarray, q_hat: np.ndarray | None) -> tuple[float, np.ndarray]:
    """An estimate's value and its per-round influence terms ``ψ_i`` (mean zero), from which
    its standard error follows: ``w_i r_i − V̂`` for IPS, the round term minus its mean for
    DR (``SE = sd(ψ) / √n``), and ``n w_i (r_i − V̂) / Σ w`` for SNIPS (the delta method
    above: ``SE = √(Σ ψ_i²) / n``)."""
    n = len(log)
    if estimator == "snips":
        w = importance_weights(log, pi)
        total = float(w.sum())
        value = float((w * log.reward).sum() / total) if total > 0 else math.nan
        return value, (n * w * (log.reward - value) / total) if total > 0 else np.full(n, math.nan)
    if estimator == "ips":
        terms = importance_weights(log, pi) * log.reward
    elif estimator == "dr":
        if q_hat is None:
            raise ValueError("dr: a reward model (q_hat) is needed")
        p = _policy_matrix(log, pi)
        q = _eligible(log, q_hat, "reward model predictions")
        terms = p.row_sums(p.values * q.values) + p.at(log.chosen) / log.propensity * (log.reward - q.at(log.chosen))
    else:
        raise ValueError(f"unknown estimator '{estimator}' (ips, snips or dr)")
    value = float(terms.mean()) if n else math.nan
    return value, terms - value


def difference(log: LoggedRounds, pi_a: np.ndarray, pi_b: np.ndarray, estimator: str = "snips",
               q_hat: np.ndarray | None = None, min_ess: float = MIN_ESS, interval: str = "normal") -> Estimate:
    """``V̂(π_a) − V̂(π_b)`` on the same logged rounds, with a paired 95% interval.

    Two policies judged on one log share its noise: where they put the same probability
    on the logged action, a round's reward moves both estimates alike. The interval of the
    difference comes from the per-round difference of the two estimates' influence terms,
    (for SNIPS ``SE = √(Σ_i (ψ_a,i − ψ_b,i)²) / n``; for IPS and DR the sample sd of
    the differences over ``√n``), and is much narrower than either interval alone
    when the policies mostly agree (and never the sum of the two when they do not). This
    is what says whether a candidate is better than the champion; comparing one policy's
    bound with the other's estimate ignores that both were measured on the same rounds.
    ``ess`` is ``π_a``'s. With ``interval="el"`` (``"el_wmax"`` too) or ``"bernstein"`` the interval is that
    construction's for the mean of the per-round differences ``V̂_a − V̂_b + ψ_a,i − ψ_b,i``
    (for IPS and DR exactly the differences of the round terms)."""
    _check_interval(interval)
    n = len(log)
    if n == 0:
        return Estimate(estimator, math.nan, math.nan, math.nan, math.inf, 0, 0.0, min_ess, interval)
    va, psi_a = _influence(estimator, log, pi_a, q_hat)
    vb, psi_b = _influence(estimator, log, pi_b, q_hat)
    value = va - vb
    ddof = 0 if estimator == "snips" else 1  # as each estimator's own SE: delta method, sample sd
    se = float(math.sqrt(float(np.sum((psi_a - psi_b) ** 2)) / (n - ddof)) / math.sqrt(n)) if n > 1 else math.inf
    ess = effective_sample_size(importance_weights(log, pi_a))
    low, high = value - Z95 * se, value + Z95 * se
    if interval != "normal" and n > 1 and se > 0:
        terms = value + psi_a - psi_b
        low, high = (el_interval(lambda mu: terms - mu, value, float(terms.min()), float(terms.max()))
                     if interval in ("el", "el_wmax") else bernstein_interval(terms))
    return Estimate(f"{estimator} difference", value, low, high, se, n, ess, min_ess, interval)
