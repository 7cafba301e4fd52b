"""Features as Vowpal Wabbit reads them: the one featurization of training and scoring.

A decision's features are a DSJSON context object, the ``c`` of a DSJSON line: the shared
namespaces (JSON objects of features) and ``_multi``, one object per action. Training
reads our DSJSON export with VW's own JSON reader (``--dsjson -d FILE``,
``bandit.learn.training``); scoring hands VW the same object, as a one-line DSJSON event,
through the same reader (``Workspace.parse`` in a workspace made with ``READER_ARGS``,
``bandit.decide.vw.VWModel``). Why: when scoring wrote VW text lines from its own
featurizer, a history whose features were strings (Personalizer's ``"timeOfDay":
"morning"``) trained, then failed to score; two featurizers can disagree, one cannot. So
whatever a context holds (numbers, strings, booleans, nested objects, arrays, any
namespaces; live features from ``bandit.decide.features`` or an imported history), VW
hashes it the same way when it learns and when it scores.

VW's JSON semantics (``vowpalwabbit/json_parser``, VW 9), for whoever reads an audit:

- an object is a namespace named by its key (its first character is the namespace's
  index, which ``--interactions`` names); scalars at the top of ``c`` or of an action go
  to the default namespace ``" "``; an object inside an object is a namespace of its own;
- a number is feature ``key`` with that value (a 0 contributes nothing); VW keeps it as
  a 32-bit float;
- a string is the feature ``key`` and ``value`` concatenated, without a separator
  (``{"timeOfDay": "morning"}`` is ``timeOfDaymorning``), value 1; spaces, tabs, ``|``
  and ``:`` in the value become ``_``;
- ``true`` is feature ``key``, value 1; ``false`` and ``null`` are nothing;
- an array of numbers is one anonymous feature per position, in a namespace named by the
  key; an array of objects puts each object's features in that namespace; a string, a
  boolean or an array inside an array is a parse error;
- a key starting with ``_`` is never a feature: ``_tag``, ``_text``, ``_multi`` and the
  label keys have their meanings, the others are skipped.

Live features (``{namespace: {name: number}}``) hash exactly as the VW text lines that
scoring wrote before (``|namespace name:value``), so models trained before keep their
meaning; ``tests/log/test_vwjson.py`` checks it hash by hash. What an imported line may
hold is checked at import (``bandit.log.dsjson_check``), then by ``Reader``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import vowpalwabbit
from pydantic_core import to_json

Features = Mapping[str, Any]
"""A DSJSON context object without ``_multi`` (a decision's shared features), or one
``_multi`` action: namespaces to features, as VW's JSON reader reads them."""

READER_ARGS = ("--dsjson", "--strict_parse")
"""VW's DSJSON reader, for every workspace that reads features. ``--strict_parse``: a line
the reader cannot read raises with VW's message instead of becoming an empty example
(which VW would score as one action with probability 1)."""


class Label(NamedTuple):
    """What a decision taught: the index of the action taken, its cost, its probability."""

    index: int
    cost: float
    probability: float


def context(shared: Features, actions: Sequence[Features]) -> dict[str, Any]:
    """The DSJSON ``c`` object of a decision: the shared namespaces, then ``_multi``."""
    return {**shared, "_multi": list(actions)}


def context_text(shared: str, actions: str) -> str:
    """``context`` on JSON text: the shared namespaces' object and the actions' array as
    the log holds them, joined without parsing them."""
    inner = shared.strip()[1:-1].strip()
    return "{" + (inner + "," if inner else "") + '"_multi":' + actions + "}"


def label_fields(label: Label) -> dict[str, Any]:
    """The DSJSON label of an event (VW reads ``_labelIndex`` as the action taken)."""
    return {"_label_cost": label.cost, "_label_probability": label.probability, "_labelIndex": label.index}


def event(shared: Features, actions: Sequence[Features], label: Label | None = None) -> str:
    """One DSJSON line that VW's reader takes as one multi-line example: the context and
    ``a`` (the reader drops an event without actions as if it were blank), with
    ``label`` for learning. Serialized by ``pydantic_core`` (a fifth of ``json.dumps``'s
    time on the request path); VW reads the same numbers and strings either way."""
    body: dict[str, Any] = label_fields(label) if label is not None else {}
    body["a"] = list(range(1, len(actions) + 1))
    body["c"] = context(shared, actions)
    return to_json(body).decode()


class Unreadable(ValueError):
    """VW's reader refused a context, or read it as other than one shared example and one
    example per action."""


class Reader:
    """VW's DSJSON reader on its own, with no model: the last check of an imported line
    (``bandit.log.dsjson``), so that a history the log accepts is one VW reads as it says.

    Not thread-safe (a VW workspace is not); one per import."""

    def __init__(self) -> None:
        self._ws = vowpalwabbit.Workspace(" ".join(["--cb_explore_adf", "--quiet", *READER_ARGS]))

    def check(self, shared: Features, actions: Sequence[Features]) -> None:
        """Raise ``Unreadable`` with VW's reason unless VW reads the decision as one shared
        example and one example per action."""
        try:
            examples = self._ws.parse(event(shared, actions))
        except RuntimeError as exc:  # what pylibvw raises for a parse error, with VW's message
            raise Unreadable(str(exc).strip()) from exc
        n = len(examples)
        self._ws.finish_example(examples)
        if n != len(actions) + 1:
            raise Unreadable(f"VW reads {n - 1} actions where '_multi' has {len(actions)}")
