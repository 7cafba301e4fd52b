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
Decisions never activated are not exported (they were never shown). ``c`` is the
decision's features as logged (``bandit.log.vwjson.context``), which VW reads for
training as scoring reads them.

Importing keeps each event's ``c`` as it was, whatever its features, so that export,
import, export gives the same lines. An event marked ``_skipLearn: true`` (Personalizer:
deferred, never activated) becomes a decision never shown: in the log, never exported,
trained or evaluated on (``bandit.log.records.learnable``), as VW's own reader skips it.
What a line may hold, and whose action is whose, is ``bandit.log.dsjson_check``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from pydantic_core import to_json

from bandit.domain.modes import Mode
from bandit.domain.outcomes import RewardConfig
from bandit.domain.outcomes import cost, reward
from bandit.log.records import DecisionRecord, from_ts, learnable
from bandit.log.store import DecisionStore
from bandit.domain.outcomes import Outcome, OutcomeType
from bandit.log.reader import iter_joined
from bandit.log.dsjson_check import FieldError, action_ids, check_features, check_kind
from bandit.log.vwjson import Label, Reader, Unreadable, context, label_fields


def _iso(ts: float) -> str:
    return from_ts(ts).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def dsjson_fields(rec: DecisionRecord, outs: list[Outcome], cfg: RewardConfig) -> dict[str, Any]:
    """A decision's DSJSON line without its context ``c``: the label (the reward from the
    outcomes, ``bandit.domain.outcomes``), the actions in ``a`` order with ``p``, and ours."""
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
        "p": [rec.pmf[i] for i in order],
        "VWState": {"m": rec.model_version},
        "_ob": {"reward": r, "ids": rec.action_ids},
    }


def to_dsjson(rec: DecisionRecord, outs: list[Outcome], cfg: RewardConfig) -> dict[str, Any]:
    """A decision as a DSJSON object: ``dsjson_fields`` and its context ``c`` last."""
    return {**dsjson_fields(rec, outs, cfg), "c": context(rec.payload["shared"], rec.payload["actions"])}


def dsjson_text(fields: dict[str, Any], c_text: str) -> str:
    """One DSJSON line from ``dsjson_fields`` and the JSON text of its context ``c``, which
    goes last: spliced in as text, so a context read from the log as text
    (``bandit.log.reader.iter_learnable_features``) is never parsed in Python.
    Serialized by ``pydantic_core`` (a fifth of ``json.dumps``'s time)."""
    head = to_json(fields).decode()
    return f'{head[:-1]},"c":{c_text}}}'


def dsjson_line(rec: DecisionRecord, outs: list[Outcome], cfg: RewardConfig) -> str:
    """One decision as one DSJSON line (``to_dsjson``'s fields, in its order): what the
    export writes and what a retrain streams into VW."""
    return dsjson_text(dsjson_fields(rec, outs, cfg),
                       to_json(context(rec.payload["shared"], rec.payload["actions"])).decode())


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
        yield dsjson_line(rec, outs, cfg)


def export_dsjson(
    store: DecisionStore, out: IO[str], cfg: RewardConfig, since: float | None = None, until: float | None = None
) -> ExportStats:
    stats = ExportStats()
    for line in dsjson_lines(store, cfg, since, until, stats):
        out.write(line + "\n")
    return stats


class DSJSONError(ValueError):
    """A line that cannot be imported, in one line: its number, the field and why."""

    def __init__(self, lineno: int, message: str):
        super().__init__(f"line {lineno}: {message}")


def _parse_ts(value: Any) -> float:
    if not isinstance(value, str):
        raise FieldError("Timestamp", "missing or not a string")
    text = value.rstrip("Z")
    if "." in text:  # Personalizer writes 7 fractional digits; Python reads at most 6
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise FieldError("Timestamp", str(exc)) from exc
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_line(line: str | bytes, lineno: int) -> dict[str, Any] | None:
    """The line's JSON object; ``None`` for a blank line."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DSJSONError(lineno, f"not UTF-8 text (byte {exc.start + 1})") from exc
    if not line.strip():
        return None
    try:
        obj = json.loads(line, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise DSJSONError(lineno, f"not JSON: {exc.msg} (column {exc.colno})") from exc
    except ValueError as exc:  # NaN, Infinity: Python's json reads them; JSON and VW's reader do not
        raise DSJSONError(lineno, f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise DSJSONError(lineno, "not importable: nested too deeply") from exc
    if not isinstance(obj, dict):
        raise DSJSONError(lineno, "expected a JSON object")
    return obj


def _number(obj: dict[str, Any], key: str) -> float | None:
    """A top-level number of the line, if present (a boolean is not one)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FieldError(key, "must be a finite number")
    return float(value)


def _decision(obj: dict[str, Any], cfg: RewardConfig) -> tuple[DecisionRecord, Outcome | None]:
    """The decision a checked line records, and its reward outcome (``None``: a line not
    learned from that carries no cost). Raises ``FieldError``."""
    check_kind(obj)
    event_id = obj.get("EventId")
    if not isinstance(event_id, str) or not event_id:
        raise FieldError("EventId", "missing")
    c = obj.get("c")
    if not isinstance(c, dict) or not isinstance(c.get("_multi"), list) or not c["_multi"]:
        raise FieldError("c._multi", "missing or empty")
    actions = c["_multi"]
    for i, action in enumerate(actions):
        if not isinstance(action, dict):
            raise FieldError(f"c._multi[{i}]", "an action must be a JSON object")
    check_features(c, "c", top=True)
    for i, action in enumerate(actions):
        check_features(action, f"c._multi[{i}]", depth=2)
    a, p = obj.get("a"), obj.get("p")
    if not (isinstance(a, list) and isinstance(p, list) and a and len(a) == len(p)):
        raise FieldError("a", "missing, empty, or not as long as 'p'")
    if any(isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= len(actions) for i in a):
        raise FieldError("a", f"indices must be 1..{len(actions)}")
    if len(set(a)) != len(a):
        raise FieldError("a", "an action is listed twice")
    if any(isinstance(x, bool) or not isinstance(x, int | float) or not 0 <= x <= 1 for x in p):
        raise FieldError("p", "probabilities must be numbers in [0, 1]")
    if not p[0] > 0:
        raise FieldError("p", "the action taken (a[0]) has probability 0; no estimate can weigh it")
    pmf = [0.0] * len(actions)
    for i, prob in zip(a, p, strict=True):
        pmf[i - 1] = float(prob)
    chosen = a[0] - 1
    if "_labelIndex" in obj and obj["_labelIndex"] != chosen:
        raise FieldError("_labelIndex", "disagrees with a[0]")
    label_prob = _number(obj, "_label_probability")
    if label_prob is not None and abs(label_prob - pmf[chosen]) > 1e-6:
        raise FieldError("_label_probability", f"{label_prob} disagrees with p[0] = {pmf[chosen]}")
    skip = obj.get("_skipLearn", False)
    if not isinstance(skip, bool):
        raise FieldError("_skipLearn", "must be true or false")
    ob = obj.get("_ob", {})
    if not isinstance(ob, dict):
        raise FieldError("_ob", "must be an object (this service's export writes it)")
    ts = _parse_ts(obj.get("Timestamp"))
    state = obj.get("VWState")
    rec = DecisionRecord(
        event_id=event_id,
        ts=ts,
        mode=Mode.imported,
        model_version=str(state.get("m", "unknown")) if isinstance(state, dict) else "unknown",
        action_ids=action_ids(actions, ob.get("ids")),
        pmf=pmf,
        chosen_index=chosen,
        activated=not skip,  # _skipLearn: never shown (Personalizer: deferred, never activated)
        source="import",
        payload={"shared": {k: v for k, v in c.items() if k != "_multi"}, "actions": actions, "offer_value": 0.0},
    )
    value = _number(ob, "reward") if "reward" in ob else None
    if value is None:
        label_cost = _number(obj, "_label_cost")
        if label_cost is None:
            if skip:
                return rec, None
            raise FieldError("_label_cost", "missing")
        value = -label_cost * cfg.scale
    return rec, Outcome(event_id, OutcomeType.REWARD.value, ts, value=value)


def from_dsjson(line: str | bytes, lineno: int, cfg: RewardConfig,
                reader: Reader) -> tuple[DecisionRecord, Outcome | None] | None:
    """One DSJSON line as a logged decision and its reward outcome; ``None`` for a blank
    line. The line is checked (``bandit.log.dsjson_check``), then its features are read
    by VW's own reader (``reader``), so that what the log accepts, training and scoring
    read as it says; anything else is a ``DSJSONError`` naming the line and the field."""
    obj = _parse_line(line, lineno)
    if obj is None:
        return None
    try:
        rec, outcome = _decision(obj, cfg)
        reader.check(rec.payload["shared"], rec.payload["actions"])
    except FieldError as exc:
        raise DSJSONError(lineno, str(exc)) from exc
    except Unreadable as exc:
        raise DSJSONError(lineno, f"field 'c': VW's reader refuses it: {exc}") from exc
    return rec, outcome


@dataclass
class ImportStats:
    read: int = 0
    new: int = 0
    not_learned: int = 0  # ``_skipLearn: true``: kept, never trained or evaluated on


def import_dsjson(store: DecisionStore, lines: Iterable[str | bytes], cfg: RewardConfig,
                  batch: int = 2000) -> ImportStats:
    """Import a DSJSON history; event ids already in the log are skipped (re-running is safe).

    The whole file is checked first, so a bad line imports nothing.
    """
    reader = Reader()
    parsed = [x for n, line in enumerate(lines, 1) if (x := from_dsjson(line, n, cfg, reader)) is not None]
    stats = ImportStats(read=len(parsed), not_learned=sum(1 for rec, _ in parsed if not rec.activated))
    for chunk in _chunks(parsed, batch):
        stats.new += store.log_many([rec for rec, _ in chunk])
        store.add_outcomes([outcome for _, outcome in chunk if outcome is not None])
    return stats


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
