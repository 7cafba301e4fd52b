"""Azure Personalizer's Rank and Reward shapes, mapped onto the native decision request.

Personalizer (retired 2026-10-01) callers send ``contextFeatures`` as a list of objects
and ``actions`` with their own ids and features. Every rank goes through the same
decision path as ``/decide`` (``OfferBandit.decide_request``), as a request that brings
its own actions (``DecisionRequest.actions``):

- **Features.** The ``contextFeatures`` objects, merged, are the decision's shared
  ``features``, as sent (but ``customerId``: a customer id is never a feature); each
  action's ``features`` objects, merged, are its features. VW's own DSJSON reader reads
  them, as it reads an imported Personalizer history (``bandit.log.vwjson``).
- **Native fields.** Context keys that name native fields (``CONTEXT_KEYS``, camelCase or
  snake_case) fill them too, so the guardrails see them: ``distress``, ``optedOut``,
  ``sentiment``, ``customerId`` (contact history, the frequency cap), ... Unsent: channel
  ``web``, request type ``informational``, tone and resolution unknown (what those allow is
  the policy file's ``guardrails.unknown``), no customer id (an anonymous visitor).
- **Actions.** Any id Personalizer accepted (``ice cream``). An id naming a catalog offer
  is that offer, with all its guardrails; any other is the caller's own action
  (``bandit.decide.guardrails``: the interaction's guardrails, the kill switch by id, the
  contact history's caps). ``excludedActions`` are left out.
- **No offer.** Personalizer always answers one of the caller's actions; the decision's
  ``no_offer`` is answered as the rank's *stand-in*: the policy file's
  ``personalizer.no_offer_action`` when the rank sends it, else the baseline action (the
  first not excluded, Personalizer's definition) unless that is a catalog offer (a 400 then:
  a catalog offer standing in for no offer would skip its guardrails).
- **Multi-slot** ranks are one decision per slot, in order, each logged under
  ``<eventId>:slot<k>`` with the slot's id and features in a ``slot`` namespace; an
  action taken by a slot is not offered to the next ones (the no-offer action excepted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bandit.config.catalog import NO_OFFER, Catalog
from bandit.decide.decider import Decision, new_event_id
from bandit.domain.context import ActionId, DecisionRequest, Features, Identifier
from bandit.domain.errors import InvalidRequest

MAX_ACTIONS = 50
MAX_SLOTS = 10
SLOT_EVENT = "{event_id}:slot{k}"
"""The event id of a multi-slot rank's ``k``-th slot (1-based)."""
MAX_SLOTTED_EVENT_ID = 128 - len(":slot10")
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
NEVER_FEATURES = frozenset({"customerid"})  # an identifier is never a feature


class PersonalizerModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


FeatureList = list[Features]


class RankableAction(PersonalizerModel):
    id: ActionId = Field(description="Any id up to 128 characters; a catalog offer's id is that offer.")
    features: FeatureList = Field(default_factory=list, description="Objects of features, merged into one "
                                  "DSJSON action object.")


class RankRequest(PersonalizerModel):
    actions: list[RankableAction] = Field(min_length=1, max_length=MAX_ACTIONS)
    context_features: FeatureList = Field(default_factory=list, alias="contextFeatures",
                                          description="Objects of features, merged into the shared DSJSON context "
                                          "(but customerId: an identifier is never a feature). Keys naming native "
                                          "fields fill them too: channel, requestType, intent, resolved, sentiment, "
                                          "distress, customerId, authenticated, tier, tenureMonths, products, region, "
                                          "optedOut.")
    excluded_actions: list[ActionId] = Field(default_factory=list, alias="excludedActions")
    event_id: Identifier | None = Field(None, alias="eventId")
    defer_activation: bool = Field(False, alias="deferActivation")


class RankedAction(BaseModel):
    id: str
    probability: float


class RankResponse(BaseModel):
    ranking: list[RankedAction]
    eventId: str  # noqa: N815 - Personalizer's field names
    rewardActionId: str = Field(description="Always one of the request's actions. When no offer is made (the "  # noqa: N815
                                "guardrails, or the policy), the stand-in for no offer: the service's configured "
                                "no-offer action if sent, else the first action not excluded.")


class RewardRequest(PersonalizerModel):
    value: float = Field(allow_inf_nan=False)


class SlotRequest(PersonalizerModel):
    id: str = Field(min_length=1, max_length=256)
    baseline_action: ActionId = Field(alias="baselineAction")
    excluded_actions: list[ActionId] = Field(default_factory=list, alias="excludedActions")
    features: FeatureList = Field(default_factory=list)


class MultiSlotRankRequest(PersonalizerModel):
    actions: list[RankableAction] = Field(min_length=1, max_length=MAX_ACTIONS)
    slots: list[SlotRequest] = Field(min_length=1, max_length=MAX_SLOTS)
    context_features: FeatureList = Field(default_factory=list, alias="contextFeatures")
    event_id: Identifier | None = Field(None, alias="eventId")
    defer_activation: bool = Field(False, alias="deferActivation")


class SlotResponse(BaseModel):
    id: str
    rewardActionId: str  # noqa: N815


class MultiSlotRankResponse(BaseModel):
    eventId: str  # noqa: N815
    slots: list[SlotResponse]


class SlotReward(PersonalizerModel):
    slot_id: str = Field(alias="slotId", min_length=1, max_length=256)
    value: float = Field(allow_inf_nan=False)


class MultiSlotRewardRequest(PersonalizerModel):
    reward: list[SlotReward] = Field(min_length=1, max_length=MAX_SLOTS)


@dataclass(frozen=True)
class Mapped:
    """A rank as a decision request, and the caller's action that answers ``no_offer``."""

    request: DecisionRequest
    stand_in: str


def merged(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Personalizer's lists of feature objects as one object (a later key wins)."""
    out: dict[str, Any] = {}
    for obj in objects:
        out.update(obj)
    return out


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def native_fields(context: dict[str, Any]) -> dict[str, Any]:
    """The native request's fields that context keys name (``CONTEXT_KEYS``), with the
    defaults of a Personalizer caller (channel web, an informational request)."""
    body: dict[str, Any] = {"channel": "web", "customer": {}, "interaction": {"request_type": "informational"}}
    for key, value in context.items():
        target = CONTEXT_KEYS.get(_norm(key))
        if target is None:
            continue
        section, field = target
        if section:
            body[section][field] = value
        else:
            body[field] = value
    return body


def stand_in_for(actions: Sequence[str], catalog: Catalog, no_offer_action: str | None,
                 baselines: Sequence[str]) -> str | None:
    """The caller's action that answers ``no_offer``: ``no_offer_action`` when among
    ``actions``, else the first of ``baselines`` among ``actions`` that is not a catalog
    offer; ``None`` if there is none."""
    if no_offer_action is not None and no_offer_action in actions:
        return no_offer_action
    return next((b for b in baselines if b in actions and b not in catalog.offers), None)


def to_decision_request(rank: RankRequest, catalog: Catalog, no_offer_action: str | None,
                        slot: dict[str, Any] | None = None, baselines: Sequence[str] = ()) -> Mapped:
    """Map a Personalizer rank onto the native request (see the module docstring); raises
    ``InvalidRequest`` naming the field. ``slot``: a multi-slot rank's slot namespace;
    ``baselines``: the stand-ins to try (default: the first action not excluded)."""
    seen: set[str] = set()
    for i, a in enumerate(rank.actions):
        if a.id in seen:
            raise InvalidRequest(f"actions[{i}].id", f"action id '{a.id}' appears twice")
        seen.add(a.id)
    excluded = set(rank.excluded_actions)
    kept = [a for a in rank.actions if a.id not in excluded]
    if not kept:
        raise InvalidRequest("excludedActions", "every action is excluded; at least one must remain")
    stand_in = stand_in_for([a.id for a in kept], catalog, no_offer_action, baselines or [kept[0].id])
    if stand_in is None:
        raise InvalidRequest("actions", f"no action can answer 'no offer': the first action '{kept[0].id}' is a "
                             "catalog offer; send an action of your own first, or the no-offer action "
                             "(policy file: personalizer.no_offer_action)")
    context = merged(rank.context_features)
    features = {k: v for k, v in context.items() if _norm(k) not in NEVER_FEATURES}
    if slot is not None:
        features["slot"] = slot
    body = {**native_fields(context), "event_id": rank.event_id or new_event_id(),
            "defer_activation": rank.defer_activation, "features": features,
            "actions": [{"id": a.id, "features": merged(a.features)} for a in kept if a.id != stand_in]}
    try:
        return Mapped(DecisionRequest.model_validate(body), stand_in)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        where = ("contextFeatures." + ".".join(p for p in loc[1:] if not p.isdigit())
                 if loc[0] in ("channel", "customer", "interaction") else ".".join(loc) or "body")
        raise InvalidRequest(where, err["msg"]) from exc


def to_rank_response(rank: RankRequest, decision: Decision, stand_in: str) -> RankResponse:
    """Personalizer's ranking: the decision's probabilities (``no_offer`` as the stand-in),
    then every action it could not take (excluded, by the caller or the guardrails) at 0."""
    ranking = [RankedAction(id=stand_in if r.id == NO_OFFER else r.id, probability=r.probability)
               for r in decision.ranking]
    ranked = {r.id for r in ranking}
    ranking += [RankedAction(id=a.id, probability=0.0) for a in rank.actions if a.id not in ranked]
    chosen = stand_in if decision.offer_id == NO_OFFER else decision.offer_id
    return RankResponse(ranking=ranking, eventId=decision.event_id, rewardActionId=chosen)


def slot_event_id(event_id: str, k: int) -> str:
    return SLOT_EVENT.format(event_id=event_id, k=k)


def check_slots(body: MultiSlotRankRequest, catalog: Catalog, no_offer_action: str | None) -> str:
    """Check a multi-slot rank before any slot is decided (a slot refused half-way would
    leave the others logged); returns its event id. Each slot's baseline is one of the
    actions, not excluded from its slot, and no other slot's; without the no-offer action,
    each baseline must be the caller's own action: it is the slot's stand-in for no offer,
    kept for it (``slot_rank``)."""
    event_id = body.event_id or new_event_id()
    if len(event_id) > MAX_SLOTTED_EVENT_ID:
        raise InvalidRequest("eventId", f"at most {MAX_SLOTTED_EVENT_ID} characters in a multi-slot rank (each "
                             "slot is logged as <eventId>:slot<k>)")
    ids = {a.id for a in body.actions}
    no_offer_sent = sends_no_offer(body, no_offer_action)
    seen_slots: set[str] = set()
    baselines: set[str] = set()
    for k, slot in enumerate(body.slots):
        where = f"slots[{k}]"
        if slot.id in seen_slots:
            raise InvalidRequest(f"{where}.id", f"slot id '{slot.id}' appears twice")
        seen_slots.add(slot.id)
        if slot.baseline_action not in ids:
            raise InvalidRequest(f"{where}.baselineAction", f"'{slot.baseline_action}' is not one of the actions")
        if slot.baseline_action in slot.excluded_actions:
            raise InvalidRequest(f"{where}.baselineAction", "a slot's baseline action cannot be excluded from it")
        if slot.baseline_action in baselines:
            raise InvalidRequest(f"{where}.baselineAction", f"'{slot.baseline_action}' is another slot's baseline")
        baselines.add(slot.baseline_action)
        if not no_offer_sent and slot.baseline_action in catalog.offers:
            raise InvalidRequest(f"{where}.baselineAction", f"'{slot.baseline_action}' is a catalog offer, which "
                                 "cannot stand in for no offer; make the baseline an action of your own, or send "
                                 "the policy file's personalizer.no_offer_action")
    return event_id


def sends_no_offer(body: MultiSlotRankRequest, no_offer_action: str | None) -> bool:
    return no_offer_action is not None and any(a.id == no_offer_action for a in body.actions)


def slot_rank(body: MultiSlotRankRequest, k: int, event_id: str, taken: set[str], no_offer_sent: bool) -> RankRequest:
    """Slot ``k`` (0-based) as a single rank over the actions no earlier slot took. Without
    the no-offer action, another slot's baseline is not offered here: it is that slot's
    stand-in for no offer, so every slot has one whatever the slots before it took."""
    slot = body.slots[k]
    others = set() if no_offer_sent else {s.baseline_action for s in body.slots} - {slot.baseline_action}
    return RankRequest(actions=[a for a in body.actions if a.id not in taken and a.id not in others],
                       contextFeatures=body.context_features, excludedActions=slot.excluded_actions,
                       eventId=slot_event_id(event_id, k + 1), deferActivation=body.defer_activation)


def slot_namespace(slot: SlotRequest) -> dict[str, Any]:
    """A slot's id and features, as the ``slot`` namespace of its decision's context."""
    return {**merged(slot.features), "id": slot.id}
