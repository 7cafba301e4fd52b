"""DR's reward model: a VW regression on context x action, cross-fitted."""

from __future__ import annotations

import numpy as np
import pytest

from bandit.learn.ope import LoggedRounds, dr, ips
from bandit.learn.reward_model import ActionMean, Decision, VWRegression, cross_fit, example

ACTIONS = [{"a": {"id": f"a{k}"}} for k in range(4)]


def contextual_log(seed: int, n: int) -> tuple[LoggedRounds, list[Decision], np.ndarray, np.ndarray]:
    """Reward 1 with probability 0.8 for the action matching the context type (``x mod 4``),
    0.1 otherwise; uniform logging. Returns the log, the features, the true ``q`` (n, 4) and
    a greedy target policy."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 8, n)
    truth = np.where(np.arange(4)[None, :] == (x % 4)[:, None], 0.8, 0.1)
    a = rng.integers(0, 4, n)
    r = (rng.uniform(0, 1, n) < truth[np.arange(n), a]).astype(float)
    log = LoggedRounds(np.full(n, 4), a, np.full(n, 0.25), r)
    decisions: list[Decision] = [({"c": {"type": f"x{int(v)}", "vip": bool(v % 2)}}, ACTIONS) for v in x]
    target = np.full((n, 4), 0.05)
    target[np.arange(n), x % 4] = 0.85
    return log, decisions, truth, target


@pytest.mark.parametrize("make", [ActionMean, VWRegression])
def test_a_round_is_scored_by_a_model_that_never_saw_it(make: type) -> None:
    log, decisions, _, _ = contextual_log(1, 600)
    q = cross_fit(decisions, log, folds=3, make=make)
    flipped = LoggedRounds(log.n_actions, log.chosen, log.propensity, log.reward.copy())
    flipped.reward[0] = 1 - flipped.reward[0]  # round 0 is in fold 0
    q2 = cross_fit(decisions, flipped, folds=3, make=make)
    assert np.array_equal(q[0::3], q2[0::3])  # fold 0 scored by the model of folds 1 and 2
    assert not np.array_equal(q[1::3], q2[1::3])  # the other folds' models learned from round 0


def test_the_regression_learns_context_x_action_where_action_means_cannot() -> None:
    log, decisions, truth, target = contextual_log(2, 4000)
    vw = cross_fit(decisions, log, folds=3)
    mean = cross_fit(decisions, log, folds=3, make=ActionMean)
    err_vw, err_mean = np.mean((vw - truth) ** 2), np.mean((mean - truth) ** 2)
    assert err_vw < 0.25 * err_mean, (err_vw, err_mean)
    # a good reward model is what makes DR worth having: a shorter interval than IPS's
    d, i = dr(log, target, vw), ips(log, target)
    assert d.high - d.low < 0.8 * (i.high - i.low), (d, i)


def test_shared_and_action_keys_stay_apart() -> None:
    import json

    body = json.loads(example({"weekday": "Mon", "o": {"x": 1}}, {"o": {"y": 2}, "id": "a1"}, 1.5))
    assert body == {"weekday": "Mon", "o": {"x": 1}, "o_action": {"y": 2}, "id": "a1", "_label": 1.5}


def test_folds_are_checked() -> None:
    log, decisions, _, _ = contextual_log(3, 10)
    with pytest.raises(ValueError, match="folds"):
        cross_fit(decisions, log, folds=1)
    with pytest.raises(ValueError, match="9 decisions for 10"):
        cross_fit(decisions[:9], log)
