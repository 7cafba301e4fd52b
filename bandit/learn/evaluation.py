"""Evaluating policies on a held-out stretch of the log, side by side.

The retraining flow compares, on the same logged decisions: the candidate, the
champion, ``no_offer`` always, uniform random over the eligible offers, and a
rules-only policy (a marketing heuristic written by hand). For each it reports the
estimated reward per decision (IPS, SNIPS, DR, each with its 95% interval), the
estimated complaint rate (SNIPS on the complaint indicator) and the effective sample
size (``bandit.learn.ope``).

Which logged decisions count: the learnable ones (``bandit.log.records.learnable``:
activated, since a decision never shown has no outcome to learn from, and whose
reward window has closed by ``as_of``, else the reward is not known yet). Rewards
come from the raw outcomes through the policy file's reward function
(``bandit.domain.outcomes``), as in training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandit.config.catalog import Catalog
from bandit.config.policyfile import RULES_MIN_SENTIMENT
from bandit.decide.control import rules_choice
from bandit.learn.ope import MIN_ESS, Estimate, LoggedRounds, difference, dr, ips, mean_reward_model, snips
from bandit.domain.outcomes import RewardConfig
from bandit.domain.outcomes import complained, in_window, reward
from bandit.log.records import DecisionRecord, learnable
from bandit.log.store import DecisionStore
from bandit.domain.outcomes import Outcome
from bandit.decide.vw import Scorer
from bandit.log.reader import iter_joined
from bandit.log.vwjson import Features


@dataclass(frozen=True)
class EvalSet:
    """Logged decisions ready for off-policy evaluation."""

    records: list[DecisionRecord]
    rewards: LoggedRounds
    complaints: LoggedRounds  # the same rounds with reward = 1 if a complaint arrived in the window

    @property
    def action_ids(self) -> list[list[str]]:
        return [r.action_ids for r in self.records]

    def __len__(self) -> int:
        return len(self.records)


def eval_set(pairs: list[tuple[DecisionRecord, list[Outcome]]], cfg: RewardConfig, as_of: float) -> EvalSet:
    """Keep the learnable decisions (``bandit.log.records.learnable``: activated, reward
    window closed by ``as_of``) and compute each one's reward and complaint indicator."""
    kept, rewards, complaints = [], [], []
    for rec, outs in pairs:
        if not learnable(rec, cfg, as_of):
            continue
        kept.append(rec)
        rewards.append(reward(outs, rec.ts, float(rec.payload.get("offer_value", 0.0)), cfg))
        complaints.append(float(complained(in_window(outs, rec.ts, cfg))))
    n_actions = np.array([len(r.action_ids) for r in kept], dtype=int)
    chosen = np.array([r.chosen_index for r in kept], dtype=int)
    propensity = np.array([r.probability for r in kept], dtype=float)
    logging = _logging_matrix(kept)
    return EvalSet(kept, LoggedRounds(n_actions, chosen, propensity, np.array(rewards, dtype=float), logging),
                   LoggedRounds(n_actions, chosen, propensity, np.array(complaints, dtype=float), logging))


def _logging_matrix(records: list[DecisionRecord]) -> np.ndarray | None:
    """Every eligible action's logging probability, (n, K), when every record has them all
    (``LoggedRounds.logging``: a policy's largest possible weight); else ``None``."""
    if not records or any(len(r.pmf) != len(r.action_ids) for r in records):
        return None
    out = np.zeros((len(records), max(len(r.action_ids) for r in records)))
    for i, r in enumerate(records):
        out[i, : len(r.pmf)] = r.pmf
    return out


def eval_set_from_store(store: DecisionStore, cfg: RewardConfig, since: float | None, until: float | None,
                        as_of: float) -> EvalSet:
    return eval_set(list(iter_joined(store.engine, since, until)), cfg, as_of)


# -- policies: each gives an (n, K) matrix of probabilities over the logged eligible actions ----

Policy = Callable[[EvalSet], np.ndarray]


def _matrix(evals: EvalSet) -> np.ndarray:
    return np.zeros((len(evals), max(evals.rewards.width, 1)))


def no_offer_policy(evals: EvalSet) -> np.ndarray:
    """``no_offer`` always (it is the first eligible action of every logged decision)."""
    pi = _matrix(evals)
    pi[:, 0] = 1.0
    return pi


def uniform_policy(evals: EvalSet) -> np.ndarray:
    """Uniform random over each decision's eligible actions, ``no_offer`` included."""
    pi = _matrix(evals)
    for i, ids in enumerate(evals.action_ids):
        pi[i, : len(ids)] = 1.0 / len(ids)
    return pi


def rules_policy(catalog: Catalog, min_sentiment: float = RULES_MIN_SENTIMENT) -> Policy:
    """The hand-written marketing heuristic (``bandit.decide.control.rules_choice``, also what the
    control group is served): when the issue is resolved and the customer's tone is at
    least ``min_sentiment``, the eligible offer with the highest value; otherwise no offer.
    It sees exactly what the guardrails let through."""

    def policy(evals: EvalSet) -> np.ndarray:
        pi = _matrix(evals)
        for i, rec in enumerate(evals.records):
            interaction = rec.payload.get("context", {}).get("interaction", {})
            pi[i, rules_choice(rec.action_ids, catalog, interaction.get("resolved"),
                               interaction.get("sentiment"), min_sentiment)] = 1.0
        return pi

    return policy


def model_policy(scorer: Scorer, progress: Callable[[int, int], None] | None = None) -> Policy:
    """A trained model's exploring policy, scored on the features that were logged (live
    or imported: any DSJSON context, read by VW as training read it, ``bandit.log.vwjson``).
    ``progress(done, total)`` is told every 1,000 decisions scored, and at the end."""

    def policy(evals: EvalSet) -> np.ndarray:
        pi = _matrix(evals)
        for i, rec in enumerate(evals.records):
            shared: Features = rec.payload["shared"]
            actions: list[Features] = rec.payload["actions"]
            pi[i, : len(actions)] = scorer.pmf(shared, actions) if len(actions) > 1 else [1.0]
            if progress is not None and ((i + 1) % 1000 == 0 or i + 1 == len(evals)):
                progress(i + 1, len(evals))
        return pi

    return policy


# -- comparing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PolicyEvaluation:
    policy: str
    reward: dict[str, Estimate]  # by estimator: ips, snips, dr
    complaint_rate: Estimate  # SNIPS on the complaint indicator
    offer_rate: float  # the policy's expected share of decisions that make an offer
    ess: float

    def warnings(self) -> list[str]:
        return [w for w in (e.warning for e in self.reward.values()) if w]

    def as_metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"ess": self.ess, "offer_rate": self.offer_rate,
                                 "complaint_rate": self.complaint_rate.value,
                                 "complaint_rate_high": self.complaint_rate.high}
        for name, e in self.reward.items():
            out.update({f"{name}": e.value, f"{name}_low": e.low, f"{name}_high": e.high})
        return out


ESTIMATORS = ("ips", "snips", "dr")


@dataclass(frozen=True)
class Comparison:
    n: int
    policies: dict[str, PolicyEvaluation] = field(default_factory=dict)
    # (a, b) -> estimator -> V̂(a) − V̂(b) with its paired interval (``bandit.learn.ope.difference``)
    differences: dict[tuple[str, str], dict[str, Estimate]] = field(default_factory=dict)

    def difference(self, a: str, b: str, estimator: str = "snips") -> Estimate | None:
        """The paired estimate of ``a``'s value minus ``b``'s, if it was computed."""
        return self.differences.get((a, b), {}).get(estimator)

    def table(self, estimator: str = "snips") -> list[dict[str, Any]]:
        """One row per policy, for reports."""
        rows = []
        for name, ev in self.policies.items():
            e = ev.reward[estimator]
            rows.append({"policy": name, "value": e.value, "low": e.low, "high": e.high,
                         "complaint_rate": ev.complaint_rate.value, "offer_rate": ev.offer_rate, "ess": ev.ess})
        return rows


def evaluate(evals: EvalSet, policies: Mapping[str, Policy], min_ess: float = MIN_ESS,
             paired: Sequence[tuple[str, str]] = (), q_hat: np.ndarray | None = None,
             interval: str = "normal") -> Comparison:
    """Every policy on the same logged decisions, with every estimator; and for each pair
    ``(a, b)`` in ``paired``, ``a``'s value minus ``b``'s with a paired interval.

    ``q_hat``: DR's reward model's predictions (``bandit.learn.reward_model.cross_fit``);
    by default the per-action means of these rounds. ``interval``: the construction of
    every interval (``bandit.learn.ope.INTERVALS``)."""
    if q_hat is None:
        q_hat = mean_reward_model(evals.rewards, evals.action_ids) if len(evals) else np.zeros((0, 1))
    out: dict[str, PolicyEvaluation] = {}
    matrices: dict[str, np.ndarray] = {}
    for name, policy in policies.items():
        pi = matrices[name] = policy(evals)
        estimates = {"ips": ips(evals.rewards, pi, min_ess, interval),
                     "snips": snips(evals.rewards, pi, min_ess, interval),
                     "dr": dr(evals.rewards, pi, q_hat, min_ess, interval)}
        offer_rate = float(1.0 - pi[:, 0].mean()) if len(evals) else 0.0
        out[name] = PolicyEvaluation(name, estimates, snips(evals.complaints, pi, min_ess, interval), offer_rate,
                                     estimates["snips"].ess)
    diffs = {(a, b): {e: difference(evals.rewards, matrices[a], matrices[b], e, q_hat, min_ess, interval)
                      for e in ESTIMATORS}
             for a, b in paired}
    return Comparison(len(evals), out, diffs)


def baselines(catalog: Catalog, rules_min_sentiment: float = RULES_MIN_SENTIMENT) -> dict[str, Policy]:
    """The policies every candidate is compared with, besides the champion. The rules
    heuristic is the control group's (the policy file's ``control.rules_min_sentiment``)."""
    return {"no_offer": no_offer_policy, "uniform": uniform_policy,
            "rules": rules_policy(catalog, rules_min_sentiment)}
