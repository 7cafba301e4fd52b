"""Typed interaction context: what a channel tells us when it asks for a decision.

These models are the public contract of ``/decide`` and of the Python API, so the
field names follow the README. Unknown fields are rejected (``extra="forbid"``):
a misspelt ``distres`` must be a 4xx naming the field, not a silently ignored
guardrail input.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Union

from typing_extensions import TypeAliasType

from bandit.domain.errors import InvalidRequest
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True, pattern=r"\S")]
ATTRIBUTE_KEY = r"^[A-Za-z_][A-Za-z0-9_]*$"
AttributeKey = Annotated[str, StringConstraints(max_length=64, pattern=ATTRIBUTE_KEY)]
AttributeValue = Annotated[str, StringConstraints(max_length=256)] | float | int | bool
ActionId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""A caller's action id: any text Personalizer accepted (``ice cream``), up to 128 characters
(the log's id columns), no control characters."""
FLOAT32_MAX = 3.4028234663852886e38
"""VW keeps feature values as 32-bit floats: a larger number would be infinite."""
_FeatureNumber = Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
FeatureValue = TypeAliasType("FeatureValue", Union[  # type: ignore[misc]
    str, bool, None, _FeatureNumber, dict[str, "FeatureValue"],
    list[Union[_FeatureNumber, None, dict[str, "FeatureValue"]]]])
"""What VW's DSJSON reader reads as a feature's value: text, a boolean, null, a number, an
object (a namespace) of these, or an array of numbers, nulls and objects."""
FeatureObject = TypeAliasType("FeatureObject", dict[str, FeatureValue])  # type: ignore[misc]


def _feature_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be an object of features")
    return value


Features = Annotated[dict[str, Any], PlainValidator(_feature_object, json_schema_input_type=FeatureObject)]
"""Features as a DSJSON context object: namespaces (objects) of JSON values, read by VW's
own DSJSON reader as they are (``bandit.log.vwjson`` says how). The API document describes
them as ``FeatureObject``; they are kept exactly as sent (a number stays the number sent)
and checked, naming the field, when a decision is made
(``bandit.decide.actions.check_features``: also depth and the ``_`` keys VW reserves)."""
NO_OFFER_ID = "no_offer"
"""The built-in action of making no offer (``bandit.config.catalog.NO_OFFER``)."""


def as_utc(value: datetime) -> datetime:
    """Naive times are taken as UTC so comparisons never mix aware and naive. A time whose UTC
    form is outside what a datetime can hold (``0001-01-01T00:01:00+03:00``) is a
    ``ValueError``, which validation reports as a 4xx naming the field (it was an
    ``OverflowError``, a 500)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("outside the range of representable times once converted to UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class Channel(StrEnum):
    phone = "phone"
    chat = "chat"
    email = "email"
    sms = "sms"
    web = "web"
    messaging = "messaging"


class RequestType(StrEnum):
    """The five request types of point-of-service marketing."""

    informational = "informational"  # "tell me something"
    diagnostic = "diagnostic"  # "solve my problem"
    transactional = "transactional"  # "do something for me"
    advisory = "advisory"  # "help me choose"
    feedback = "feedback"  # "here's what I think about you"


class Resolved(StrEnum):
    yes = "true"
    no = "false"
    unknown = "unknown"


def _tri_state(value: object) -> object:
    """JSON ``true``, ``false`` and ``null`` as the resolution they say (integrators send
    booleans; ``null`` is "not known"); the strings pass through to the enum."""
    if value is None:
        return Resolved.unknown
    if value is True:
        return Resolved.yes
    if value is False:
        return Resolved.no
    return value


TriState = Annotated[Resolved, BeforeValidator(_tri_state), WithJsonSchema(
    {"anyOf": [{"type": "string", "enum": [r.value for r in Resolved]}, {"type": "boolean"}, {"type": "null"}]},
    mode="validation")]
"""A resolution as requests may send it: ``"true"``, ``"false"``, ``"unknown"``, a JSON
boolean or ``null`` (the schema says so, so that generated clients may send booleans)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(Strict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = Field(
        None, description="The channel's customer id. Stored only as a salted hash; never a feature. Omitted for "
        "an anonymous visitor: no contact history (so no frequency cap by a shared id), never in the control group."
    )
    authenticated: bool = False
    tier: Label = "standard"
    tenure_months: int = Field(0, ge=0, le=1200)
    products: tuple[Label, ...] = Field((), max_length=100)
    region: Label | None = None
    opted_out: bool = Field(False, description="Opted out of marketing: never an offer.")


class Interaction(Strict):
    request_type: RequestType
    intent: Label | None = None
    resolved: TriState = Field(Resolved.unknown, description="Whether the customer's issue is resolved: "
                               "true, false or unknown (JSON true, false and null are accepted; omitted: unknown).")
    sentiment: float | None = Field(None, ge=-1.0, le=1.0, allow_inf_nan=False, description="The customer's "
                                    "tone, -1 (negative) to 1 (positive), 0 neutral; omitted or null: not observed. "
                                    "What an unknown tone or resolution allows is the policy file's guardrails.unknown.")
    distress: bool = False


class OfferEvent(Strict):
    offer_id: ActionId = Field(description="A catalog offer's id, or a caller's own action's")
    at: UtcDatetime


class History(Strict):
    """Contact history a channel may send; merged with what the decision log knows."""

    shown: tuple[OfferEvent, ...] = Field((), max_length=200)
    declined: tuple[OfferEvent, ...] = Field((), max_length=200)
    accepted: tuple[OfferEvent, ...] = Field((), max_length=200)
    last_complaint: UtcDatetime | None = None

    def merged(self, other: "History") -> "History":
        """Union of two histories (log-derived and channel-sent); pure."""
        def union(a: tuple[OfferEvent, ...], b: tuple[OfferEvent, ...]) -> tuple[OfferEvent, ...]:
            return tuple(sorted(set(a) | set(b), key=lambda e: (e.at, e.offer_id)))

        complaints = [d for d in (self.last_complaint, other.last_complaint) if d is not None]
        return History(
            shown=union(self.shown, other.shown),
            declined=union(self.declined, other.declined),
            accepted=union(self.accepted, other.accepted),
            last_complaint=max(complaints) if complaints else None,
        )


EMPTY_HISTORY = History()


class CallerAction(Strict):
    """An action the caller defines: one of its own (a Personalizer application's), or a
    catalog offer named by id. A catalog offer keeps every guardrail the catalog gives it;
    the caller's own get every guardrail that needs no catalog entry: the interaction's
    (opted out, distress, tone, resolution, complaints, frequency cap), the kill switch by
    id, and the contact history's declines and impression cap."""

    id: ActionId
    features: Features = Field(default_factory=dict, description="The action's features, a DSJSON action "
                               "object (namespaces of JSON values), as VW's DSJSON reader reads them.")


class DecisionRequest(Strict):
    """One call for a decision. ``candidates`` can only narrow the catalog, never widen it;
    ``actions`` replaces the catalog by the caller's own actions (Personalizer's)."""

    # the document says what ``_one_set_of_actions`` refuses: not both
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"not": {
        "required": ["candidates", "actions"],
        "properties": {"candidates": {"type": "array"}, "actions": {"type": "array"}}}})

    event_id: Identifier | None = None
    channel: Channel
    customer: Customer = Field(Customer(), description="Who is served; omitted: an anonymous visitor.")
    interaction: Interaction
    history: History = History()
    candidates: tuple[Identifier, ...] | None = Field(None, max_length=50)
    attributes: Annotated[dict[AttributeKey, AttributeValue], WithJsonSchema({
        "type": "object", "maxProperties": 50, "propertyNames": {"pattern": ATTRIBUTE_KEY, "maxLength": 64},
        "additionalProperties": {"anyOf": [{"type": "string", "maxLength": 256}, {"type": "number"},
                                           {"type": "boolean"}]}}, mode="validation")] = Field(
        default_factory=dict,
        description="Extra context for templates and features (e.g. refill_price): keys are identifiers.",
    )
    defer_activation: bool = False
    features: Features = Field(
        default_factory=dict, description="Shared features of the caller's own, a DSJSON context object "
        "(namespaces of JSON values) read by VW's reader as they are, beside the service's namespaces (a key "
        "naming one of those replaces it). Personalizer's contextFeatures arrive here.")
    actions: tuple[CallerAction, ...] | None = Field(
        None, max_length=50, description="The actions to choose among instead of the catalog's "
        "offers (no_offer is always one more): a catalog offer's id keeps all its guardrails; any other id is "
        "the caller's own action, subject to the interaction's guardrails, the kill switch and the contact "
        "history's caps. Not with candidates.")

    @model_validator(mode="after")
    def _one_set_of_actions(self) -> "DecisionRequest":
        if self.actions is None:
            return self
        if self.candidates is not None:
            raise ValueError("send candidates (to narrow the catalog) or actions (to replace it), not both")
        seen: set[str] = set()
        for a in self.actions:
            if a.id == NO_OFFER_ID:
                raise ValueError(f"actions: '{NO_OFFER_ID}' is built in (always an action); do not send it")
            if a.id in seen:
                raise ValueError(f"actions: action id '{a.id}' appears twice")
            seen.add(a.id)
        return self


# -- the context as one flat row (the MLflow model's input, a data scientist's frame) ---------

# Every input the decider reads, as a flat column: (name, type, required). Types are
# MLflow's column types; list and mapping inputs travel as strings (comma-separated lists,
# JSON objects) so that a frame of plain columns can carry them.
CONTEXT_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("channel", "string", True),
    ("request_type", "string", True),
    ("customer_id", "string", False),
    ("authenticated", "boolean", False),
    ("tier", "string", False),
    ("tenure_months", "double", False),
    ("products", "string", False),  # comma-separated (a list is accepted too)
    ("region", "string", False),
    ("opted_out", "boolean", False),
    ("intent", "string", False),
    ("resolved", "string", False),  # true / false / unknown (a bool is accepted too)
    ("sentiment", "double", False),
    ("distress", "boolean", False),
    ("candidates", "string", False),  # comma-separated offer ids
    ("attributes", "string", False),  # a JSON object
    ("history", "string", False),  # a JSON object in the shape of ``History``
)
_CUSTOMER_COLUMNS = ("authenticated", "tier", "tenure_months", "products", "region", "opted_out")
_INTERACTION_COLUMNS = ("request_type", "intent", "resolved", "sentiment", "distress")


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and value != value)  # NaN: a missing cell


def _listed(value: object) -> list[str]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return [str(v) for v in value]  # type: ignore[attr-defined]


def request_from_row(row: dict[str, object]) -> DecisionRequest:
    """A flat context row (``CONTEXT_COLUMNS``) as the ``DecisionRequest`` ``/decide`` would
    get; validated, so a bad row fails naming its field. A missing cell means the field's
    default, exactly as an omitted field does on ``/decide``."""
    import json

    customer: dict[str, object] = {"id": str(row["customer_id"]) if _present(row.get("customer_id")) else "row"}
    for col in _CUSTOMER_COLUMNS:
        if _present(row.get(col)):
            customer[col] = row[col]
    if "products" in customer:
        customer["products"] = _listed(customer["products"])
    if isinstance(customer.get("tenure_months"), float):
        customer["tenure_months"] = int(customer["tenure_months"])  # type: ignore[arg-type]
    interaction = {col: row[col] for col in _INTERACTION_COLUMNS if _present(row.get(col))}
    if isinstance(interaction.get("resolved"), bool):
        interaction["resolved"] = "true" if interaction["resolved"] else "false"
    body: dict[str, object] = {"channel": row.get("channel"), "customer": customer, "interaction": interaction}
    if _present(row.get("candidates")):
        body["candidates"] = _listed(row["candidates"])
    for col in ("attributes", "history"):
        value = row.get(col)
        if _present(value):
            try:
                body[col] = json.loads(value) if isinstance(value, str) else value
            except ValueError as exc:
                raise InvalidRequest(col, f"not a JSON object: {exc}") from exc
    return DecisionRequest.model_validate(body)
