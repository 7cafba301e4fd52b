"""What an imported DSJSON line may hold, and whose action is whose.

An import takes a history only if every line of it can be learned from as it says, so
each line is checked before anything is written (``bandit.log.dsjson.import_dsjson``):

- **Its kind.** Contextual-bandit events only: one decision over the actions of
  ``c._multi``. Conditional contextual bandits and slates (``_outcomes``, ``_slots`` and
  their slot fields ``_a``, ``_p``, ``_inc``, ``_slot_id``), continuous actions (``pdf``,
  ``_label_ca``), deduplicated actions (``__aid``: the action lives in another line) and
  events sampled with a probability of drop (``pdrop``: VW reweights them by
  ``1 / (1 - pdrop)``, which the log does not keep) are refused, with the field that
  shows it.
- **Its features** (``check_features``): the JSON values VW's reader reads (see
  ``bandit.log.vwjson``); an array holds numbers, nulls or objects, never strings,
  booleans or arrays (VW stops at them); numbers are finite 32-bit floats; ``_tag`` and
  ``_text`` are strings; no label inside ``c``. Why here and not only in VW
  (``vwjson.Reader`` still reads every line afterwards): the message names the field,
  and VW's reader crashes the process on some inputs (``__aid`` without its dictionary).

Everything else a line holds is kept as it was, so that exporting it gives it back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bandit.domain.context import FLOAT32_MAX

MAX_DEPTH = 32
"""Objects and arrays nested in ``c``, at most: histories nest a few; scoring serializes
the context on the request path, which stops at a few hundred."""

_CCB = "a conditional contextual bandit or slates event"


class FieldError(ValueError):
    """A line's field that cannot be imported, and why; ``bandit.log.dsjson`` adds the line."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"field '{field}': {reason}")
        self.field = field
        self.reason = reason


def check_kind(obj: Mapping[str, Any]) -> None:
    """Refuse the events that are not contextual-bandit decisions over ``c._multi``."""
    if "_outcomes" in obj:
        raise FieldError("_outcomes", f"{_CCB}; only contextual-bandit events can be learned from")
    if "pdf" in obj or any(k.startswith("_label_ca") for k in obj):
        field = "pdf" if "pdf" in obj else next(k for k in obj if k.startswith("_label_ca"))
        raise FieldError(field, "a continuous-action event; only contextual-bandit events can be learned from")
    if "_p" in obj:
        raise FieldError("_p", "probabilities under '_p' (a slot's); a contextual-bandit event has them in 'p'")
    pdrop = obj.get("pdrop")
    if pdrop is not None:
        _check_number(pdrop, "pdrop")
        if pdrop != 0:
            raise FieldError("pdrop", f"an event kept with probability 1 - pdrop = 1 - {pdrop!r}: VW weights it "
                                      "1 / (1 - pdrop), which the log does not keep")


def check_features(obj: Mapping[str, Any], path: str, top: bool = False, depth: int = 1) -> None:
    """Check a context object (``c`` with ``top``, an action, a namespace) as VW's reader
    would read it; ``path`` names it in errors (``c``, ``c._multi[2]``, ``c.User``), at
    ``depth`` objects and arrays inside ``c``."""
    if depth > MAX_DEPTH:
        raise FieldError(path, f"nested deeper than {MAX_DEPTH} objects and arrays")
    for key, value in obj.items():
        here = f"{path}.{key}"
        if key.startswith("_"):
            _check_special(key, value, here, top)
        else:
            _check_value(value, here, depth + 1)


def _check_special(key: str, value: Any, here: str, top: bool) -> None:
    """A ``_`` key: no feature, but some mean something to VW's reader (matched as it
    matches them, some regardless of case)."""
    folded = key.lower()
    if key == "_multi":
        if not top:
            raise FieldError(here, "actions inside an action or a namespace; VW reads one level of '_multi'")
    elif key in ("_slots", "_a", "_p", "_slot_id") or folded == "_inc":
        raise FieldError(here, f"{_CCB}; only contextual-bandit events can be learned from")
    elif folded == "__aid":
        raise FieldError(here, "a deduplicated action (its features are in another line); expand the actions first")
    elif key.startswith("_label"):
        raise FieldError(here, "a label inside the context; a DSJSON label sits at the top of the line")
    elif folded == "_tag" or key == "_text":
        if not isinstance(value, str):
            raise FieldError(here, f"must be a string, not {_kind(value)}")
    elif key == "_original_label_cost":
        if value is not None:
            _check_number(value, here)
    # any other ``_`` key is skipped by VW's reader whatever it holds: kept as it is


def _check_value(value: Any, here: str, depth: int) -> None:
    if isinstance(value, Mapping):
        check_features(value, here, depth=depth)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            at = f"{here}[{i}]"
            if isinstance(item, Mapping):
                check_features(item, at, depth=depth + 1)
            elif item is not None:
                if isinstance(item, bool) or not isinstance(item, int | float):
                    raise FieldError(at, f"{_kind(item)} in an array; VW reads arrays of numbers or of objects only")
                _check_number(item, at)
    elif value is None or isinstance(value, bool | str):
        return
    else:
        _check_number(value, here)


def _check_number(value: Any, here: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(here, f"must be a number, not {_kind(value)}")
    if not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
        raise FieldError(here, f"{value!r} is not a finite 32-bit float (VW's feature values)")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# -- action ids ---------------------------------------------------------------------------------

ID_KEYS = ("id", "Id")


def action_id(action: Mapping[str, Any], index: int) -> str:
    """An action's id, as Personalizer and the Decision Service write it: its ``_tag``, an
    ``id`` at its top, or an ``id`` inside one of its namespaces (``{"Offer": {"id": "a0",
    "price": 3}}`` is ``a0``; the first namespace that has one); else ``action<n>``, 1-based."""
    if isinstance(action.get("_tag"), str):
        return action["_tag"]
    for key in ID_KEYS:
        if isinstance(action.get(key), str):
            return action[key]
    for name, namespace in action.items():
        if not name.startswith("_") and isinstance(namespace, Mapping):
            for key in ID_KEYS:
                if isinstance(namespace.get(key), str):
                    return namespace[key]
    return f"action{index + 1}"


def action_ids(actions: Sequence[Mapping[str, Any]], logged: Any) -> list[str]:
    """The ids of ``actions``: ``logged`` (our export's ``_ob.ids``) when given, else each
    action's own (``action_id``). Ids are unique: two actions by one name would be one
    offer to every reader of the log."""
    if logged is None:
        ids = [action_id(a, i) for i, a in enumerate(actions)]
    elif isinstance(logged, list) and len(logged) == len(actions) and all(isinstance(x, str) for x in logged):
        ids = list(logged)
    else:
        raise FieldError("_ob.ids", f"must be {len(actions)} strings, one per action of 'c._multi'")
    seen: set[str] = set()
    for i, x in enumerate(ids):
        if x in seen:
            raise FieldError("_ob.ids" if logged is not None else f"c._multi[{i}]", f"action id {x!r} appears twice")
        seen.add(x)
    return ids
