"""The decision path: the one way any route or tool gets a decision.

    validate -> contact history -> guardrails -> featurize -> score -> sample
             -> render -> log durably -> answer

A decision is written to the log before it is returned (servers share commits
through ``GroupCommitWriter``; each caller still waits for its own); a decision
that cannot be logged is never an offer (the answer is ``no_offer`` with ``logged=False``). The
same event id with the same request returns the logged decision (``replayed``) and writes
nothing; the same event id with any other request is refused (``EventConflict``, a 409):
replaying a decision made for another customer would bypass that customer's guardrails.

Modes: ``online`` (the model's exploring policy), ``cold_start`` (no model:
explore around ``no_offer``), ``apprentice`` (serve ``no_offer`` always, log what
the model would have done under ``payload.shadow``), ``control`` (a customer of the
control group, ``bandit.decide.control``: the control policy serves, the model's view is
logged under ``payload.shadow``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import threading
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from bandit.config.catalog import NO_OFFER, Catalog
from bandit.config.loader import LiveConfig
from bandit.domain.context import DecisionRequest, History
from bandit.domain.modes import Mode
from bandit.decide.control import control_pmf, in_control
from bandit.domain.errors import EventConflict, InvalidRequest, LogUnavailable, OutcomeConflict, UnknownEvent
from bandit.decide.actions import action_features, check_features, shared
from bandit.decide.features import Namespaces
from bandit.decide.guardrails import (
    FREQUENCY_CAP,
    Eligibility,
    Exclusion,
    Reason,
    cap_window_start,
    considered,
    eligible_offers,
    offers_at_capacity,
    offers_in_cap_window,
)
from bandit.config.policyfile import PolicyFile
from bandit.domain.outcomes import OUTCOME_FACTS, OUTCOME_TYPES, OutcomeType, ValueRule, conflicting
from bandit.decide.sampling import baseline_pmf, sample_index, uniform_from, with_floor
from bandit.log.writer import GroupCommitWriter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bandit.log.async_pg import AsyncLog
from bandit.domain.context import EMPTY_HISTORY
from bandit.log.records import (
    Appended,
    CapacityLimit,
    DecisionRecord,
    OfferLimit,
    Written,
    shown_contact,
    to_ts,
)
from bandit.log.health import LogHealth
from bandit.log.retention import Removed, forget
from bandit.log.store import STORE_ERRORS, DecisionStore
from bandit.domain.outcomes import Outcome
from bandit.decide.vw import COLD_START, Scorer

log = logging.getLogger(__name__)


class RankedOffer(BaseModel):
    id: str
    probability: float


class ExcludedOffer(BaseModel):
    offer_id: str
    reason: Reason = Field(description="Why the guardrails left it out.")


class Decision(BaseModel):
    """The answer to a decision request."""

    event_id: str
    offer_id: str
    content: str | None
    probability: float
    ranking: list[RankedOffer]
    model_version: str
    mode: Mode = Field(description="How the decision was made: online (the model's exploring policy), cold_start "
                       "(no model yet, or it failed: exploring around no_offer), apprentice (no_offer served, the "
                       "model's choice only logged), control (a control-group customer, served by the control "
                       "policy), not_logged (the log could not be written: no_offer), imported (an imported "
                       "history's decision).")
    excluded: list[ExcludedOffer]
    logged: bool = True
    activated: bool = True
    replayed: bool = False


def new_event_id() -> str:
    """32 hex digits: 12 of milliseconds since the epoch, then 80 random bits (the layout
    of a UUIDv7, without its version bits).

    Why time first: the log's primary-key index then grows at its end instead of at a
    random page per decision, so a group commit writes one index page, not one per row.
    80 random bits make a collision within one millisecond negligible."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def customer_key(secret: str, customer_id: str) -> str:
    """Salted hash of a customer id: the only form in which it is stored."""
    return hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256).hexdigest()[:32]


class Observer(Protocol):
    """Hooks for metrics; the core knows nothing of Prometheus."""

    def decided(self, decision: Decision, channel: str, eligibility: Eligibility, explored: bool) -> None: ...
    def log_failed(self, error: Exception) -> None: ...
    def outcome(self, type_: str, offer_id: str, channel: str | None) -> None: ...
    def scorer_failed(self, version: str, error: Exception) -> None: ...
    def template_failed(self, offer_id: str) -> None: ...


class NullObserver:
    def decided(self, decision: Decision, channel: str, eligibility: Eligibility, explored: bool) -> None:
        pass

    def log_failed(self, error: Exception) -> None:
        pass

    def outcome(self, type_: str, offer_id: str, channel: str | None) -> None:
        pass

    def scorer_failed(self, version: str, error: Exception) -> None:
        pass

    def template_failed(self, offer_id: str) -> None:
        pass


class ModelSlot:
    """The scorer being served; swapped atomically between requests."""

    def __init__(self, scorer: Scorer):
        self._scorer = scorer
        self._lock = threading.Lock()

    @property
    def current(self) -> Scorer:
        return self._scorer

    def swap(self, scorer: Scorer) -> Scorer:
        with self._lock:
            old, self._scorer = self._scorer, scorer
        return old


@dataclass(frozen=True)
class OutcomeReceipt:
    """What recording an outcome did. ``recorded`` false: the identical outcome was recorded
    already. ``counts`` false: the decision is not activated yet (``defer_activation``), so
    the outcome is kept but counts, in learning and monitoring, only once it is."""

    recorded: bool
    counts: bool


@dataclass(frozen=True)
class _Asked:
    """A checked request before the log is read: its time, the configuration it is decided
    under, its event id (``given_id``: the caller's own, so possibly a retry) and customer key."""

    now: datetime
    config: Any
    event_id: str
    given_id: bool
    ckey: str | None
    lookback: float


@dataclass(frozen=True)
class _Seen:
    """What the log said for a request: the decision already logged under its event id, the
    customer's logged history, the suspended offers, the capacities' uses."""

    existing: DecisionRecord | None
    history: History
    suspended: frozenset[str]
    uses: list[tuple[str, str | None, float]]


@dataclass(frozen=True)
class _Prepared:
    record: DecisionRecord
    eligibility: Eligibility
    channel: str
    limit: OfferLimit | None = None
    capacity: CapacityLimit | None = None


@dataclass
class Decider:
    config: LiveConfig
    store: DecisionStore
    models: ModelSlot
    secret: str
    observer: Observer = NullObserver()
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    log_health: LogHealth = field(default_factory=LogHealth)

    # -- deciding ------------------------------------------------------------
    def decide(self, request: DecisionRequest, now: datetime | None = None) -> Decision:
        """Decide and log synchronously (CLI, flows, simulations)."""
        asked = self._asked(request, now)
        try:
            seen = self._read(asked)
        except STORE_ERRORS as exc:  # without the log, caps cannot be checked: no offer
            return self._unreadable(asked, exc)
        p = self._prepare(request, asked, seen)
        if isinstance(p, Decision):
            return p
        try:
            written = self.store.write_decision(p.record, p.limit, p.capacity)
        except STORE_ERRORS as exc:  # the log's database failing: no offer (anything else is a bug: raised)
            return self._log_failed(p, exc)
        existing = self.store.get_decision(p.record.event_id) if written is Written.DUPLICATE else None
        return self._finish(p, written, existing)

    async def decide_async(self, request: DecisionRequest, writer: GroupCommitWriter,
                           now: datetime | None = None) -> Decision:
        """The same path for servers: the log write is a group commit awaited without
        blocking the event loop; the answer still waits for this decision's commit. With a
        writer that has asynchronous reads (``writer.log``: PostgreSQL's), the log's reads
        are awaited too."""
        asked = self._asked(request, now)
        alog = writer.log
        try:
            seen = self._read(asked) if alog is None else await self._read_async(asked, alog)
        except STORE_ERRORS as exc:
            return self._unreadable(asked, exc)
        p = self._prepare(request, asked, seen)
        if isinstance(p, Decision):
            return p
        try:
            written = await writer.write(p.record, p.limit, p.capacity)
            existing = None
            if written is Written.DUPLICATE:
                existing = (self.store.get_decision(p.record.event_id) if alog is None
                            else await alog.get_decision(p.record.event_id))
        except STORE_ERRORS as exc:
            return self._log_failed(p, exc)
        return self._finish(p, written, existing)

    def _asked(self, request: DecisionRequest, now: datetime | None) -> "_Asked":
        """What the request asks, before the log is read: checked (``InvalidRequest``)."""
        now = now or self.clock()
        cfg = self.config.current
        self._check_candidates(request, cfg.catalog)
        check_features(request)
        cid = request.customer.id
        g = cfg.policy.guardrails
        return _Asked(
            now=now, config=cfg, event_id=request.event_id or new_event_id(), given_id=request.event_id is not None,
            ckey=customer_key(self.secret, cid) if cid is not None else None,  # None: an anonymous visitor
            lookback=max(365.0, g.complaint_cooldown_days, g.decline_pause_days, g.frequency_cap.window_days,
                         g.impression_cap.window_days + g.impression_cap.pause_days))

    def _read(self, a: "_Asked") -> "_Seen":
        """What the log says for this request (``STORE_ERRORS`` if it cannot be read)."""
        return _Seen(
            existing=self.store.get_decision(a.event_id) if a.given_id else None,
            history=self.store.history(a.ckey, a.now, a.lookback) if a.ckey else EMPTY_HISTORY,
            suspended=self.store.suspended(),
            uses=self.store.capacity_uses(to_ts(a.now)) if a.config.catalog.capacities else [])

    async def _read_async(self, a: "_Asked", alog: "AsyncLog") -> "_Seen":
        """``_read`` over the asynchronous connections: the same reads, awaited."""
        return _Seen(
            existing=await alog.get_decision(a.event_id) if a.given_id else None,
            history=await alog.history(a.ckey, a.now, a.lookback) if a.ckey else EMPTY_HISTORY,
            suspended=await alog.suspended(),
            uses=await alog.capacity_uses(to_ts(a.now)) if a.config.catalog.capacities else [])

    def _unreadable(self, a: "_Asked", exc: Exception) -> Decision:
        """Without the log, caps cannot be checked: no offer, counted and logged."""
        log.error("decision %s: log unreadable: %s", a.event_id, exc)
        self.log_health.failed(exc)
        self.observer.log_failed(exc)
        return self._unlogged(a.event_id, self.models.current.version, Eligibility((NO_OFFER,), ()))

    def _prepare(self, request: DecisionRequest, a: "_Asked", seen: "_Seen") -> "_Prepared | Decision":
        """Everything between the log's reads and its write. Returns a final ``Decision``
        when no write is due (a repeated event id)."""
        now, cfg, event_id, ckey = a.now, a.config, a.event_id, a.ckey
        catalog, policy = cfg.catalog, cfg.policy
        g = policy.guardrails
        context = logged_context(request)
        existing, logged_history, suspended, uses = seen.existing, seen.history, seen.suspended, seen.uses
        history = logged_history.merged(request.history) if request.history != EMPTY_HISTORY else logged_history
        if existing is not None:
            return replay(existing, ckey, context)
        full = offers_at_capacity(catalog, uses, request.channel.value, to_ts(now))
        elig, shared, actions, model_pmf, version = score_request(
            request, catalog, policy, self.models.current, history, now, suspended, full, self.observer.scorer_failed)
        mode = Mode.cold_start if version == COLD_START else Mode.online
        shadow = None
        u = uniform_from(event_id, self.secret)
        if policy.mode == "apprentice":
            shadow = {"pmf": model_pmf, "chosen": elig.eligible[sample_index(model_pmf, u)]}
            pmf = [1.0] + [0.0] * (len(actions) - 1)
            mode = Mode.apprentice
        elif ckey is not None and in_control(ckey, policy.control):
            shadow = {"pmf": model_pmf, "chosen": elig.eligible[sample_index(model_pmf, u)]}
            i = request.interaction
            pmf = control_pmf(elig.eligible, catalog, i.resolved.value, i.sentiment, policy.control)
            mode = Mode.control
        else:
            pmf = model_pmf
        chosen = sample_index(pmf, u)
        offer_id = elig.eligible[chosen]
        offer = catalog.get(offer_id)
        # a caller's own action has no template: its content is the caller's
        content = (catalog.render(offer_id, request.channel.value, render_variables(context, catalog, offer_id))
                   if offer is not None else None)

        record = DecisionRecord(
            event_id=event_id,
            ts=to_ts(now),
            customer_key=ckey,
            channel=request.channel.value,
            request_type=request.interaction.request_type.value,
            mode=mode,
            model_version=version,
            catalog_version=catalog.version,
            action_ids=list(elig.eligible),
            pmf=pmf,
            chosen_index=chosen,
            activated=not request.defer_activation,
            payload={
                "context": context,
                "shared": shared,
                "actions": actions,
                "excluded": [[e.offer_id, e.reason] for e in elig.excluded],
                "content": content,
                "offer_value": offer.value if offer else 0.0,
                "shadow": shadow,
            },
        )
        if offer is not None and not (content or "").strip():
            # Every part of the offer's template failed (or none applied): an offer the
            # customer cannot be told of is not made.
            log.warning("decision %s: %s's content for %s rendered empty: no offer (template_error)", event_id,
                        offer_id, request.channel.value)
            self.observer.template_failed(offer_id)
            record = without(record, offer_id, Reason.template_error)
            elig = Eligibility(tuple(record.action_ids), tuple(Exclusion(o, r) for o, r in record.payload["excluded"]))
            offer = None
        limit = None
        if shown_contact(record) is not None:
            # The cap, again inside the commit (``OfferLimit``): offers the channel told of that
            # the log does not hold still count against it.
            told_only = offers_in_cap_window(history, g, now) - offers_in_cap_window(logged_history, g, now)
            limit = OfferLimit(customer_key=ckey, since=to_ts(cap_window_start(g, now)),
                               allowed=g.frequency_cap.max_offers - 1 - told_only,
                               fallback=capped(record, considered(request, catalog)))
        capacity = None
        cap = offer.capacity if offer is not None else None
        if cap is not None and cap.counts_on(request.channel.value):
            # The capacity, again inside the commit (``CapacityLimit``): other decisions made it
            # after the guardrails' count, on this replica or another.
            capacity = CapacityLimit(offer_id, tuple(c.value for c in cap.channels) if cap.channels else None,
                                     since=to_ts(now) - cap.seconds, allowed=cap.max_offers - 1,
                                     fallback=without(record, offer_id, Reason.capacity))
        return _Prepared(record, elig, request.channel.value, limit, capacity)

    def _log_failed(self, p: "_Prepared", exc: Exception) -> Decision:
        log.error("decision %s not logged: %s", p.record.event_id, exc)
        self.log_health.failed(exc)
        self.observer.log_failed(exc)
        return self._unlogged(p.record.event_id, p.record.model_version, p.eligibility)

    def _finish(self, p: "_Prepared", written: Written, existing: DecisionRecord | None = None) -> Decision:
        """The answer for what the commit wrote; for a ``DUPLICATE``, ``existing`` is the row
        logged under the event id (a concurrent request with the same id won the race)."""
        if written is Written.DUPLICATE:
            if existing is not None:
                return replay(existing, p.record.customer_key, p.record.payload["context"])
        self.log_health.succeeded()
        record, eligibility = p.record, p.eligibility
        if written in (Written.LIMITED, Written.AT_CAPACITY):  # others were committed first
            limit = p.limit if written is Written.LIMITED else p.capacity
            assert limit is not None
            record = limit.fallback
            eligibility = Eligibility(tuple(record.action_ids),
                                      tuple(Exclusion(o, r) for o, r in record.payload["excluded"]))
            log.info("decision %s: %s reached at commit, no offer", record.event_id,
                     "frequency cap" if written is Written.LIMITED else "the offer's capacity")
        decision = decision_from_record(record)
        pmf = record.pmf
        self.observer.decided(decision, p.channel, eligibility, explored=pmf[record.chosen_index] < max(pmf))
        return decision

    @staticmethod
    def _check_candidates(request: DecisionRequest, catalog: Catalog) -> None:
        if request.candidates is None:
            return
        for i, oid in enumerate(request.candidates):
            if oid != NO_OFFER and oid not in catalog.offers:
                raise InvalidRequest(f"candidates[{i}]", f"unknown offer id '{oid}'")

    @staticmethod
    def _unlogged(event_id: str, version: str, elig: Eligibility) -> Decision:
        return Decision(
            event_id=event_id, offer_id=NO_OFFER, content=None, probability=1.0,
            ranking=[RankedOffer(id=NO_OFFER, probability=1.0)], model_version=version, mode=Mode.not_logged,
            excluded=[ExcludedOffer(offer_id=e.offer_id, reason=e.reason) for e in elig.excluded],
            logged=False,
        )

    # -- outcomes and activation -----------------------------------------------
    def record_outcome(
        self, event_id: str, type_: str, value: float | None = None, score: float | None = None,
        now: datetime | None = None,
    ) -> "OutcomeReceipt":
        """Append an outcome; the exact same outcome again is recorded once (idempotent).

        What each type may carry, whether it needs an offer, and which outcomes it cannot
        join (a decline after an acceptance: ``OutcomeConflict``, the first stands) is
        ``bandit.domain.outcomes.OUTCOME_FACTS``; ``type_`` is its string (or the member)."""
        kind = outcome_type(type_)
        check_outcome_values(kind, value, score)
        with self._log_used(f"the {kind.value} outcome"):
            rec = self.store.get_decision(event_id)
            if rec is None:
                raise UnknownEvent(event_id)
            facts = OUTCOME_FACTS[kind]
            if facts.needs_offer and rec.chosen_id == NO_OFFER:
                raise InvalidRequest("type", f"event '{event_id}' made no offer, so it cannot be {kind}")
            appended, clash = self.store.add_outcome(
                Outcome(event_id, kind.value, to_ts(now or self.clock()), value, score), conflicting(facts, kind.value))
        if appended is Appended.CONFLICT:
            raise OutcomeConflict(event_id, kind.value, str(clash))
        if appended is Appended.NEW:
            self.observer.outcome(kind.value, rec.chosen_id, rec.channel)
        return OutcomeReceipt(recorded=appended is Appended.NEW, counts=rec.activated)

    def activate(self, event_id: str, now: datetime | None = None) -> bool:
        """Mark a deferred decision as shown; only activated decisions are learned from."""
        with self._log_used("the activation"):
            res = self.store.activate(event_id, to_ts(now or self.clock()))
        if res is None:
            raise UnknownEvent(event_id)
        return res

    @contextmanager
    def _log_used(self, what: str) -> Iterator[None]:
        """The log's database failing (``STORE_ERRORS``, nothing broader) becomes
        ``LogUnavailable`` (503) and counts against the log's health; success clears it."""
        try:
            yield
        except STORE_ERRORS as exc:
            log.error("%s not recorded: the log failed: %s", what, exc)
            self.log_health.failed(exc)
            raise LogUnavailable(what, exc) from exc
        self.log_health.succeeded()

    def forget(self, customer_id: str, requested_by: str | None = None) -> Removed:
        """Erase the customer's rows from the log (``bandit.log.retention.forget``, by the
        salted key); a second call finds nothing and writes nothing."""
        with self._log_used("the erasure"):
            return forget(self.store.engine, customer_key(self.secret, customer_id), requested_by)

    def history_of(self, customer_id: str, now: datetime | None = None) -> History:
        return self.store.history(customer_key(self.secret, customer_id), now or self.clock(), 365)


def score_request(
    request: DecisionRequest, catalog: Catalog, policy: PolicyFile, scorer: Scorer, history: History,
    now: datetime, suspended: frozenset[str] | set[str] = frozenset(), at_capacity: frozenset[str] = frozenset(),
    failed: Callable[[str, Exception], None] | None = None,
) -> tuple[Eligibility, Namespaces, list[Namespaces], list[float], str]:
    """Guardrails, features and the model's probabilities over the eligible offers: the
    part of a decision that needs no log. Also what the MLflow model's ``predict`` runs.

    Returns the eligibility, the shared and per-action features, the pmf and the version
    of the model that gave it (``cold-start`` if the model failed to score: a broken model
    must not take decisions down). A model's pmf is served with the policy file's
    ``exploration.floor`` (``with_floor``), so what is sampled, logged and predicted is one pmf."""
    elig = eligible_offers(request, catalog, history, policy.guardrails, now, suspended, at_capacity)
    common = shared(request, history, now)
    actions = [action_features(request, catalog, oid) for oid in elig.eligible]
    if len(actions) == 1:
        return elig, common, actions, [1.0], scorer.version
    try:
        pmf = scorer.pmf(common, actions)
    except Exception as exc:  # noqa: BLE001 - counted (``failed``) and logged; a model must not take decisions down
        log.error("model %s failed to score, using cold start: %s", scorer.version, exc)
        if failed is not None:
            failed(scorer.version, exc)
        return elig, common, actions, baseline_pmf(len(actions), policy.exploration.cold_start_epsilon), COLD_START
    if scorer.version == COLD_START:
        return elig, common, actions, pmf, scorer.version
    return elig, common, actions, with_floor(pmf, policy.exploration.floor), scorer.version


def outcome_type(type_: object) -> OutcomeType:
    """``type_`` as an ``OutcomeType``; anything else is an ``InvalidRequest`` naming the
    field and the types there are."""
    try:
        return OutcomeType(type_)
    except ValueError:
        raise InvalidRequest("type", f"must be one of {list(OUTCOME_TYPES)}, got '{type_}'") from None


_SCORED = [t.value for t, f in OUTCOME_FACTS.items() if f.scored]


def check_outcome_values(type_: OutcomeType, value: float | None, score: float | None) -> None:
    """The value and score an outcome of this type may carry (``OUTCOME_FACTS``)."""
    facts = OUTCOME_FACTS[type_]
    if value is not None and not math.isfinite(value):
        raise InvalidRequest("value", "must be a finite number")
    if value is not None and facts.revenue and value < 0:
        raise InvalidRequest("value", f"a {type_} outcome's value is revenue, which cannot be negative")
    if facts.scored:
        if score is None or not 0 <= score <= 10:
            raise InvalidRequest("score", f"an {type_} outcome needs a score from 0 to 10")
    elif score is not None:
        raise InvalidRequest("score", f"only {', '.join(_SCORED)} outcomes carry a score, not '{type_}'")
    if facts.value is ValueRule.REQUIRED and value is None:
        raise InvalidRequest("value", f"a {type_} outcome needs a value")
    if facts.value is ValueRule.NONE and value is not None:
        raise InvalidRequest("value", f"a {type_} outcome carries no value")


def render_variables(context: dict[str, Any], catalog: Catalog, offer_id: str) -> dict[str, Any]:
    """What a template may see, from the request as logged (``context``: no customer id)."""
    offer = catalog.get(offer_id)
    return {
        "customer": context["customer"],
        "interaction": context["interaction"],
        "channel": context["channel"],
        "attrs": context["attributes"],
        "offer": {"id": offer.id, "title": offer.title, "family": offer.family, "value": offer.value} if offer else {},
    }


def logged_context(request: DecisionRequest) -> dict[str, Any]:
    """The request as the log keeps it: everything but the customer id (stored only as its
    salted hash) and the event id (the row's key)."""
    return request.model_dump(mode="json", exclude={"customer": {"id"}, "event_id": True})


def capped(rec: DecisionRecord, offers: Iterable[str]) -> DecisionRecord:
    """``rec`` as the guardrails make it when the frequency cap blocks the interaction:
    ``no_offer`` with probability 1, every offer it considered (``considered``) excluded for
    the cap, no content. What a decision becomes when its ``OfferLimit`` is reached at commit."""
    payload = dict(rec.payload, actions=rec.payload["actions"][:1], content=None, offer_value=0.0, shadow=None,
                   excluded=[[oid, FREQUENCY_CAP] for oid in offers])
    return replace(rec, action_ids=[NO_OFFER], pmf=[1.0], chosen_index=0, payload=payload)


def without(rec: DecisionRecord, offer_id: str, reason: Reason) -> DecisionRecord:
    """``rec`` as it is logged when its chosen offer cannot be made after all (its capacity
    found used up at commit, its content rendered empty): ``no_offer`` with probability 1,
    the offer excluded for ``reason``, the other eligible offers kept in the action set with
    probability 0 (they were eligible; the decision, already sampled, is not sampled again),
    no content."""
    keep = [i for i, a in enumerate(rec.action_ids) if a != offer_id]
    payload = dict(rec.payload, actions=[rec.payload["actions"][i] for i in keep], content=None, offer_value=0.0,
                   shadow=None, excluded=[*rec.payload["excluded"], [offer_id, reason.value]])
    ids = [rec.action_ids[i] for i in keep]
    return replace(rec, action_ids=ids, pmf=[1.0 if a == NO_OFFER else 0.0 for a in ids],
                   chosen_index=ids.index(NO_OFFER), payload=payload)


def replay(existing: DecisionRecord, ckey: str | None, context: dict[str, Any]) -> Decision:
    """The logged answer for a repeated event id, if the request is the one that was logged.

    Same customer (by salted hash) and same context (as the log stores it, compared after a
    JSON round trip so that the stored and the fresh forms agree) is a retry: the logged
    decision, marked ``replayed``. Anything else is a different request reusing the id:
    ``EventConflict``, never the other request's offer."""
    if existing.customer_key != ckey or existing.payload.get("context") != json.loads(json.dumps(context)):
        raise EventConflict(existing.event_id)
    return decision_from_record(existing).model_copy(update={"replayed": True})


def decision_from_record(rec: DecisionRecord) -> Decision:
    """The answer for a logged decision (validated from plain dicts: pydantic's fastest
    way to build it, measured faster than ``model_construct``)."""
    ranked = sorted(zip(rec.action_ids, rec.pmf, strict=True), key=lambda r: -r[1])
    return Decision.model_validate({
        "event_id": rec.event_id,
        "offer_id": rec.chosen_id,
        "content": rec.payload.get("content"),
        "probability": rec.probability,
        "ranking": [{"id": a, "probability": p} for a, p in ranked],
        "model_version": rec.model_version,
        "mode": rec.mode,
        "excluded": [{"offer_id": o, "reason": r} for o, r in rec.payload.get("excluded", [])],
        "activated": rec.activated,
    })
