"""The actions a decision is over, as features: the catalog's offers, or the caller's own.

A request without ``actions`` is over the catalog (``no_offer`` and every offer), each
featurized by ``bandit.decide.features``. A request with ``actions`` (a Personalizer
application's) is over those, and its ``features`` join the shared namespaces:

- shared features: the service's namespaces (``shared_features``), then the caller's
  ``features`` as sent (a key naming one of ours replaces it: the caller's data is what
  the caller knows of the context);
- ``no_offer`` and a catalog offer: the catalog's features (``offer_features``), after
  any the caller sent for it;
- the caller's own action: its id in the ``offer`` namespace (``id=<id>``, as an offer's),
  so that the learner's interactions with ``o`` tell the actions apart as they tell
  offers apart, then the caller's features for it.

Whatever the caller sends is a DSJSON context object read by VW's own reader, for
training and scoring alike (``bandit.log.vwjson``); ``check_features`` refuses, naming
the field, what that reader cannot read, before anything is decided or logged.
"""

from __future__ import annotations

from datetime import datetime

from bandit.config.catalog import Catalog
from bandit.decide.features import offer_features, shared_features, token
from bandit.domain.context import DecisionRequest, History
from bandit.domain.errors import InvalidRequest
from bandit.log.dsjson_check import FieldError
from bandit.log.dsjson_check import check_features as check_dsjson
from bandit.log.vwjson import Features


def check_features(request: DecisionRequest) -> None:
    """Raise ``InvalidRequest`` naming the field if VW's reader could not read the caller's
    features (a string or boolean inside an array, a number beyond a 32-bit float, actions
    or a label inside the context, nesting deeper than the import allows)."""
    try:
        check_dsjson(request.features, "features")
        for i, action in enumerate(request.actions or ()):
            check_dsjson(action.features, f"actions[{i}].features")
    except FieldError as exc:
        raise InvalidRequest(exc.field, exc.reason) from None


def shared(request: DecisionRequest, history: History, now: datetime) -> Features:
    """The decision's shared namespaces: ours, then the caller's."""
    out = shared_features(request, history, now)
    return {**out, **request.features} if request.features else out


def action_features(request: DecisionRequest, catalog: Catalog, action_id: str) -> Features:
    """One eligible action's namespaces (see the module docstring)."""
    sent = next((a.features for a in request.actions or () if a.id == action_id), {})
    offer = catalog.get(action_id)
    if offer is not None or action_id not in {a.id for a in request.actions or ()}:  # no_offer or an offer
        return {**sent, **offer_features(offer)}
    return {"offer": {f"id={token(action_id)}": 1.0}, **sent}
