"""Off-policy estimators: values computed by hand on a small log, and interval coverage on
simulated logs whose true policy value is known."""

import math

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from bandit.learn.ope import (
    LoggedRounds,
    Ragged,
    action_codes,
    difference,
    dr,
    effective_sample_size,
    ips,
    max_weight,
    mean_reward_model,
    mean_rewards,
    snips,
)

# Three rounds with 2, 3 and 2 eligible actions.
LOG = LoggedRounds(n_actions=np.array([2, 3, 2]), chosen=np.array([1, 0, 0]),
                   propensity=np.array([0.5, 0.8, 0.25]), reward=np.array([1.0, 0.0, 2.0]))
PI = np.array([[0.0, 1.0, 0.0], [0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
Q = np.array([[0.2, 0.6, 0.0], [0.1, 0.3, 0.5], [1.5, 0.0, 0.0]])
# By hand: w = (1/0.5, 0.5/0.8, 1/0.25) = (2, 0.625, 4).


def test_ips_by_hand() -> None:
    e = ips(LOG, PI)
    # w*r = (2, 0, 8): mean 10/3; sample sd sqrt(((−4/3)² + (−10/3)² + (14/3)²) / 2) = sqrt(52/3)
    assert e.value == pytest.approx(10 / 3)
    assert e.se == pytest.approx(math.sqrt(52 / 3) / math.sqrt(3))
    assert (e.low, e.high) == pytest.approx((10 / 3 - 1.959964 * e.se, 10 / 3 + 1.959964 * e.se))


def test_snips_by_hand() -> None:
    e = snips(LOG, PI)
    v = 10 / 6.625  # Σ w r / Σ w
    assert e.value == pytest.approx(v)
    resid = [2 * (1 - v), 0.625 * (0 - v), 4 * (2 - v)]
    assert e.se == pytest.approx(math.sqrt(sum(x * x for x in resid)) / 6.625)


def test_dr_by_hand() -> None:
    # Round terms: Σ π q̂ + w (r − q̂(a_i)):
    #   0.6 + 2 (1 − 0.6) = 1.4;  0.25 + 0.625 (0 − 0.1) = 0.1875;  1.5 + 4 (2 − 1.5) = 3.5
    e = dr(LOG, PI, Q)
    assert e.value == pytest.approx((1.4 + 0.1875 + 3.5) / 3)


def test_effective_sample_size() -> None:
    assert effective_sample_size(np.array([2, 0.625, 4])) == pytest.approx(6.625**2 / (4 + 0.390625 + 16))
    assert effective_sample_size(np.ones(50)) == pytest.approx(50)
    e = ips(LOG, PI)
    assert not e.trustworthy and "effective sample size 2 of 3" in e.warning


def test_logging_policy_evaluates_to_the_logged_mean_with_full_ess() -> None:
    rng = np.random.default_rng(3)
    n = 500
    p = rng.uniform(0.2, 0.8, n)
    log = LoggedRounds(np.full(n, 2), np.zeros(n, dtype=int), p, rng.uniform(0, 1, n))
    # The degenerate "policy" that always takes the logged action with the logged probability
    # is not a policy; the logging policy itself is: (p, 1 - p) with the logged action first.
    pi = np.stack([p, 1 - p], axis=1)
    assert ips(log, pi).value == pytest.approx(log.reward.mean())
    assert snips(log, pi).ess == pytest.approx(n)


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="round 1 sums to"):
        ips(LOG, np.array([[0.0, 1.0, 0.0], [0.5, 0.25, 0.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="shape"):
        snips(LOG, np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match="propensity"):
        LoggedRounds(np.array([2]), np.array([0]), np.array([0.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="chosen"):
        LoggedRounds(np.array([2]), np.array([2]), np.array([0.5]), np.array([1.0]))


def _simulated(rng: np.random.Generator, n: int, mu: np.ndarray) -> tuple[LoggedRounds, np.ndarray]:
    """A log from a known world: 10 context types, 4 actions, Bernoulli rewards with means
    ``mu[x, a]``, a logging policy that explores with random softmax probabilities."""
    x = rng.integers(0, mu.shape[0], n)
    logits = rng.normal(0, 1, (n, mu.shape[1]))
    p0 = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    a = (rng.uniform(0, 1, (n, 1)) > np.cumsum(p0, axis=1)).sum(axis=1)
    r = (rng.uniform(0, 1, n) < mu[x, a]).astype(float)
    return LoggedRounds(np.full(n, mu.shape[1]), a, p0[np.arange(n), a], r), x


def test_intervals_cover_the_true_value_on_simulated_logs() -> None:
    rng = np.random.default_rng(20261123)
    mu = rng.uniform(0.05, 0.6, (10, 4))
    target = np.full((10, 4), 0.05)  # mostly greedy on a noisy view of the truth
    target[np.arange(10), np.argmax(mu + rng.normal(0, 0.1, mu.shape), axis=1)] = 0.85
    truth = float(np.mean((target * mu).sum(axis=1)))  # contexts are uniform
    reps, covered = 150, {"ips": 0, "snips": 0, "dr": 0}
    for _ in range(reps):
        log, x = _simulated(rng, 2000, mu)
        pi = target[x]
        q = mean_reward_model(log, [["a0", "a1", "a2", "a3"]] * len(log))
        for est in (ips(log, pi), snips(log, pi), dr(log, pi, q)):
            covered[est.estimator] += est.low <= truth <= est.high
    for name, c in covered.items():
        assert c / reps >= 0.88, f"{name}: 95% intervals covered the true value in {c} of {reps} logs"


def test_difference_by_hand() -> None:
    # PI against always-the-first-action: w_b = (0, 1/0.8, 1/0.25) = (0, 1.25, 4)
    first = np.array([[1.0, 0.0, 0.0]] * 3)
    d = difference(LOG, PI, first, "ips")
    # per round (w_a - w_b) r = (2 - 0) 1, (0.625 - 1.25) 0, (4 - 4) 2 = (2, 0, 0)
    assert d.value == pytest.approx(ips(LOG, PI).value - ips(LOG, first).value) == pytest.approx(2 / 3)
    assert d.se == pytest.approx(np.std([2, 0, 0], ddof=1) / math.sqrt(3))
    s = difference(LOG, PI, first, "snips")
    assert s.value == pytest.approx(snips(LOG, PI).value - snips(LOG, first).value)
    va, vb = 10 / 6.625, 8 / 5.25
    psi_a = [3 * w * (r - va) / 6.625 for w, r in ((2, 1), (0.625, 0), (4, 2))]
    psi_b = [3 * w * (r - vb) / 5.25 for w, r in ((0, 1), (1.25, 0), (4, 2))]
    assert s.se == pytest.approx(math.sqrt(sum((a - b) ** 2 for a, b in zip(psi_a, psi_b))) / 3)
    assert difference(LOG, PI, first, "dr", Q).value == pytest.approx(dr(LOG, PI, Q).value - dr(LOG, first, Q).value)
    same = difference(LOG, PI, PI, "snips")
    assert same.value == 0 and same.se == 0  # a policy against itself: no difference, no doubt
    with pytest.raises(ValueError, match="q_hat"):
        difference(LOG, PI, first, "dr")


def test_paired_intervals_cover_the_true_difference_and_are_narrower() -> None:
    rng = np.random.default_rng(20261130)
    mu = rng.uniform(0.05, 0.6, (10, 4))
    best = np.argmax(mu, axis=1)
    a = np.full((10, 4), 0.05)
    a[np.arange(10), best] = 0.85
    b = a.copy()  # b agrees with a except in two contexts, where it takes the worst action
    for x in (0, 1):
        b[x] = 0.05
        b[x, np.argmin(mu[x])] = 0.85
    truth = float(np.mean((a * mu).sum(axis=1) - (b * mu).sum(axis=1)))
    reps, covered, ratios = 150, 0, []
    for _ in range(reps):
        log, x = _simulated(rng, 2000, mu)
        d = difference(log, a[x], b[x], "snips")
        covered += d.low <= truth <= d.high
        ratios.append(d.se / snips(log, a[x]).se)
    assert covered / reps >= 0.88, f"paired 95% intervals covered the true difference in {covered} of {reps} logs"
    assert np.median(ratios) < 0.75  # shared rounds, shared noise: narrower than one policy's own interval


def test_mean_reward_model_shrinks_toward_the_prior() -> None:
    q = mean_reward_model(LOG, [["no_offer", "x"], ["no_offer", "x", "y"], ["no_offer", "x"]], prior=0.0,
                          prior_weight=1.0)
    # no_offer taken twice with rewards 0 and 2 -> (0 + 2 + 0) / (2 + 1); x once with 1 -> 1 / 2; y never
    assert q[0, 0] == pytest.approx(2 / 3) and q[0, 1] == pytest.approx(0.5) and q[1, 2] == 0.0


@st.composite
def _rounds_and_policies(draw: st.DrawFn) -> tuple[LoggedRounds, np.ndarray, np.ndarray, np.ndarray]:
    """A small log, two policies and a reward model as (n, K) matrices, with junk in the padding."""
    n = draw(st.integers(1, 12))
    n_actions = np.array(draw(st.lists(st.integers(1, 5), min_size=n, max_size=n)))
    chosen = np.array([draw(st.integers(0, int(k) - 1)) for k in n_actions])
    unit = st.floats(0.05, 1.0)
    propensity = np.array(draw(st.lists(unit, min_size=n, max_size=n)))
    reward = np.array(draw(st.lists(st.floats(-1.0, 2.0), min_size=n, max_size=n)))
    width = int(n_actions.max()) + draw(st.integers(0, 2))

    def matrix(normalized: bool) -> np.ndarray:
        m = np.array(draw(st.lists(unit, min_size=n * width, max_size=n * width))).reshape(n, width)
        eligible = np.arange(width)[None, :] < n_actions[:, None]
        if normalized:
            m = np.where(eligible, m, 0.0)
            m = m / m.sum(axis=1, keepdims=True)
        return np.where(eligible, m, 7.0)  # the padding is never read

    logging = matrix(True)
    return (LoggedRounds(n_actions, chosen, propensity, reward, logging=logging), matrix(True), matrix(True),
            matrix(False))


@settings(max_examples=25, deadline=None)
@given(_rounds_and_policies(), st.sampled_from(["normal", "bernstein"]))
def test_ragged_policies_give_the_matrices_estimates(case: tuple, interval: str) -> None:
    """The estimators read only each round's eligible actions: a policy and a reward model
    given as ``Ragged`` (no padding) give exactly what their (n, K) matrices give."""
    log, pi_a, pi_b, q = case
    ra, rb, rq = (Ragged.of(m, log.n_actions) for m in (pi_a, pi_b, q))
    eligible = np.arange(pi_a.shape[1])[None, :] < log.n_actions[:, None]
    assert np.array_equal(ra.dense(pi_a.shape[1]), np.where(eligible, pi_a, 0.0))
    for dense, ragged in ((ips(log, pi_a, interval=interval), ips(log, ra, interval=interval)),
                          (snips(log, pi_a, interval=interval), snips(log, ra, interval=interval)),
                          (dr(log, pi_a, q, interval=interval), dr(log, ra, rq, interval=interval)),
                          (difference(log, pi_a, pi_b, "dr", q, interval=interval),
                           difference(log, ra, rb, "dr", rq, interval=interval))):
        assert dense == ragged
    assert max_weight(log, pi_a) == max_weight(log, ra)
    rows = np.arange(len(log))[::-1]
    assert np.array_equal(ra.rows(rows).values, Ragged.of(pi_a[rows], log.n_actions[rows]).values)


def test_ragged_policies_give_the_matrices_el_wmax_intervals() -> None:
    """``el_wmax`` reads every eligible action (the largest weight, the reward model's range);
    one case by hand, as its intervals take seconds."""
    log = LoggedRounds(LOG.n_actions, LOG.chosen, LOG.propensity, LOG.reward,
                       logging=np.array([[0.5, 0.5, 9.0], [0.8, 0.1, 0.1], [0.75, 0.25, 9.0]]))
    ra, rq = Ragged.of(PI, log.n_actions), Ragged.of(Q, log.n_actions)
    assert dr(log, PI, Q, interval="el_wmax") == dr(log, ra, rq, interval="el_wmax")
    assert snips(log, PI, interval="el_wmax") == snips(log, ra, interval="el_wmax")


def test_ragged_refuses_other_eligible_actions() -> None:
    with pytest.raises(ValueError, match="eligible actions"):
        ips(LOG, Ragged(np.array([1.0, 0.0, 1.0, 0.0]), np.array([2, 2])))
    with pytest.raises(ValueError, match="values for"):
        Ragged(np.array([1.0]), np.array([2]))


def test_mean_rewards_are_the_mean_reward_model_over_the_eligible_actions() -> None:
    ids = [["no_offer", "x"], ["no_offer", "x", "y"], ["no_offer", "x"]]
    codes, names, lengths = action_codes(ids)
    assert names == ["no_offer", "x", "y"] and list(lengths) == [2, 3, 2]
    q = mean_rewards(LOG, codes, len(names), prior=0.25)
    assert np.array_equal(q.dense(3), mean_reward_model(LOG, ids, prior=0.25))
    assert q.values[4] == 0.25  # y, never taken: the prior
