"""Progressive validation: judging a first model on the whole window it learns from.

Why: a first model (no champion yet) used to be judged like any candidate, on the newest
20% of the window, held out. On the first night of a deployment that is 400 of 2,000
decisions, under any sensible ``promotion.min_events``: no first model on night 1, a
day of cold start lost. Holding out more starves training. Progressive validation uses
every decision for both, without judging a model on what it learned from.

The estimator. Replay the window's learnable decisions in time order through a fresh
learner with the retrain's arguments (one pass). Before learning decision ``i``, the
learner (trained on decisions ``1 .. i-1`` only) gives its exploring probabilities
``π_i(· | x_i)`` over decision ``i``'s eligible actions; then it learns ``i``. The rows
``π_i`` make an ordinary policy matrix for the estimators of ``bandit.learn.ope``:

    V̂_IPS = (1/n) Σ_i r_i · π_i(a_i | x_i) / p_i,
    V̂_SNIPS = Σ_i w_i r_i / Σ_i w_i,   w_i = π_i(a_i | x_i) / p_i.

``π_i`` depends only on decisions before ``i``, and ``a_i`` was drawn by the logging policy
with the logged probability ``p_i``, so given the past each IPS term has expectation
``V(π_i)``, the value of the ``i``-th online policy: ``E[V̂_IPS] = (1/n) Σ_i V(π_i)``, an
unbiased estimate of the average value of the sequence of policies (Blum, Kalai & Langford
1999; Li et al. 2011 for the bandit case). The terms are martingale differences, so the
normal interval of ``ope`` still holds asymptotically, and the paired difference with
``no_offer`` (``ope.difference``) as well. For the final model (trained on all ``n``) the
estimate is conservative: the early policies, trained on little, pull the average down.
That is the right direction for a gate: a first model is promoted when even the
average of its own learning curve beats making no offers.

Only for a first model: a later candidate is judged against the champion on held-out
decisions (``flows.retrain``), where both policies are fixed and the comparison paired.

Pure apart from VW: no I/O, no clock.
"""

from __future__ import annotations

import numpy as np

from bandit.decide.vw import VWModel
from bandit.domain.outcomes import RewardConfig, cost
from bandit.learn.evaluation import EvalSet, Policy
from bandit.log.records import DecisionRecord

ONE_PASS_ONLY = ("--passes", "--cache", "-c", "--holdout_off")
"""Batch options a replay cannot have: progressive validation is one pass, in order."""


def one_pass(args: list[str]) -> list[str]:
    """``args`` without the options of several passes (``--passes N``, the cache they need,
    ``--holdout_off``): the learner replayed once, as the decisions came."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--passes":
            skip = True
            continue
        if a in ONE_PASS_ONLY:
            continue
        out.append(a)
    return out


def progressive_matrix(vw_args: list[str], evals: EvalSet, reward_cfg: RewardConfig) -> np.ndarray:
    """The ``(n, K)`` matrix whose row ``i`` is the exploring policy of a learner with
    ``vw_args`` trained, in order, on ``evals``' decisions before ``i`` (the module's
    docstring). ``evals`` must be in time order (``flows.retrain`` sorts the window).

    The learner learns each decision exactly as the retrain's training does (the logged
    action, its probability, and cost ``-reward / scale``: ``bandit.domain.outcomes.cost``),
    so the last row's learner is the one-pass model of the whole window."""
    model = VWModel.fresh(one_pass(vw_args))
    width = max(evals.rewards.width, 1)
    pi = np.zeros((len(evals), width))
    for i, rec in enumerate(evals.records):
        shared, actions = rec.payload["shared"], rec.payload["actions"]
        pi[i, : len(actions)] = model.pmf(shared, actions) if len(actions) > 1 else [1.0]
        model.learn(shared, actions, rec.chosen_index, cost(float(evals.rewards.reward[i]), reward_cfg),
                    rec.probability)
    return pi


class ProgressiveReplay:
    """``progressive_matrix`` one decision at a time, for a window that streams from the log
    (``flows.retrain.evaluate_window``): ``probabilities(rec)`` is the row of the learner
    trained on the decisions before ``rec``; ``learn(rec, reward)`` then teaches it ``rec``.
    Called in that order for each decision, in time order, it gives ``progressive_matrix``'s
    rows without holding the window."""

    def __init__(self, vw_args: list[str], reward_cfg: RewardConfig):
        self.model = VWModel.fresh(one_pass(vw_args))
        self.reward_cfg = reward_cfg

    def probabilities(self, rec: DecisionRecord) -> list[float]:
        shared, actions = rec.payload["shared"], rec.payload["actions"]
        return list(self.model.pmf(shared, actions)) if len(actions) > 1 else [1.0]

    def learn(self, rec: DecisionRecord, reward: float) -> None:
        self.model.learn(rec.payload["shared"], rec.payload["actions"], rec.chosen_index,
                         cost(reward, self.reward_cfg), rec.probability)


def progressive_policy(vw_args: list[str], reward_cfg: RewardConfig) -> Policy:
    """``progressive_matrix`` as a ``bandit.learn.evaluation.Policy``, for ``evaluate``."""

    def policy(evals: EvalSet) -> np.ndarray:
        return progressive_matrix(vw_args, evals, reward_cfg)

    return policy
