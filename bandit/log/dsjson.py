"""The decision log in Vowpal Wabbit's decision-service JSON (DSJSON).

One JSON object per line, as Azure Personalizer and the Decision Service logged
them, and as ``python -m vowpalwabbit --dsjson --cb_explore_adf -d FILE`` reads::

    {"_label_cost": -0.45, "_label_probability": 0.8, "_label_Action": 2,
     "_labelIndex": 1, "Timestamp": "2026-11-23T10:00:00.000Z", "Version": "1",
     "EventId": "e-1", "a": [2, 1, 3], "p": [0.8, 0.1, 0.1],
     "c": {"context": {...}, "user": {...}, "_multi": [{"offer": {...}}, ...]},
     "VWState": {"m": "file:ab12..."},
     "_ob": {"reward": 45.0, "ids": ["no_offer", "fiber_upgrade", ...]}}

``a`` lists 1-based action indices into ``_multi``, the chosen one first, the
rest by probability; ``p`` is aligned with ``a``. ``_label_cost`` is
``-reward / scale`` (``bandit.domain.outcomes``). ``_ob`` is ours (VW ignores it): the
unscaled reward and the offer ids, so that importing our own export loses nothing.
Decisions never activated are not exported (they were never shown).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from bandit.domain.outcomes import RewardConfig
from bandit.domain.outcomes import cost, reward
from bandit.log.records import DecisionRecord, from_ts, learnable
from bandit.log.store import DecisionStore
from bandit.domain.outcomes import Outcome, OutcomeType
from bandit.log.reader import iter_joined
from bandit.log.vwjson import Label, context, label_fields


def _iso(ts: float) -> str:
    return from_ts(ts).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def to_dsjson(rec: DecisionRecord, outs: list[Outcome], cfg: RewardConfig) -> dict[str, Any]:
    r = reward(outs, rec.ts, float(rec.payload.get("offer_value", 0.0)), cfg)
    order = [rec.chosen_index] + sorted(
        (i for i in range(len(rec.pmf)) if i != rec.chosen_index), key=lambda i: -rec.pmf[i]
    )
    return {
        **label_fields(Label(rec.chosen_index, cost(r, cfg), rec.probability)),
        "_label_Action": rec.chosen_index + 1,
        "Timestamp": _iso(rec.ts),
        "Version": "1",
        "EventId": rec.event_id,
        "a": [i + 1 for i in order],
        "c": context(rec.payload["shared"], rec.payload["actions"]),
        "p": [rec.pmf[i] for i in order],
        "VWState": {"m": rec.model_version},
        "_ob": {"reward": r, "ids": rec.action_ids},
    }


@dataclass
class ExportStats:
    written: int = 0
    skipped_inactive: int = 0


def dsjson_lines(
    store: DecisionStore, cfg: RewardConfig, since: float | None = None, until: float | None = None,
    stats: ExportStats | None = None,
) -> Iterator[str]:
    """The learnable decisions of the log in ``[since, until)`` (``bandit.log.records.learnable``:
    the activated ones, whatever their reward window) as DSJSON lines."""
    stats = stats if stats is not None else ExportStats()
    for rec, outs in iter_joined(store.engine, since, until):
        if not learnable(rec, cfg, as_of=None):
            stats.skipped_inactive += 1
            continue
        stats.written += 1
        yield json.dumps(to_dsjson(rec, outs, cfg), separators=(",", ":"))


def export_dsjson(
    store: DecisionStore, out: IO[str], cfg: RewardConfig, since: float | None = None, until: float | None = None
) -> ExportStats:
    stats = ExportStats()
    for line in dsjson_lines(store, cfg, since, until, stats):
        out.write(line + "\n")
    return stats


class DSJSONError(ValueError):
    def __init__(self, lineno: int, message: str):
        super().__init__(f"line {lineno}: {message}")


def _parse_ts(value: Any, lineno: int) -> float:
    if not isinstance(value, str):
        raise DSJSONError(lineno, "field 'Timestamp': missing or not a string")
    text = value.rstrip("Z")
    if "." in text:  # Personalizer writes 7 fractional digits; Python reads at most 6
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise DSJSONError(lineno, f"field 'Timestamp': {exc}") from exc
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _action_id(action: dict[str, Any], index: int) -> str:
    for key in ("_tag", "id", "Id"):
        if isinstance(action.get(key), str):
            return action[key]
    return f"action{index + 1}"


def from_dsjson(line: str, lineno: int, cfg: RewardConfig) -> tuple[DecisionRecord, Outcome] | None:
    """One DSJSON line as a logged decision and its reward outcome; ``None`` for a blank line."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DSJSONError(lineno, f"not JSON: {exc.msg}") from exc
    if not isinstance(obj, dict):
        raise DSJSONError(lineno, "expected a JSON object")
    event_id = obj.get("EventId")
    if not isinstance(event_id, str) or not event_id:
        raise DSJSONError(lineno, "field 'EventId': missing")
    c = obj.get("c")
    if not isinstance(c, dict) or not isinstance(c.get("_multi"), list) or not c["_multi"]:
        raise DSJSONError(lineno, "field 'c._multi': missing or empty")
    actions = c["_multi"]
    a, p = obj.get("a"), obj.get("p")
    if not (isinstance(a, list) and isinstance(p, list) and a and len(a) == len(p)):
        raise DSJSONError(lineno, "fields 'a' and 'p': missing or of different lengths")
    if any(not isinstance(i, int) or not 1 <= i <= len(actions) for i in a):
        raise DSJSONError(lineno, f"field 'a': indices must be 1..{len(actions)}")
    pmf = [0.0] * len(actions)
    for i, prob in zip(a, p, strict=True):
        pmf[i - 1] = float(prob)
    chosen = a[0] - 1
    if "_labelIndex" in obj and obj["_labelIndex"] != chosen:
        raise DSJSONError(lineno, "field '_labelIndex': disagrees with a[0]")
    label_cost = obj.get("_label_cost")
    ob = obj.get("_ob") if isinstance(obj.get("_ob"), dict) else {}
    ids = ob.get("ids") if isinstance(ob.get("ids"), list) and len(ob["ids"]) == len(actions) else None
    ts = _parse_ts(obj.get("Timestamp"), lineno)
    rec = DecisionRecord(
        event_id=event_id,
        ts=ts,
        mode="imported",
        model_version=str((obj.get("VWState") or {}).get("m", "unknown")),
        action_ids=[str(x) for x in ids] if ids else [_action_id(x, i) for i, x in enumerate(actions)],
        pmf=pmf,
        chosen_index=chosen,
        activated=not obj.get("_skipLearn", False),
        source="import",
        payload={"shared": {k: v for k, v in c.items() if k != "_multi"}, "actions": actions, "offer_value": 0.0},
    )
    if isinstance(ob.get("reward"), int | float):
        value = float(ob["reward"])
    elif isinstance(label_cost, int | float):
        value = -float(label_cost) * cfg.scale
    else:
        raise DSJSONError(lineno, "field '_label_cost': missing")
    return rec, Outcome(event_id, OutcomeType.REWARD.value, ts, value=value)


@dataclass
class ImportStats:
    read: int = 0
    new: int = 0


def import_dsjson(store: DecisionStore, lines: Iterable[str], cfg: RewardConfig, batch: int = 2000) -> ImportStats:
    """Import a DSJSON history; event ids already in the log are skipped (re-running is safe).

    The whole file is validated first, so a bad line imports nothing.
    """
    parsed = [x for n, line in enumerate(lines, 1) if (x := from_dsjson(line, n, cfg)) is not None]
    stats = ImportStats(read=len(parsed))
    for chunk in _chunks(parsed, batch):
        stats.new += store.log_many([rec for rec, _ in chunk])
        store.add_outcomes([outcome for _, outcome in chunk])
    return stats


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
