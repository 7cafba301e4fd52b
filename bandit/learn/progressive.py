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

Two ways to the same rows. ``progressive_matrix`` replays an ``EvalSet`` of records through
VW from Python, a predict and a learn per decision: the definition, for windows held in
memory (``flows.retrain.compare_in_detail``, the tests). The retrain does not replay: VW's
driver, training the first model on the window (``bandit.learn.training``, ``-p``), predicts
each decision before it learns it, which is ``π_i``; ``driver_rows`` reads those
predictions back. A replay of 1,000,000 decisions from Python took 1,034 s on top of the
training (experiments/README.md); reading the driver's predictions takes seconds.

Pure apart from VW and the predictions file ``driver_rows`` reads: no clock.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bandit.decide.vw import VWModel
from bandit.domain.outcomes import RewardConfig, cost
from bandit.learn.evaluation import EvalSet, Policy

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


def driver_rows(predictions: Path, n_actions: np.ndarray, block: int = 1 << 23) -> np.ndarray:
    """``progressive_matrix``'s rows as VW's driver predicted them while it trained on the same
    decisions in the same order (``bandit.learn.training``, ``-p predictions``): the flat
    values of a ``bandit.learn.ope.Ragged`` over ``n_actions`` (decision ``i``'s eligible
    actions, in the order its DSJSON line lists them).

    Why it is the same estimator: VW's driver predicts each example before it learns it, so
    line ``i`` of its predictions is the exploring pmf of the learner trained on decisions
    ``1 .. i-1``: ``π_i``. With several passes (``--passes N --holdout_off``) the driver
    predicts on every pass; pass 1 is the one-pass learner (``one_pass``), so only the first
    ``len(n_actions)`` lines are read. Equal to ``progressive_matrix`` up to the six
    significant digits VW prints (``tests/learn/test_training_progressive.py``).

    A cb_explore_adf line is ``index:probability`` pairs, comma-separated, ordered by VW's
    ranking, not by action; lines are separated by an empty one. Each row is put back in
    action order and normalized as a served pmf is (``normalized_rows``). Read ``block``
    bytes at a time, parsed by numpy, so ten million rows are never Python objects.
    ``ValueError`` when the predictions do not match the decisions (a row's action count,
    an index out of range or repeated, too few lines)."""
    n_actions = np.asarray(n_actions, dtype=np.int64)
    n = len(n_actions)
    starts = np.concatenate([[0], np.cumsum(n_actions)])
    out = np.full(int(starts[-1]), np.nan)
    done, rest = 0, ""
    with open(predictions) as fh:
        while done < n:
            read = fh.read(block)
            text = rest + read
            cut = text.rfind("\n") + 1 if read else len(text)  # whole lines; at the end, what is left
            rest = text[cut:]
            done = _place(text[:cut].split()[: n - done], done, n_actions, starts, out)
            if not read:
                break
    if done < n:
        raise ValueError(f"VW's driver predicted {done} of the {n} decisions it trained on")
    return normalized_rows(out, n_actions, starts[:-1])


def _place(rows: list[str], done: int, n_actions: np.ndarray, starts: np.ndarray, out: np.ndarray) -> int:
    """Put ``rows`` (prediction lines of decisions ``done``, ``done + 1``, ...) into ``out``;
    returns how many decisions are placed after them."""
    if not rows:
        return done
    end = done + len(rows)
    pairs = np.fromiter((r.count(":") for r in rows), dtype=np.int64, count=len(rows))
    bad = np.flatnonzero(pairs != n_actions[done:end])
    if len(bad):
        i = done + int(bad[0])
        raise ValueError(f"VW's driver predicted {pairs[bad[0]]} actions for decision {i}, "
                         f"which has {n_actions[i]}: {rows[bad[0]][:200]!r}")
    values = np.fromstring(",".join(rows).replace(":", ","), sep=",")
    if len(values) != 2 * int(pairs.sum()):
        raise ValueError(f"VW's predictions for decisions {done} to {end - 1} are not index:probability pairs")
    index, prob = values[0::2], values[1::2]
    if not np.isfinite(prob).all():
        raise ValueError(f"VW's predictions for decisions {done} to {end - 1} hold a probability that is not finite")
    row_of = np.repeat(np.arange(done, end), pairs)
    if np.any(index < 0) or np.any(index >= n_actions[row_of]) or np.any(index != np.floor(index)):
        raise ValueError(f"VW's predictions for decisions {done} to {end - 1} name an action out of range")
    out[starts[row_of] + index.astype(np.int64)] = prob
    if np.isnan(out[starts[done]:starts[end]]).any():
        raise ValueError(f"VW's predictions for decisions {done} to {end - 1} name an action twice")
    return end


def normalized_rows(values: np.ndarray, n_actions: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``bandit.decide.sampling.normalized`` on each row of a ``Ragged``'s flat ``values``, at
    once and in place (returns ``values``): negatives clipped to 0, each row divided by its
    sum, a row summing to 0 uniform. (VW's float32 pmfs need not sum to 1; RegCB-optimistic's
    first rows are all ones.) In place: at ten million decisions each copy is 260 MB."""
    np.maximum(values, 0.0, out=values)
    if not len(n_actions):
        return values
    sums = np.add.reduceat(values, starts)
    empty = sums <= 0
    sums[empty] = 1.0
    values /= np.repeat(sums, n_actions)
    for i in np.flatnonzero(empty):  # rare: VW gave no mass to any action
        values[starts[i]:starts[i] + n_actions[i]] = 1.0 / n_actions[i]
    return values


def progressive_policy(vw_args: list[str], reward_cfg: RewardConfig) -> Policy:
    """``progressive_matrix`` as a ``bandit.learn.evaluation.Policy``, for ``evaluate``."""

    def policy(evals: EvalSet) -> np.ndarray:
        return progressive_matrix(vw_args, evals, reward_cfg)

    return policy
