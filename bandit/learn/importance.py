"""Which features a candidate's value rests on: leave one namespace out, retrain, re-evaluate.

For a policy file's learner (``offer-bandit evaluate --importance``): for each namespace
``s`` of the logged features (a shared one, ``shared:<key>``, or one of the actions',
``action:<key>``), train the same learner on the same older part of the stretch with
``s`` removed from every decision, score it on the held-out part with ``s`` removed too,
and estimate, paired on the same decisions,

``drop(s) = V̂(π_full) − V̂(π_without s)``

with each estimator and its interval (``bandit.learn.ope.difference``). A large drop
whose interval excludes 0: the candidate's value rests on that namespace. A drop near 0:
it learned nothing it uses from it. A negative drop: it does better without.

A namespace whose features look like identifiers (a string feature with nearly as many
distinct values as decisions) or timestamps (a time-like name, or numbers in the range of
epoch seconds or milliseconds) is suspicious whatever its drop: a model that leans on it
has memorized the log rather than learned something that carries over to tomorrow's
customers (``suspicious_features``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bandit.config.policyfile import load_policy
from bandit.decide.vw import Scorer
from bandit.domain.outcomes import Outcome
from bandit.learn.evaluation import ESTIMATORS, EvalSet, model_policy
from bandit.learn.ope import MIN_ESS, Estimate, difference
from bandit.learn.training import train_dsjson
from bandit.log.dsjson import to_dsjson
from bandit.log.records import DecisionRecord
from bandit.log.vwjson import Features

Pair = tuple[DecisionRecord, list[Outcome]]
_TIME_NAME = re.compile(r"(^|[_\-. ])(time|timestamp|ts|date|datetime|created|updated)($|[_\-. ])", re.I)
_ID_NAME = re.compile(r"(^|[_\-. ])(id|uuid|guid|session)$", re.I)
_EPOCH = ((1e9, 4e9), (1e12, 4e12))  # seconds or milliseconds, 2001 to 2096


@dataclass(frozen=True)
class NamespaceImportance:
    namespace: str  # "shared:<key>" or "action:<key>"
    drop: dict[str, Estimate]  # by estimator: V̂(full) − V̂(without the namespace), paired


def namespaces(records: Sequence[DecisionRecord]) -> list[str]:
    """The top-level keys of the logged features, shared and per action, in first-seen order."""
    seen: dict[str, None] = {}
    for rec in records:
        for key in rec.payload["shared"]:
            seen.setdefault(f"shared:{key}")
        for action in rec.payload["actions"]:
            for key in action:
                seen.setdefault(f"action:{key}")
    return list(seen)


def without(namespace: str, shared: Features, actions: Sequence[Features]) -> tuple[Features, list[Features]]:
    """The features with ``namespace`` (``shared:<key>`` or ``action:<key>``) removed."""
    side, _, key = namespace.partition(":")
    if side == "shared":
        return {k: v for k, v in shared.items() if k != key}, list(actions)
    return shared, [{k: v for k, v in a.items() if k != key} for a in actions]


class WithoutNamespace:
    """A scorer that never sees ``namespace``: what a model trained without it is served."""

    def __init__(self, model: Scorer, namespace: str) -> None:
        self.model, self.namespace = model, namespace
        self.version = f"{model.version} without {namespace}"

    def pmf(self, shared: Features, actions: Sequence[Features]) -> list[float]:
        return self.model.pmf(*without(self.namespace, shared, actions))


def _lines(train_part: Sequence[Pair], policy_file: Path, namespace: str) -> list[str]:
    reward = load_policy(policy_file).reward
    out = []
    for rec, outs in train_part:
        obj: dict[str, Any] = to_dsjson(rec, outs, reward)
        shared, actions = without(namespace, rec.payload["shared"], rec.payload["actions"])
        obj["c"] = {**shared, "_multi": actions}
        out.append(json.dumps(obj, separators=(",", ":")))
    return out


def leave_one_out(policy_file: Path, train_part: Sequence[Pair], evals: EvalSet, full: np.ndarray,
                  q_hat: np.ndarray, interval: str, min_ess: float = MIN_ESS,
                  progress: Callable[[int, int], None] | None = None) -> list[NamespaceImportance]:
    """``drop(s)`` for every namespace ``s`` of the held-out decisions (module docstring);
    ``full`` is the full candidate's probabilities on ``evals``."""
    vw_args = load_policy(policy_file).vw_args()
    found = namespaces(evals.records)
    out = []
    for i, ns in enumerate(found):
        if progress is not None:
            progress(i, len(found))
        model, _ = train_dsjson(vw_args, _lines(train_part, policy_file, ns))
        pi = model_policy(WithoutNamespace(model, ns))(evals)
        out.append(NamespaceImportance(ns, {e: difference(evals.rewards, full, pi, e, q_hat, min_ess, interval)
                                            for e in ESTIMATORS}))
    if progress is not None:
        progress(len(found), len(found))
    return out


def _leaves(features: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    """(name, value) of the scalar features, one level of nesting deep."""
    out = []
    for key, value in features.items():
        if isinstance(value, Mapping):
            out += [(f"{prefix}{key}.{k}", v) for k, v in value.items() if not isinstance(v, (Mapping, list))]
        elif not isinstance(value, list):
            out.append((f"{prefix}{key}", value))
    return out


def suspicious_features(records: Sequence[DecisionRecord]) -> list[str]:
    """Warnings about shared features that look like identifiers or timestamps (module docstring)."""
    values: dict[str, list[Any]] = {}
    for rec in records:
        for name, value in _leaves(rec.payload["shared"], "shared:"):
            values.setdefault(name, []).append(value)
    n = len(records)
    warnings = []
    for name, vs in values.items():
        leaf = name.rsplit(".", 1)[-1].split(":")[-1]
        strings = [v for v in vs if isinstance(v, str)]
        numbers = [float(v) for v in vs if isinstance(v, (int, float)) and not isinstance(v, bool)]
        distinct = len(set(strings))
        if strings and (distinct >= max(20, 0.5 * n) or (_ID_NAME.search(leaf) and distinct > 20)):
            warnings.append(f"{name} looks like an identifier ({distinct} distinct values in {n} decisions): "
                            "a model can memorize it; it does not carry over to new customers")
        elif numbers and (_TIME_NAME.search(leaf) or any(lo <= np.median(numbers) <= hi for lo, hi in _EPOCH)):
            warnings.append(f"{name} looks like a timestamp: a model can learn the log's dates, which never "
                            "come again; use the time of day or day of week instead")
    return warnings
