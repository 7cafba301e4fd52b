"""Azure Personalizer's REST shapes, mapped onto the native decision request.

Personalizer (retired 2026-10-01) callers send ``contextFeatures`` as a list of
objects and ``actions`` with their own features. Here:

- action ids must be catalog offers (or ``no_offer``); an unknown id is a 400
  naming it. They become the request's ``candidates``; ``excludedActions`` are
  removed; ``no_offer`` is always a candidate, so it can be the
  ``rewardActionId``. Action features are ignored: marketing's catalog defines
  the offers.
- ``contextFeatures`` objects are merged; keys that name native context fields
  (table below, camelCase or snake_case) fill them; everything else becomes a
  request attribute (an extra feature in the ``xattrs`` namespace; nested objects
  flatten to ``outer_inner``).
- defaults where Personalizer callers have nothing to send: channel ``web``,
  request type ``informational`` (the most restrained: only sales contact and
  upsell families), resolution and tone unknown (what they allow is the policy
  file's ``guardrails.unknown``). Without ``customerId`` the visitor is anonymous: no
  contact history, so no contact-history caps.

The decision itself goes through the same decision path as ``/decide``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bandit.config.catalog import NO_OFFER, Catalog
from bandit.domain.context import DecisionRequest, Identifier
from bandit.decide.decider import Decision, new_event_id
from bandit.domain.errors import InvalidRequest

MAX_ACTIONS = 50
# Personalizer's SDKs call the routes with and without the API version in the path: one
# definition of each route, mounted under both.
PREFIXES = ("/personalizer", "/personalizer/v1.0")

# Personalizer context keys (normalized: lower case, no separators) -> (section, native field).
CONTEXT_KEYS: dict[str, tuple[str, str]] = {
    "channel": ("", "channel"),
    "requesttype": ("interaction", "request_type"),
    "intent": ("interaction", "intent"),
    "resolved": ("interaction", "resolved"),
    "sentiment": ("interaction", "sentiment"),
    "distress": ("interaction", "distress"),
    "customerid": ("customer", "id"),
    "authenticated": ("customer", "authenticated"),
    "tier": ("customer", "tier"),
    "tenuremonths": ("customer", "tenure_months"),
    "products": ("customer", "products"),
    "region": ("customer", "region"),
    "optedout": ("customer", "opted_out"),
}


class PersonalizerModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class RankableAction(PersonalizerModel):
    id: Identifier
    features: list[dict[str, Any]] = Field(default_factory=list)


class RankRequest(PersonalizerModel):
    actions: list[RankableAction] = Field(min_length=1)
    context_features: list[dict[str, Any]] = Field(default_factory=list, alias="contextFeatures")
    excluded_actions: list[Identifier] = Field(default_factory=list, alias="excludedActions")
    event_id: Identifier | None = Field(None, alias="eventId")
    defer_activation: bool = Field(False, alias="deferActivation")


class RankedAction(BaseModel):
    id: str
    probability: float


class RankResponse(BaseModel):
    ranking: list[RankedAction]
    eventId: str  # noqa: N815 - Personalizer's field names
    rewardActionId: str  # noqa: N815


class RewardRequest(PersonalizerModel):
    value: float = Field(allow_inf_nan=False)


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _attr_key(key: str) -> str:
    k = re.sub(r"[^A-Za-z0-9_]", "_", key)
    return k if re.match(r"[A-Za-z_]", k) else f"f_{k}"


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}_{k}" if prefix else str(k), v, out)
    elif isinstance(value, bool | str) or (isinstance(value, int | float) and math.isfinite(value)):
        out[_attr_key(prefix)[:64]] = value if not isinstance(value, str) else value[:256]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        out[_attr_key(prefix)[:64]] = ",".join(value)[:256]


def to_decision_request(rank: RankRequest, catalog: Catalog) -> DecisionRequest:
    """Map a Personalizer rank request onto the native request; raises ``InvalidRequest``."""
    if len(rank.actions) > MAX_ACTIONS:
        raise InvalidRequest("actions", f"at most {MAX_ACTIONS} actions, got {len(rank.actions)}")
    for i, a in enumerate(rank.actions):
        if a.id != NO_OFFER and a.id not in catalog.offers:
            raise InvalidRequest(f"actions[{i}].id", f"'{a.id}' is not an offer in the catalog")
    excluded = set(rank.excluded_actions)
    candidates = [a.id for a in rank.actions if a.id not in excluded]
    body: dict[str, Any] = {
        "channel": "web",
        "customer": {},
        "interaction": {"request_type": "informational"},
        "candidates": list(dict.fromkeys([NO_OFFER, *candidates])),
        "defer_activation": rank.defer_activation,
        "attributes": {},
    }
    event_id = rank.event_id or new_event_id()
    body["event_id"] = event_id
    for obj in rank.context_features:
        for key, value in obj.items():
            target = CONTEXT_KEYS.get(_norm(key))
            if target is None:
                _flatten(key, value, body["attributes"])
                continue
            section, field = target
            if field == "resolved" and isinstance(value, bool):
                value = "true" if value else "false"
            if section:
                body[section][field] = value
            else:
                body[field] = value
    if len(body["attributes"]) > 50:
        body["attributes"] = dict(list(body["attributes"].items())[:50])
    try:
        return DecisionRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"][1:] if not isinstance(p, int)) or str(err["loc"][0])
        raise InvalidRequest(f"contextFeatures.{loc}", err["msg"]) from exc


def to_rank_response(rank: RankRequest, decision: Decision) -> RankResponse:
    """Personalizer's ranking: the decision's probabilities, then every action it could not take at 0."""
    ranking = [RankedAction(id=r.id, probability=r.probability) for r in decision.ranking]
    ranked = {r.id for r in ranking}
    ranking += [RankedAction(id=a.id, probability=0.0) for a in rank.actions if a.id not in ranked]
    return RankResponse(ranking=ranking, eventId=decision.event_id, rewardActionId=decision.offer_id)
