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

from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import pandas as pd

from bandit.config.catalog import Catalog
from bandit.config.policyfile import RULES_MIN_SENTIMENT
from bandit.decide.control import rules_choice
from bandit.learn.ope import (MIN_ESS, Estimate, LoggedRounds, Ragged, action_codes, difference, dr, ips, mean_rewards,
                              snips)
from bandit.domain.outcomes import RewardConfig
from bandit.domain.outcomes import complained, in_window, reward
from bandit.log.records import DecisionRecord, learnable
from bandit.log.store import DecisionStore
from bandit.domain.outcomes import Outcome
from bandit.decide.vw import Scorer
from bandit.log.reader import iter_joined
from bandit.log.vwjson import Features

UNKNOWN = "unknown"  # a column value the record does not carry (older records), as ``bandit.learn.segments``


@dataclass(frozen=True)
class EvalSet:
    """Logged decisions ready for off-policy evaluation.

    Made from records (``eval_set``: ``records`` holds them), or streamed from the log
    (``Columns.eval_set``: ``records`` is empty, and ``columns`` holds what the breakdowns
    read of each decision, ``offers`` each decision's eligible actions)."""

    records: Sequence[DecisionRecord]
    rewards: LoggedRounds
    complaints: LoggedRounds  # the same rounds with reward = 1 if a complaint arrived in the window
    columns: pd.DataFrame | None = None
    offers: Sequence[Sequence[str]] | None = None

    @property
    def action_ids(self) -> Sequence[Sequence[str]]:
        return self.offers if self.offers is not None else [r.action_ids for r in self.records]

    def __len__(self) -> int:
        return len(self.rewards)


def judged(rec: DecisionRecord, outs: list[Outcome], cfg: RewardConfig) -> tuple[float, float]:
    """A learnable decision's reward (the policy file's reward function) and complaint
    indicator (1 if a complaint arrived in its reward window): what evaluation weighs."""
    return (reward(outs, rec.ts, float(rec.payload.get("offer_value", 0.0)), cfg),
            float(complained(in_window(outs, rec.ts, cfg))))


def eval_set(pairs: list[tuple[DecisionRecord, list[Outcome]]], cfg: RewardConfig, as_of: float) -> EvalSet:
    """Keep the learnable decisions (``bandit.log.records.learnable``: activated, reward
    window closed by ``as_of``) and compute each one's reward and complaint indicator."""
    kept, rewards, complaints = [], [], []
    for rec, outs in pairs:
        if not learnable(rec, cfg, as_of):
            continue
        kept.append(rec)
        r, c = judged(rec, outs, cfg)
        rewards.append(r)
        complaints.append(c)
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
Probabilities = Callable[[DecisionRecord], Sequence[float]]
"""A policy's probabilities over one logged decision's eligible actions (``rec.action_ids``)."""


@dataclass(frozen=True)
class ByDecision:
    """A policy that looks at one decision at a time: a ``Policy`` over an ``EvalSet`` of
    records, and, as ``probabilities``, what a streamed evaluation (``Columns``) asks of
    each decision as it is read, so the log's records need not be kept. One definition
    serves both."""

    probabilities: Probabilities
    progress: Callable[[int, int], None] | None = None  # told (done, total) every 1,000 decisions and at the end

    def __call__(self, evals: EvalSet) -> np.ndarray:
        pi = _matrix(evals)
        n = len(evals)
        for i, rec in enumerate(evals.records):
            p = self.probabilities(rec)
            pi[i, : len(p)] = p
            if self.progress is not None and ((i + 1) % 1000 == 0 or i + 1 == n):
                self.progress(i + 1, n)
        return pi


def _matrix(evals: EvalSet) -> np.ndarray:
    return np.zeros((len(evals), max(evals.rewards.width, 1)))


def _no_offer(rec: DecisionRecord) -> list[float]:
    return [1.0] + [0.0] * (len(rec.action_ids) - 1)


def _uniform(rec: DecisionRecord) -> list[float]:
    return [1.0 / len(rec.action_ids)] * len(rec.action_ids)


no_offer_policy = ByDecision(_no_offer)
"""``no_offer`` always (it is the first eligible action of every logged decision)."""

uniform_policy = ByDecision(_uniform)
"""Uniform random over each decision's eligible actions, ``no_offer`` included."""


def rules_policy(catalog: Catalog, min_sentiment: float = RULES_MIN_SENTIMENT) -> ByDecision:
    """The hand-written marketing heuristic (``bandit.decide.control.rules_choice``, also what the
    control group is served): when the issue is resolved and the customer's tone is at
    least ``min_sentiment``, the eligible offer with the highest value; otherwise no offer.
    It sees exactly what the guardrails let through."""

    def probabilities(rec: DecisionRecord) -> list[float]:
        interaction = rec.payload.get("context", {}).get("interaction", {})
        p = [0.0] * len(rec.action_ids)
        p[rules_choice(rec.action_ids, catalog, interaction.get("resolved"), interaction.get("sentiment"),
                       min_sentiment)] = 1.0
        return p

    return ByDecision(probabilities)


def model_policy(scorer: Scorer, progress: Callable[[int, int], None] | None = None) -> ByDecision:
    """A trained model's exploring policy, scored on the features that were logged (live
    or imported: any DSJSON context, read by VW as training read it, ``bandit.log.vwjson``).
    ``progress(done, total)`` is told every 1,000 decisions scored, and at the end."""

    def probabilities(rec: DecisionRecord) -> Sequence[float]:
        shared: Features = rec.payload["shared"]
        actions: list[Features] = rec.payload["actions"]
        return scorer.pmf(shared, actions) if len(actions) > 1 else [1.0]

    return ByDecision(probabilities, progress)


# -- a window's decisions as columns, streamed --------------------------------------------------

class _Codes:
    """Strings as small integer codes (a window's channels, offers, tiers: a handful of
    values over millions of decisions)."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._index: dict[str, int] = {}

    def code(self, value: str) -> int:
        c = self._index.get(value)
        if c is None:
            c = self._index[value] = len(self.values)
            self.values.append(value)
        return c


class ActionIds(Sequence[list[str]]):
    """Each decision's eligible action ids, stored as codes (``offsets[i]:offsets[i+1]`` of
    ``codes``), read back as lists: ``EvalSet.action_ids`` of a streamed window."""

    def __init__(self, codes: np.ndarray, offsets: np.ndarray, names: list[str]):
        self._codes, self._offsets, self._names = codes, offsets, np.array(names, dtype=object)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, i: int) -> list[str]: ...
    @overload
    def __getitem__(self, i: slice) -> list[list[str]]: ...
    def __getitem__(self, i: int | slice) -> list[str] | list[list[str]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        return list(self._names[self._codes[self._offsets[i]:self._offsets[i + 1]]])

    def __iter__(self) -> Iterator[list[str]]:
        names = self._names
        for a, b in zip(self._offsets[:-1], self._offsets[1:], strict=True):
            yield list(names[self._codes[a:b]])

    def codes(self) -> np.ndarray:
        """Every decision's eligible actions, flat, as codes into ``names``."""
        return self._codes

    def names(self) -> list[str]:
        return list(self._names)

    def lengths(self) -> np.ndarray:
        """Each decision's number of eligible actions."""
        return np.diff(self._offsets)


class Columns:
    """A stretch of the log kept as columns, as it streams (``bandit.log.reader.iter_learnable``):
    per decision only what evaluation and the breakdowns read (its eligible actions, the
    one taken, its probability, reward and complaint; event id, time, channel, request
    type, tier), and, per policy given, its probabilities. A few dozen bytes a decision
    instead of its record, so a window of ten million fits.

    ``add`` a decision (its reward and complaint as ``judged`` gives them); ``eval_set`` and
    ``frame`` read them back: the ``EvalSet`` and the ``bandit.learn.segments.decision_frame``
    that ``eval_set`` and ``decision_frame`` make from the same records. ``policies`` are
    asked decision by decision (``ByDecision.probabilities``); ``matrices`` gives their
    (n, K) matrices as ``Policy`` would."""

    def __init__(self, policies: Mapping[str, ByDecision] | None = None, like: "Columns | None" = None,
                 over: "Columns | None" = None) -> None:
        """``over``: the columns of the same decisions, read before in the same order (a first
        model's progressive evaluation reads again the window its training part kept): only
        the policies' probabilities are kept here, the rest is read from ``over``, not kept
        twice (at ten million decisions, about a gigabyte)."""
        self.policies = dict(policies or {})
        self._over = over
        self._added = 0
        like = over if over is not None else like
        # one code book for every text column, shared with ``like`` (another part of the
        # same window), so that the two parts' frames have the same categories
        self._strings = like._strings if like is not None else _Codes()
        self._event_ids: list[str] = []
        self._ts, self._prob, self._reward, self._complaint = array("d"), array("d"), array("d"), array("d")
        self._chosen, self._n = array("i"), array("i")
        self._channel, self._request_type, self._tier, self._chosen_id = array("i"), array("i"), array("i"), array("i")
        self._actions = array("i")
        self._probs: dict[str, array] = {name: array("d") for name in self.policies}
        self._ids_done: list[Any] = []  # event ids, packed a chunk at a time

    def add(self, rec: DecisionRecord, judged_: tuple[float, float]) -> None:
        if self._over is not None:
            self._add_policies(rec, judged_)
            return
        code = self._strings.code
        self._event_ids.append(rec.event_id)
        if len(self._event_ids) >= 65536:
            self._pack_ids()
        self._ts.append(rec.ts)
        self._prob.append(rec.probability)
        self._reward.append(judged_[0])
        self._complaint.append(judged_[1])
        self._chosen.append(rec.chosen_index)
        self._n.append(len(rec.action_ids))
        self._channel.append(code(rec.channel or UNKNOWN))
        self._request_type.append(code(rec.request_type or UNKNOWN))
        tier = ((rec.payload.get("context") or {}).get("customer") or {}).get("tier")
        self._tier.append(code(tier or UNKNOWN))
        self._chosen_id.append(code(rec.chosen_id))
        self._actions.extend(code(a) for a in rec.action_ids)
        for name, policy in self.policies.items():
            self._probs[name].extend(policy.probabilities(rec))

    def _add_policies(self, rec: DecisionRecord, judged_: tuple[float, float]) -> None:
        """``add`` over ``over``'s decisions: the decision must be ``over``'s next one."""
        over, i = self._over, self._added
        assert over is not None
        if i >= len(over) or over._ts[i] != rec.ts or over._chosen[i] != rec.chosen_index or \
                over._reward[i] != judged_[0]:
            raise ValueError(f"Columns: decision {rec.event_id} is not decision {i} of the columns it reads over")
        self._added += 1
        for name, policy in self.policies.items():
            self._probs[name].extend(policy.probabilities(rec))

    def _pack_ids(self) -> None:
        import pyarrow as pa

        self._ids_done.append(pa.array(self._event_ids, type=pa.string()))
        self._event_ids = []

    def __len__(self) -> int:
        return self._added if self._over is not None else len(self._ts)

    def _base(self) -> "Columns":
        """Whose decision columns these are: ``over``'s (all of them read) or this one's."""
        if self._over is None:
            return self
        if self._added != len(self._over):
            raise ValueError(f"Columns: {self._added} of the {len(self._over)} decisions read over")
        return self._over

    def eval_set(self) -> EvalSet:
        if self._over is not None:
            return self._base().eval_set()
        n_actions = np.frombuffer(self._n, dtype=np.int32).astype(int)
        chosen = np.frombuffer(self._chosen, dtype=np.int32).astype(int)
        propensity = np.frombuffer(self._prob, dtype=float).copy()
        offsets = np.concatenate([[0], np.cumsum(n_actions)])
        offers = ActionIds(np.frombuffer(self._actions, dtype=np.int32), offsets, self._strings.values)
        return EvalSet((), LoggedRounds(n_actions, chosen, propensity, np.frombuffer(self._reward, dtype=float).copy()),
                       LoggedRounds(n_actions, chosen, propensity, np.frombuffer(self._complaint, dtype=float).copy()),
                       columns=self.frame(None), offers=offers)

    def n_actions(self) -> np.ndarray:
        """Each decision's number of eligible actions (the columns' own memory, not a copy)."""
        return np.frombuffer(self._base()._n, dtype=np.int32)

    def matrices(self) -> dict[str, Ragged]:
        """Each policy's probabilities over each decision's eligible actions (``Ragged``: the
        rows of the (n, K) matrix its ``Policy`` gives, without the padding; the columns'
        own memory, not a copy). Why not the matrix: at ten million decisions each (n, 11)
        matrix was 880 MB; the eligible actions alone are a third of that or less."""
        n_actions = self.n_actions()
        return {name: Ragged(np.frombuffer(flat, dtype=float), n_actions) for name, flat in self._probs.items()}

    def frame(self, split: str | None) -> pd.DataFrame:
        """``bandit.learn.segments.decision_frame``'s columns: the text columns as categories
        over one code book (so the frames of two parts of a window concatenate as
        categories), the event ids as Arrow strings; with ``split``, that column too."""
        import pyarrow as pa

        if self._over is not None:
            return self._base().frame(split)
        if self._event_ids or not self._ids_done:
            self._pack_ids()
        categories = pd.Index(self._strings.values, dtype=object)

        def text(codes: array) -> pd.Categorical:
            return pd.Categorical.from_codes(np.frombuffer(codes, dtype=np.int32), categories=categories)

        out = pd.DataFrame({
            "event_id": pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(self._ids_done, type=pa.string()))),
            "ts": np.frombuffer(self._ts, dtype=float).copy(),
            "channel": text(self._channel),
            "request_type": text(self._request_type),
            "tier": text(self._tier),
            "chosen": text(self._chosen_id),
            "probability": np.frombuffer(self._prob, dtype=float).copy(),
            "reward": np.frombuffer(self._reward, dtype=float).copy(),
            "complaint": np.frombuffer(self._complaint, dtype=float).astype(bool),
        })
        return out if split is None else out.assign(split=split)


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
        q_hat = _mean_rewards(evals)
    out: dict[str, PolicyEvaluation] = {}
    matrices: dict[str, np.ndarray] = {}
    for name, policy in policies.items():
        pi = matrices[name] = policy(evals)
        estimates = {"ips": ips(evals.rewards, pi, min_ess, interval),
                     "snips": snips(evals.rewards, pi, min_ess, interval),
                     "dr": dr(evals.rewards, pi, q_hat, min_ess, interval)}
        offer_rate = float(1.0 - _no_offer_share(evals, pi)) if len(evals) else 0.0
        out[name] = PolicyEvaluation(name, estimates, snips(evals.complaints, pi, min_ess, interval), offer_rate,
                                     estimates["snips"].ess)
    diffs = {(a, b): {e: difference(evals.rewards, matrices[a], matrices[b], e, q_hat, min_ess, interval)
                      for e in ESTIMATORS}
             for a, b in paired}
    return Comparison(len(evals), out, diffs)


def _mean_rewards(evals: EvalSet) -> Ragged:
    """DR's default reward model on ``evals`` (``bandit.learn.ope.mean_reward_model``), over the
    eligible actions only."""
    codes, names, _ = action_codes(evals.action_ids)
    return mean_rewards(evals.rewards, codes, len(names))


def _no_offer_share(evals: EvalSet, pi: "np.ndarray | Ragged") -> float:
    """A policy's mean probability of ``no_offer`` (every decision's first eligible action)."""
    if isinstance(pi, Ragged):
        return float(pi.at(np.zeros(len(pi), dtype=np.int64)).mean())
    return float(np.asarray(pi)[:, 0].mean())


def baselines(catalog: Catalog, rules_min_sentiment: float = RULES_MIN_SENTIMENT) -> dict[str, Policy]:
    """The policies every candidate is compared with, besides the champion. The rules
    heuristic is the control group's (the policy file's ``control.rules_min_sentiment``)."""
    return {"no_offer": no_offer_policy, "uniform": uniform_policy,
            "rules": rules_policy(catalog, rules_min_sentiment)}
