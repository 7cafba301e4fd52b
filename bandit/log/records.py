"""A logged decision as the code sees it, and as the ``decisions`` table stores it.

The row form keeps the columns the log is queried by (time, customer key, channel,
chosen offer, probability) and puts the rest (context, features, exclusions, the action
set and its probabilities) in one JSON ``payload``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic_core import to_json

from bandit.config.catalog import NO_OFFER
from bandit.domain.outcomes import RewardConfig, window_closed


def to_ts(dt: datetime) -> float:
    return dt.timestamp()


def from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True)
class DecisionRecord:
    """A logged decision. ``payload`` holds the context, features and exclusions."""

    event_id: str
    ts: float
    mode: str
    model_version: str
    action_ids: list[str]
    pmf: list[float]
    chosen_index: int
    activated: bool
    customer_key: str | None = None
    channel: str | None = None
    request_type: str | None = None
    catalog_version: str | None = None
    source: str = "live"
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen_id(self) -> str:
        return self.action_ids[self.chosen_index]

    @property
    def probability(self) -> float:
        return self.pmf[self.chosen_index]


@dataclass(frozen=True)
class OfferLimit:
    """A limit on offers shown to one customer, checked again inside the commit that logs
    an offer: the guardrails' frequency cap, made to hold under concurrency.

    Why: the guardrails read the customer's contact history before the decision is
    committed, so two decisions for one customer arriving together (on one replica, or on
    several sharing a log) both read a history without the other's offer, and both pass a
    cap of one. Inside the commit the store counts the offers shown to ``customer_key``
    at or after ``since`` that the log holds (committed by anyone, and written earlier in
    the same transaction), under a per-customer lock, and logs ``fallback`` instead when
    there are more than ``allowed``: the decision the guardrails would have made had they
    seen those offers."""

    customer_key: str
    since: float
    allowed: int
    fallback: "DecisionRecord"


@dataclass(frozen=True)
class CapacityLimit:
    """An offer's capacity (``bandit.config.catalog.Capacity``), checked inside the commit
    that logs a decision choosing it: the guardrails read the uses a second stale
    (``DecisionStore.capacity_uses``), and decisions on other replicas are still in flight,
    so the store counts the offer's uses at or after ``since`` (on ``channels`` when set)
    under a per-offer lock, and logs ``fallback`` instead when there are more than
    ``allowed``."""

    offer_id: str
    channels: tuple[str, ...] | None
    since: float
    allowed: int
    fallback: "DecisionRecord"


class Written(StrEnum):
    """What became of a decision handed to the log."""

    NEW = "new"  # logged as made
    DUPLICATE = "duplicate"  # its event id was logged already: nothing written
    LIMITED = "limited"  # its ``OfferLimit`` was reached: its fallback was logged instead
    AT_CAPACITY = "at_capacity"  # its ``CapacityLimit`` was reached: its fallback was logged instead


class Appended(StrEnum):
    """What became of an outcome handed to the log."""

    NEW = "new"
    DUPLICATE = "duplicate"  # the identical outcome was recorded already
    CONFLICT = "conflict"  # it contradicts one recorded already: nothing written


class DecisionRow(NamedTuple):
    """A decision as the request path inserts it: its ``decisions`` row and, when it is a
    contact, its ``contacts`` row (both in column order); with an ``OfferLimit``, the
    fallback's row to insert instead when the limit is reached; with a ``CapacityLimit``,
    its ``offer_uses`` row and the fallback's row for a capacity reached."""

    decision: tuple[Any, ...]
    contact: tuple[Any, ...] | None
    limit: OfferLimit | None = None
    fallback: tuple[Any, ...] | None = None
    capacity: CapacityLimit | None = None
    capacity_fallback: tuple[Any, ...] | None = None
    use: tuple[Any, ...] | None = None  # its ``offer_uses`` row, with a capacity


def learnable(rec: DecisionRecord, cfg: RewardConfig, as_of: float | None) -> bool:
    """Whether a logged decision is learned from: trained on (the DSJSON export, retrain,
    tune) and evaluated on (off-policy evaluation). The one definition; every reader of the
    log for learning asks it.

    - It was shown (``activated``): a decision made with ``defer_activation`` and never
      activated never reached the customer, so nothing that follows says anything about
      its offer.
    - With ``as_of``: its reward window (``cfg.window_hours``) closed by then
      (``bandit.domain.outcomes.window_closed``); before, its reward is not known yet (an
      acceptance still to come would turn a 0 into revenue). ``as_of`` None: the log as it
      stands, for an export whose caller picks the stretch of the log.

    Every mode counts, the control group's included: its decisions are logged with their
    probabilities (1 for the control's choice), so they stay usable for learning."""
    return rec.activated and (as_of is None or window_closed(rec.ts, as_of, cfg))


def shown_contact(rec: DecisionRecord) -> tuple[Any, ...] | None:
    """The ``contacts`` row of a decision that showed an offer (activated, not ``no_offer``)."""
    if rec.customer_key is None or not rec.activated or rec.chosen_id == NO_OFFER:
        return None
    return (rec.customer_key, rec.ts, "shown", rec.chosen_id)


def record_to_row(rec: DecisionRecord) -> dict[str, Any]:
    body = dict(rec.payload, action_ids=rec.action_ids, pmf=rec.pmf, chosen_index=rec.chosen_index)
    return {
        "event_id": rec.event_id,
        "ts": rec.ts,
        "customer_key": rec.customer_key,
        "channel": rec.channel,
        "request_type": rec.request_type,
        "mode": rec.mode,
        "model_version": rec.model_version,
        "catalog_version": rec.catalog_version,
        "chosen_id": rec.chosen_id,
        "probability": rec.probability,
        "activated": rec.activated,
        "activated_ts": rec.ts if rec.activated else None,
        "source": rec.source,
        "payload": to_json(body).decode(),
    }


def row_to_record(row: Any) -> DecisionRecord:
    """A decision from a row of ``decisions`` (a mapping by column name)."""
    body = json.loads(row["payload"])
    return DecisionRecord(
        event_id=row["event_id"],
        ts=row["ts"],
        customer_key=row["customer_key"],
        channel=row["channel"],
        request_type=row["request_type"],
        mode=row["mode"],
        model_version=row["model_version"],
        catalog_version=row["catalog_version"],
        action_ids=body.pop("action_ids"),
        pmf=body.pop("pmf"),
        chosen_index=body.pop("chosen_index"),
        activated=bool(row["activated"]),
        source=row["source"],
        payload=body,
    )
