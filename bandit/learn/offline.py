"""Offline evaluation of any policies on a stretch of the log: what ``offer-bandit evaluate`` computes.

The retrain flow evaluates one candidate against the champion and the baselines on its
window's newest 20%. A data scientist wants more: any policies, any stretch of the log,
side by side on the same logged decisions, with intervals that hold when rewards are
rare. Each policy is named by a spec (``POLICY_FORMS``):

- ``champion``, ``registry:<version>``: a version of the registry's model (resolved by
  the caller: the registry lives in ``tracking/``, which the core does not import);
- ``model:<path>``: a saved VW model file;
- ``policyfile:<path>``: a policy file's learner, trained on the older part of the
  stretch (the split of ``bandit.learn.window``: the newest ``holdout`` share is held
  out), so it is judged only on decisions it did not learn from;
- ``no_offer``, ``uniform``, ``rules``: the baselines of ``bandit.learn.evaluation``;
- ``fixed:<offer id>``: that offer whenever the guardrails let it through, else no offer.

Every policy is judged on the same decisions: the learnable ones of ``[since, until)``
(``bandit.log.records.learnable``: shown, and their reward window closed by ``as_of``),
or, when a ``policyfile:`` is among them, the held-out part only. Models explore as the
service would serve them (the policy file's exploration, ``VWModel.load``). For each
policy: IPS, SNIPS and DR with 95% intervals (``bandit.learn.ope``; by default empirical
likelihood with a pseudo-round at the policy's largest possible weight, ``el_wmax`` in
``bandit.learn.intervals``, the construction that held its coverage with rare rewards), DR with a cross-fitted VW regression on context
x action (``bandit.learn.reward_model``), the effective sample size, the estimated
complaint rate and offer rate; and each policy's difference from the first, paired on
the same decisions. Rewards (and complaints) are the current policy file's: one
yardstick for every policy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bandit.config.loader import Config
from bandit.config.policyfile import load_policy
from bandit.decide.vw import Scorer, VWModel
from bandit.domain.errors import InvalidRequest, OfferBanditError
from bandit.domain.outcomes import Outcome
from bandit.learn.importance import NamespaceImportance, leave_one_out, suspicious_features
from bandit.learn.evaluation import ESTIMATORS, Comparison, EvalSet, Policy, baselines, eval_set, evaluate, model_policy
from bandit.learn.ope import INTERVALS, Estimate
from bandit.learn.reward_model import cross_fit, decisions_of
from bandit.learn.specs import DEFAULT_FOLDS, DEFAULT_INTERVAL, PolicySpec
from bandit.learn.training import train_dsjson
from bandit.learn.window import DEFAULT_HOLDOUT, Window
from bandit.log.dsjson import to_dsjson
from bandit.log.records import DecisionRecord, learnable

Pair = tuple[DecisionRecord, list[Outcome]]
Progress = Callable[[str, int, int | None], None]
"""``progress(stage, done, total)``; ``total`` is ``None`` while unknown (reading the log)."""


def _quiet(stage: str, done: int, total: int | None) -> None:
    return None


class NothingToEvaluate(OfferBanditError):
    """The stretch of the log holds no decision to evaluate on."""


def fixed_policy(offer_id: str) -> Policy:
    """``offer_id`` in every decision where it was eligible, ``no_offer`` elsewhere (a
    "what if we always made this offer" baseline, within the guardrails)."""

    def policy(evals: EvalSet) -> np.ndarray:
        pi = np.zeros((len(evals), max(evals.rewards.width, 1)))
        for i, ids in enumerate(evals.action_ids):
            pi[i, ids.index(offer_id) if offer_id in ids else 0] = 1.0  # no_offer is every decision's first
        return pi

    return policy


@dataclass(frozen=True)
class OfflineEvaluation:
    """The result: the comparison (``bandit.learn.evaluation.Comparison``) and how it was made."""

    comparison: Comparison
    first: str
    since: float
    until: float
    as_of: float
    interval: str
    folds: int
    read: int  # decisions in the stretch
    trained_on: int  # learnable decisions the policy files were trained on (0: none trained)
    notes: list[str] = field(default_factory=list)
    importance_of: str | None = None  # the policy file whose namespaces were left out (--importance)
    importance: list[NamespaceImportance] = field(default_factory=list)
    suspicious: list[str] = field(default_factory=list)  # features that look like ids or timestamps

    @property
    def n(self) -> int:
        return self.comparison.n

    def differences(self) -> dict[str, dict[str, Estimate]]:
        return {a: by for (a, b), by in self.comparison.differences.items() if b == self.first}

    def as_json(self) -> dict[str, Any]:
        """``{"policies": {name: {"ips": {"value", "low", "high"}, "snips", "dr", "ess",
        "complaint_rate", "offer_rate"}}, "n", "differences": {name: {"against", "ips", ...}}, ...}``;
        a value that could not be computed is ``null``."""
        policies = {}
        for name, ev in self.comparison.policies.items():
            policies[name] = {**{e: _interval(ev.reward[e]) for e in ESTIMATORS}, "ess": _num(ev.ess),
                              "complaint_rate": _num(ev.complaint_rate.value),
                              "complaint_rate_interval": _interval(ev.complaint_rate),
                              "offer_rate": _num(ev.offer_rate), "warnings": ev.warnings()}
        return {"policies": policies, "n": self.n,
                "differences": {a: {"against": self.first, **{e: _interval(d) for e, d in by.items()}}
                                for a, by in self.differences().items()},
                "since": _iso(self.since), "until": _iso(self.until), "as_of": _iso(self.as_of),
                "decisions_read": self.read, "trained_on": self.trained_on, "interval": self.interval,
                "dr_reward_model": f"VW regression on context x action, {self.folds}-fold cross-fitted",
                "notes": self.notes, **self._importance_json()}

    def _importance_json(self) -> dict[str, Any]:
        if self.importance_of is None:
            return {}
        return {"importance": {"policy": self.importance_of, "drop": {
            i.namespace: {e: _interval(d) for e, d in i.drop.items()} for i in self.importance}},
            "suspicious_features": self.suspicious}

    def metrics(self) -> dict[str, float]:
        """The figures as flat metrics (``<policy>.<estimator>``, ``_low``, ``_high``, ``.ess``,
        ``.complaint_rate``, ``.offer_rate``; ``<policy>-minus-<first>.<estimator>``): for MLflow."""
        out: dict[str, float] = {"n": float(self.n)}
        for name, ev in self.comparison.policies.items():
            for e in ESTIMATORS:
                est = ev.reward[e]
                out.update({f"{name}.{e}": est.value, f"{name}.{e}_low": est.low, f"{name}.{e}_high": est.high})
            out.update({f"{name}.ess": ev.ess, f"{name}.complaint_rate": ev.complaint_rate.value,
                        f"{name}.offer_rate": ev.offer_rate})
        for a, by in self.differences().items():
            for e, d in by.items():
                out.update({f"{a}-minus-{self.first}.{e}": d.value, f"{a}-minus-{self.first}.{e}_low": d.low,
                            f"{a}-minus-{self.first}.{e}_high": d.high})
        for i in self.importance:
            for e, d in i.drop.items():
                key = f"importance.{i.namespace}.{e}"
                out.update({key: d.value, f"{key}_low": d.low, f"{key}_high": d.high})
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def table(self) -> str:
        """The report as text: one row per policy, then the paired differences."""
        lines = [f"{self.n} decisions evaluated from {_iso(self.since)} to {_iso(self.until)} "
                 f"({self.read} read; learnable by {_iso(self.as_of)}"
                 + (f"; policy files trained on the older {self.trained_on}" if self.trained_on else "") + ")",
                 f"95% intervals: {self.interval}; DR reward model: VW regression, {self.folds}-fold cross-fitted", ""]
        width = max(len("policy"), *(len(n) for n in self.comparison.policies))
        head = f"{'policy':<{width}}  " + "  ".join(f"{e.upper() + ' [95%]':<27}" for e in ESTIMATORS)
        lines.append(head + f"  {'ESS':>8}  {'complaints':>10}  {'offers':>6}")
        for name, ev in self.comparison.policies.items():
            cells = "  ".join(f"{_fmt(ev.reward[e]):<27}" for e in ESTIMATORS)
            lines.append(f"{name:<{width}}  {cells}  {ev.ess:>8.0f}  {ev.complaint_rate.value:>10.4f}  "
                         f"{ev.offer_rate:>6.2f}")
        if self.differences():
            lines += ["", f"minus {self.first}, paired on the same decisions:"]
            for a, by in self.differences().items():
                cells = "  ".join(f"{_fmt(by[e], signed=True):<27}" for e in ESTIMATORS)
                lines.append(f"{a:<{width}}  {cells}".rstrip())
        if self.importance_of is not None:
            lines += ["", f"importance: {self.importance_of} minus the same learner without the namespace, paired:"]
            nw = max([len("namespace"), *(len(i.namespace) for i in self.importance)])
            for i in sorted(self.importance, key=lambda i: -i.drop["snips"].value):
                cells = "  ".join(f"{_fmt(i.drop[e], signed=True):<27}" for e in ESTIMATORS)
                lines.append(f"{i.namespace:<{nw}}  {cells}".rstrip())
        warnings = [w for ev in self.comparison.policies.values() for w in ev.warnings()] + self.suspicious
        if warnings or self.notes:
            lines += ["", *[f"warning: {w}" for w in warnings], *[f"note: {n}" for n in self.notes]]
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _interval(e: Estimate) -> dict[str, float | None]:
    return {"value": _num(e.value), "low": _num(e.low), "high": _num(e.high)}


def _fmt(e: Estimate, signed: bool = False) -> str:
    f = "+.4f" if signed else ".4f"
    return f"{e.value:{f}} [{e.low:{f}}, {e.high:{f}}]"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


ModelResolver = Callable[[PolicySpec], Scorer]
"""Gives the model of a ``champion`` or ``registry:<version>`` spec (an adapter's)."""


def _no_registry(spec: PolicySpec) -> Scorer:
    raise InvalidRequest("policy", f"{spec.text}: no model registry here to take it from")


def train_policy_file(path: Path, train_part: Sequence[Pair]) -> VWModel:
    """A policy file's learner (``vw_args``, rewards) trained on ``train_part`` as DSJSON,
    as the retrain flow trains a candidate."""
    pf = load_policy(path)
    lines = (json.dumps(to_dsjson(rec, outs, pf.reward), separators=(",", ":")) for rec, outs in train_part)
    model, _ = train_dsjson(pf.vw_args(), lines)
    return model


def offline_evaluation(pairs: Iterable[Pair], cfg: Config, specs: Sequence[PolicySpec], since: float, until: float,
                       as_of: float, resolve: ModelResolver = _no_registry, holdout: float = DEFAULT_HOLDOUT,
                       folds: int = DEFAULT_FOLDS, interval: str = DEFAULT_INTERVAL,
                       progress: Progress = _quiet, importance: bool = False) -> OfflineEvaluation:
    """Evaluate ``specs`` (the first is the one the others are paired against) on the
    decisions of ``pairs`` (``bandit.log.reader.iter_joined`` over ``[since, until)``).
    ``importance``: also leave each namespace out of the first ``policyfile:`` policy
    (``bandit.learn.importance``)."""
    if not specs:
        raise InvalidRequest("policy", "name at least one policy")
    if interval not in INTERVALS:
        raise InvalidRequest("interval", f"must be one of {', '.join(INTERVALS)}, got {interval!r}")
    names = [s.text for s in specs]
    if len(set(names)) != len(names):
        raise InvalidRequest("policy", f"a policy named twice: {names}")
    files = [s for s in specs if s.kind == "policyfile"]
    if importance and not files:
        raise InvalidRequest("importance", "needs a policyfile:<path> policy: its learner is retrained without "
                                           "each namespace")
    scorers: dict[str, Scorer] = {}  # the models that exist already, found before anything is read
    for s in specs:
        if s.kind == "model":
            scorers[s.text] = VWModel.load(Path(str(s.argument)), exploration=cfg.policy.exploration)
        elif s.needs_registry:
            scorers[s.text] = resolve(s)
    reward_cfg = cfg.policy.reward
    kept, read = [], 0
    for rec, outs in pairs:
        read += 1
        if read % 1000 == 0:
            progress("reading the log", read, None)
        if learnable(rec, reward_cfg, as_of):
            kept.append((rec, outs))
    progress("reading the log", read, read)
    train_part: list[Pair] = []
    test_part = kept
    if files:
        window = Window(as_of=until, days=(until - since) / 86400, holdout=holdout)
        train_part, test_part = window.split(kept)
        if not train_part:
            raise NothingToEvaluate(f"{len(kept)} learnable decisions: too few to train the policy files on")
        for i, s in enumerate(files):
            progress("training the policy files", i, len(files))
            scorers[s.text] = train_policy_file(Path(str(s.argument)), train_part)
        progress("training the policy files", len(files), len(files))
    evals = eval_set(test_part, reward_cfg, as_of)
    if not len(evals):
        raise NothingToEvaluate(f"no learnable decisions (shown, reward window closed by {_iso(as_of)}) from "
                                f"{_iso(since)} to {_iso(until)}: {read} decisions read")
    offered = {a for ids in evals.action_ids for a in ids}
    for s in specs:
        if s.kind == "fixed" and s.argument not in offered:
            raise InvalidRequest("policy", f"{s.text}: offer {s.argument!r} was eligible in none of the "
                                           f"{len(evals)} decisions (eligible: {', '.join(sorted(offered))})")
    base = baselines(cfg.catalog, cfg.policy.control.rules_min_sentiment)
    matrices: dict[str, np.ndarray] = {}
    for s in specs:
        if s.kind in base:
            matrices[s.text] = base[s.kind](evals)
        elif s.kind == "fixed":
            matrices[s.text] = fixed_policy(str(s.argument))(evals)
        else:
            scored = model_policy(scorers[s.text], lambda d, t, name=s.text: progress(f"scoring {name}", d, t))
            matrices[s.text] = scored(evals)
    q_hat = cross_fit(decisions_of([r.payload for r in evals.records]), evals.rewards, folds,
                      progress=lambda d, t: progress("fitting DR's reward model", d, t))
    first = specs[0].text
    comparison = evaluate(evals, {n: (lambda _e, pi=pi: pi) for n, pi in matrices.items()},
                          cfg.policy.promotion.min_ess, paired=[(n, first) for n in names[1:]], q_hat=q_hat,
                          interval=interval)
    ranked: list[NamespaceImportance] = []
    if importance:
        ranked = leave_one_out(Path(str(files[0].argument)), train_part, evals, matrices[files[0].text], q_hat,
                               interval, cfg.policy.promotion.min_ess,
                               lambda d, t: progress("leaving each namespace out", d, t))
    notes = []
    if files:
        notes.append(f"every policy is judged on the newest {len(evals)} decisions only (the policy files "
                     f"learned from the {len(train_part)} before them)")
    return OfflineEvaluation(comparison, first, since, until, as_of, interval, folds, read, len(train_part), notes,
                             files[0].text if importance else None, ranked,
                             suspicious_features(evals.records) if importance else [])
