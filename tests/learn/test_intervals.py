"""Intervals that hold when rewards are rare: the empirical likelihood and empirical Bernstein
constructions' invariants, and their coverage on simulated logs with a 0.5% reward rate
(``experiments/studies/ope_coverage.py`` with fewer seeds; its full run is in
experiments/README.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit.learn.intervals import CHI2_1_95, bernstein_interval, el_interval, el_statistic
from bandit.learn.ope import LoggedRounds, difference, ips, max_weight, snips
from experiments.studies.ope_coverage import study

samples = st.lists(st.floats(-50, 50, allow_nan=False), min_size=3, max_size=60).filter(
    lambda xs: max(xs) - min(xs) > 1e-3)


@settings(max_examples=60, deadline=None)
@given(samples, st.floats(-100, 100))
def test_el_interval_holds_the_mean_inside_the_data_and_moves_with_it(xs: list[float], shift: float) -> None:
    x = np.array(xs)
    low, high = el_interval(lambda mu: x - mu, float(x.mean()), float(x.min()), float(x.max()))
    assert x.min() - 1e-9 <= low <= x.mean() <= high <= x.max() + 1e-9
    y = x + shift
    low2, high2 = el_interval(lambda mu: y - mu, float(y.mean()), float(y.min()), float(y.max()))
    assert math.isclose(low2, low + shift, abs_tol=1e-6 * (1 + abs(shift))) and math.isclose(
        high2, high + shift, abs_tol=1e-6 * (1 + abs(shift)))


@settings(max_examples=60, deadline=None)
@given(samples)
def test_el_statistic_is_zero_at_the_mean_and_grows_away_from_it(xs: list[float]) -> None:
    x = np.array(xs)
    m, lo, hi = float(x.mean()), float(x.min()), float(x.max())
    assert el_statistic(x - m) < 1e-8
    near, far = m + 0.3 * (hi - m), m + 0.6 * (hi - m)
    assert el_statistic(x - near) <= el_statistic(x - far) + 1e-9
    assert el_statistic(x - (hi + 1)) == math.inf


def test_el_on_a_rare_binary_outcome_is_the_likelihood_ratio_interval() -> None:
    """For 0/1 data the empirical likelihood is the binomial likelihood: with 5 successes in
    1,000 the interval is the likelihood-ratio one, asymmetric as the binomial is (the
    normal interval's low end would be 0.0006, the likelihood ratio's is higher, its high
    end further away)."""
    x = np.r_[np.ones(5), np.zeros(995)]
    low, high = el_interval(lambda mu: x - mu, 0.005, 0.0, 1.0)

    def lr(p: float) -> float:
        return 2 * (5 * math.log(0.005 / p) + 995 * math.log(0.995 / (1 - p)))

    assert math.isclose(lr(low), CHI2_1_95, rel_tol=1e-4) and math.isclose(lr(high), CHI2_1_95, rel_tol=1e-4)
    assert high - 0.005 > 0.005 - low > 0


def test_bernstein_is_wider_than_normal_and_holds_the_mean() -> None:
    x = np.random.default_rng(0).exponential(1.0, 500)
    low, high = bernstein_interval(x)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert low < x.mean() < high and high - low > 2 * half


def test_estimators_take_the_interval_and_keep_their_value() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    log = LoggedRounds(np.full(n, 2), rng.integers(0, 2, n), np.full(n, 0.5), (rng.uniform(0, 1, n) < 0.01) * 1.0)
    pi = np.tile([0.2, 0.8], (n, 1))
    for f in (ips, snips):
        normal, el = f(log, pi), f(log, pi, interval="el")
        assert normal.value == el.value and (normal.interval, el.interval) == ("normal", "el")
        assert el.high - el.value > el.value - el.low  # skewed upwards, as the rare rewards are
    d = difference(log, pi, np.tile([0.5, 0.5], (n, 1)), "ips", interval="el")
    assert d.low < d.value < d.high and d.interval == "el"


def test_the_largest_possible_weight_reads_every_eligible_actions_logging_probability() -> None:
    log = LoggedRounds(np.array([2, 3]), np.array([0, 1]), np.array([0.5, 0.6]), np.array([0.0, 1.0]),
                       logging=np.array([[0.5, 0.5, 0.0], [0.3, 0.6, 0.1]]))
    pi = np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])
    assert max_weight(log, pi) == pytest.approx(5.0)  # 0.5 / 0.1: an action never logged here
    bare = LoggedRounds(log.n_actions, log.chosen, log.propensity, log.reward)
    assert max_weight(bare, pi) == pytest.approx(0.5)  # the observed weights: 0 / 0.5 and 0.3 / 0.6
    e = ips(log, pi, interval="el_wmax")
    assert e.interval == "el_wmax" and e.low <= e.value <= e.high


def test_intervals_cover_the_truth_with_rare_rewards() -> None:
    """24 simulated logs of 5,000 rounds at a 0.5% reward rate (about 28 rewards each), DR on
    cross-fitted action means (the VW regression is the study's; slower). 200 seeds: the
    study script (experiments/studies/ope_coverage.py)."""
    result = study(range(24), n=5000, reward_model="mean")
    for estimator, by_interval in result.items():
        assert by_interval["el"]["coverage"] >= 0.875, (estimator, by_interval["el"])
        assert by_interval["el_wmax"]["coverage"] >= 0.95, (estimator, by_interval["el_wmax"])
        assert by_interval["el_wmax"]["mean_width"] < 0.5 * by_interval["bernstein"]["mean_width"]
        assert by_interval["bernstein"]["coverage"] >= 0.95, (estimator, by_interval["bernstein"])
        assert by_interval["bernstein"]["mean_width"] > by_interval["el"]["mean_width"]
