"""The doubly robust estimator's reward model: a regression on context and action, cross-fitted.

DR (``bandit.learn.ope.dr``) needs ``q̂(x, a)``, a prediction of the reward of every
eligible action in every logged context:

``V̂_DR(π) = (1/n) Σ_i [ Σ_{a ∈ A_i} π(a | x_i) q̂(x_i, a) + w_i (r_i − q̂(x_i, a_i)) ]``

(as Open Bandit Pipeline's ``DoublyRobust``). The better ``q̂``, the smaller the
residuals ``r_i − q̂(x_i, a_i)`` the importance weights multiply, and the shorter the
interval. Two things matter:

- **A model of the context and the action.** The per-action mean
  (``bandit.learn.ope.mean_reward_model``) ignores the context, so it cannot tell the
  policy's choices apart where they matter. Here ``q̂`` is a Vowpal Wabbit squared-loss
  regression on the logged features: the decision's shared namespaces and the taken
  action's namespaces in one example, with every pair of namespaces crossed
  (``-q ::``, so each action feature meets each context feature), label the reward.
  It reads the same DSJSON context objects the policies were trained and scored on
  (``bandit.log.vwjson``), with VW's JSON reader: strings, booleans, nested objects and
  any namespaces of an imported history included.
- **Cross-fitting** (Chernozhukov et al., *Double/debiased machine learning*, 2018;
  OBP's ``RegressionModel.fit_predict(n_folds=...)``). Fitted on the rows it scores,
  ``q̂`` has learned their noise: the residuals are too small, DR leans on the model,
  and its interval is too short. So the rounds are split into ``K`` folds (round ``i``
  in fold ``i mod K``: every fold spans the whole stretch of time), and the rows of
  fold ``k`` are scored by a model fitted on the other ``K − 1`` folds only:
  ``q̂(x_i, a) = f̂_{−k(i)}(x_i, a)``. Each round's DR term then depends on its own
  reward only through the importance-weighted residual, as the estimator's variance
  formula assumes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import vowpalwabbit
from pydantic_core import to_json

from bandit.learn.ope import LoggedRounds
from bandit.learn.specs import DEFAULT_FOLDS
from bandit.log.vwjson import Features

REGRESSION_ARGS = ("--quiet", "--json", "--loss_function", "squared", "-q", "::", "-b", "20")
"""VW's squared-loss regression on JSON examples, all namespace pairs crossed."""

Decision = tuple[Features, Sequence[Features]]
"""One logged decision's features: the shared namespaces and one object per eligible action."""


def example(shared: Features, action: Features, label: float | None = None) -> str:
    """One VW JSON example: ``shared`` and ``action`` in one object. An action key that is
    also a shared key gets the suffix ``_action`` (a different namespace name, so VW hashes
    it apart; a shared ``weekday`` and an action ``weekday`` stay two features)."""
    body: dict[str, Any] = dict(shared)
    for key, value in action.items():
        body[f"{key}_action" if key in body else key] = value
    if label is not None:
        body["_label"] = label
    return to_json(body).decode()


class VWRegression:
    """``f̂(x, a)``: one VW regression workspace, fitted on the logged (context, taken action)
    pairs and their rewards."""

    def __init__(self, args: Sequence[str] = REGRESSION_ARGS) -> None:
        self._ws = vowpalwabbit.Workspace(" ".join(args))

    def fit(self, decisions: Sequence[Decision], log: LoggedRounds, rows: np.ndarray) -> "VWRegression":
        for i in rows:
            shared, actions = decisions[i]
            self._ws.learn(example(shared, actions[int(log.chosen[i])], float(log.reward[i])))
        return self

    def predict(self, shared: Features, actions: Sequence[Features]) -> list[float]:
        return [float(self._ws.predict(example(shared, a))) for a in actions]

    def finish(self) -> None:
        self._ws.finish()


class ActionMean:
    """``f̂(x, a)`` = the mean reward of the action's logged rounds (``a`` named by its
    features), ignoring the context: the cross-fitted counterpart of
    ``bandit.learn.ope.mean_reward_model``, with the same interface as ``VWRegression``.
    Cheap; for comparisons and tests."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._overall = 0.0

    @staticmethod
    def _key(action: Features) -> str:
        return to_json(action).decode()

    def fit(self, decisions: Sequence[Decision], log: LoggedRounds, rows: np.ndarray) -> "ActionMean":
        for i in rows:
            key = self._key(decisions[i][1][int(log.chosen[i])])
            self._sums[key] = self._sums.get(key, 0.0) + float(log.reward[i])
            self._counts[key] = self._counts.get(key, 0) + 1
        self._overall = float(log.reward[rows].mean()) if len(rows) else 0.0
        return self

    def predict(self, shared: Features, actions: Sequence[Features]) -> list[float]:
        out = []
        for a in actions:
            key = self._key(a)
            out.append(self._sums[key] / self._counts[key] if key in self._counts else self._overall)
        return out

    def finish(self) -> None:
        return None


def cross_fit(decisions: Sequence[Decision], log: LoggedRounds, folds: int = DEFAULT_FOLDS,
              make: Callable[[], VWRegression | ActionMean] = VWRegression,
              progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """``q̂`` as an ``(n, K)`` array (``K`` the most eligible actions of a round): round
    ``i``'s row predicted by a model fitted on the folds other than ``i mod folds``.
    ``progress(done, total)`` is called as rounds are scored."""
    if not 2 <= folds <= 10:
        raise ValueError(f"folds: must be between 2 and 10, got {folds}")
    n = len(log)
    if len(decisions) != n:
        raise ValueError(f"cross_fit: {len(decisions)} decisions for {n} logged rounds")
    q = np.zeros((n, max(log.width, 1)))
    fold = np.arange(n) % folds
    done = 0
    for k in range(folds):
        model = make().fit(decisions, log, np.flatnonzero(fold != k))
        for i in np.flatnonzero(fold == k):
            shared, actions = decisions[i]
            q[i, : len(actions)] = model.predict(shared, actions)
            done += 1
            if progress is not None and done % 500 == 0:
                progress(done, n)
        model.finish()
    if progress is not None:
        progress(n, n)
    return q


def decisions_of(payloads: Sequence[Mapping[str, Any]]) -> list[Decision]:
    """The features of logged decisions, from their records' payloads (``shared``, ``actions``)."""
    return [(p["shared"], p["actions"]) for p in payloads]
