"""Guardrails: the service decides *when* an offer may be made.

``eligible_offers`` is a pure function of the request, the catalog, the contact
history, the policy file, the time and the set of suspended offers. It returns
the offers the bandit may choose from (``no_offer`` always first, always present)
and, for every catalog offer left out, the reason. The bandit never sees an
excluded offer, so no learned preference can override a guardrail.

Blocks that apply to the whole interaction (checked first, in this order):

=====================  =============================================================
reason                 when
=====================  =============================================================
``opted_out``          the customer opted out of marketing (not configurable)
``distress``           the interaction is flagged as distressed (not configurable)
``low_sentiment``      sentiment below ``guardrails.min_sentiment``
``tone_unknown``       no sentiment sent, and ``guardrails.unknown`` does not allow an
                       unknown tone on this channel for this request type
``unresolved``         request type in ``guardrails.require_resolved`` and the issue
                       is not resolved
``resolution_unknown`` request type in ``guardrails.require_resolved``, resolution
                       unknown, and ``guardrails.unknown`` does not allow that here
``recent_complaint``   a complaint within ``guardrails.complaint_cooldown_days``
``frequency_cap``      ``frequency_cap.max_offers`` offers already shown across all
                       channels within ``frequency_cap.window_days``
=====================  =============================================================

The frequency cap is also counted again inside the commit that logs an offer
(``bandit.log.records.OfferLimit``): decisions for one customer arriving together
read the history before any of them is committed.

Then per offer: ``suspended`` (kill switch), ``not_in_candidates``,
``outside_window``, ``channel``, ``request_type_family`` (the policy's request
type rules), and marketing's eligibility: ``request_type``, ``intent``, ``tier``,
``region``, ``product_held``, ``product_required``, ``tenure``, ``not_authenticated``,
``missing_attribute``; then contact history: ``declined_recently`` and
``impression_cap``.

A request may bring its own actions (``DecisionRequest.actions``: Personalizer's). Then the
offers considered are those actions, not the catalog: an id naming a catalog offer keeps
every check above; any other id is the caller's own action, which the catalog says
nothing about, so it gets every check that needs no catalog entry: the interaction's
blocks, the kill switch by id and the contact history's (``declined_recently``,
``impression_cap``; the frequency cap is an interaction block). A guardrail is never
skipped for a catalog offer, whoever names it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bandit.config.catalog import NO_OFFER, Catalog, Offer
from bandit.domain.context import DecisionRequest, History, Resolved
from bandit.config.policyfile import ANY, Guardrails


class Reason(StrEnum):
    """Why an offer was excluded. For the whole interaction: opted_out, distress,
    low_sentiment, tone_unknown, unresolved, resolution_unknown, recent_complaint,
    frequency_cap; for one offer: suspended (kill switch), not_in_candidates, outside_window,
    channel, request_type_family, the catalog's targeting (request_type, intent, tier, region,
    product_held, product_required, tenure, not_authenticated, missing_attribute), and the
    contact history's declined_recently and impression_cap, and the offer's capacity."""

    # Every reason the guardrails (and the frequency cap counted again at commit,
    # ``bandit.decide.decider.capped``) give, defined once: the decision's ``excluded``
    # list, the metrics' ``reason`` label and the API document's enumeration read it.

    # the whole interaction
    opted_out = "opted_out"
    distress = "distress"
    low_sentiment = "low_sentiment"
    tone_unknown = "tone_unknown"
    unresolved = "unresolved"
    resolution_unknown = "resolution_unknown"
    recent_complaint = "recent_complaint"
    frequency_cap = "frequency_cap"
    # one offer
    suspended = "suspended"
    not_in_candidates = "not_in_candidates"
    outside_window = "outside_window"
    channel = "channel"
    request_type_family = "request_type_family"
    request_type = "request_type"
    intent = "intent"
    tier = "tier"
    region = "region"
    product_held = "product_held"
    product_required = "product_required"
    tenure = "tenure"
    not_authenticated = "not_authenticated"
    missing_attribute = "missing_attribute"
    declined_recently = "declined_recently"
    impression_cap = "impression_cap"
    capacity = "capacity"
    template_error = "template_error"  # its content rendered empty: not made (``bandit.decide.decider.without``)


@dataclass(frozen=True)
class Exclusion:
    offer_id: str
    reason: Reason


@dataclass(frozen=True)
class Eligibility:
    eligible: tuple[str, ...]  # no_offer first
    excluded: tuple[Exclusion, ...]


def interaction_block(request: DecisionRequest, history: History, g: Guardrails, now: datetime) -> Reason | None:
    """The reason no offer at all may be made in this interaction, or ``None``."""
    c, i = request.customer, request.interaction
    if c.opted_out:
        return Reason.opted_out
    if i.distress:
        return Reason.distress
    unknown = g.unknown_rule(request.channel, i.request_type)
    if i.sentiment is None:
        if unknown.tone != "allow":
            return Reason.tone_unknown
    elif i.sentiment < g.min_sentiment:
        return Reason.low_sentiment
    if i.request_type in g.require_resolved:
        if i.resolved is Resolved.no:
            return Reason.unresolved
        if i.resolved is Resolved.unknown and unknown.resolution != "allow":
            return Reason.resolution_unknown
    if history.last_complaint is not None and now - history.last_complaint < timedelta(
        days=g.complaint_cooldown_days
    ):
        return Reason.recent_complaint
    if offers_in_cap_window(history, g, now) >= g.frequency_cap.max_offers:
        return FREQUENCY_CAP
    return None


FREQUENCY_CAP = Reason.frequency_cap


def cap_window_start(g: Guardrails, now: datetime) -> datetime:
    """The start of the frequency cap's window: offers shown at or after it count."""
    return now - timedelta(days=g.frequency_cap.window_days)


def offers_in_cap_window(history: History, g: Guardrails, now: datetime) -> int:
    """How many offers ``history`` shows within the frequency cap's window."""
    since = cap_window_start(g, now)
    return sum(1 for e in history.shown if e.at >= since and e.offer_id != NO_OFFER)


def _impression_paused(times: list[datetime], g: Guardrails, now: datetime) -> bool:
    """Shown ``max_impressions`` times within ``window_days``: paused ``pause_days`` after the last."""
    cap = g.impression_cap
    n = cap.max_impressions
    times = sorted(times)
    window, pause = timedelta(days=cap.window_days), timedelta(days=cap.pause_days)
    for j in range(n - 1, len(times)):
        if times[j] - times[j - n + 1] <= window and now - times[j] < pause:
            return True
    return False


def offer_block(
    offer: Offer, request: DecisionRequest, history: History, g: Guardrails, now: datetime
) -> Reason | None:
    """The reason this catalog offer may not be made in this interaction, or ``None``."""
    return catalog_block(offer, request, g, now) or history_block(offer.id, history, g, now)


def catalog_block(offer: Offer, request: DecisionRequest, g: Guardrails, now: datetime) -> Reason | None:
    """What the catalog's description of the offer rules out: dates, channel, the request
    type's families and marketing's eligibility."""
    today = now.date()
    if (offer.valid_from and today < offer.valid_from) or (offer.valid_until and today > offer.valid_until):
        return Reason.outside_window
    if request.channel not in offer.channels:
        return Reason.channel
    rt = request.interaction.request_type
    families = g.families_for(rt)
    if ANY not in families and offer.family not in families:
        return Reason.request_type_family
    e, c = offer.eligibility, request.customer
    if e.request_types is not None and rt not in e.request_types:
        return Reason.request_type
    if e.intents is not None and request.interaction.intent not in e.intents:
        return Reason.intent
    if e.tiers is not None and c.tier not in e.tiers:
        return Reason.tier
    if e.regions is not None and c.region not in e.regions:
        return Reason.region
    if set(e.excluded_products) & set(c.products):
        return Reason.product_held
    if e.required_products and not set(e.required_products) & set(c.products):
        return Reason.product_required
    if c.tenure_months < e.min_tenure_months:
        return Reason.tenure
    if e.authenticated_only and not c.authenticated:
        return Reason.not_authenticated
    if any(a not in request.attributes for a in e.requires_attributes):
        return Reason.missing_attribute
    return None


def history_block(offer_id: str, history: History, g: Guardrails, now: datetime) -> Reason | None:
    """What the customer's contact history rules out for this offer (or caller's action), by id."""
    since_decline = now - timedelta(days=g.decline_pause_days)
    if any(d.offer_id == offer_id and d.at >= since_decline for d in history.declined):
        return Reason.declined_recently
    if _impression_paused([s.at for s in history.shown if s.offer_id == offer_id], g, now):
        return Reason.impression_cap
    return None


def considered(request: DecisionRequest, catalog: Catalog) -> list[str]:
    """The offers a request's decision is over, besides ``no_offer``: its own actions when it
    brings them, else the catalog's offers."""
    if request.actions is not None:
        return [a.id for a in request.actions]
    return list(catalog.offers)


def eligible_offers(
    request: DecisionRequest,
    catalog: Catalog,
    history: History,
    guardrails: Guardrails,
    now: datetime,
    suspended: Iterable[str] = (),
    at_capacity: Collection[str] = (),
) -> Eligibility:
    """Split the offers considered (``considered``: the catalog's, or the request's own
    actions) into the eligible ones and the excluded ones with reasons. ``at_capacity``:
    the offers whose capacity is used up on this channel (``offers_at_capacity``)."""
    suspended = set(suspended) | set(guardrails.suspended_offers)
    candidates = set(request.candidates) if request.candidates is not None else None
    blocked = interaction_block(request, history, guardrails, now)
    eligible = [NO_OFFER]
    excluded = []
    for oid in considered(request, catalog):
        offer = catalog.get(oid)
        if blocked:
            reason: Reason | None = blocked
        elif oid in suspended:
            reason = Reason.suspended
        elif oid in at_capacity:
            reason = Reason.capacity
        elif candidates is not None and oid not in candidates:
            reason = Reason.not_in_candidates
        elif offer is not None:
            reason = offer_block(offer, request, history, guardrails, now)
        else:  # the caller's own action: what needs no catalog entry
            reason = history_block(oid, history, guardrails, now)
        if reason is None:
            eligible.append(oid)
        else:
            excluded.append(Exclusion(oid, reason))
    return Eligibility(tuple(eligible), tuple(excluded))


def offers_at_capacity(catalog: Catalog, uses: Iterable[tuple[str, str | None, float]], channel: str,
                       now: float) -> frozenset[str]:
    """The offers whose capacity (``Capacity``) is used up for a decision on ``channel`` at
    ``now``: at least ``max_offers`` uses (``(offer_id, channel, ts)``, from the log) in the
    rolling period, counting only the capacity's channels. Pure."""
    caps = catalog.capacities
    if not caps:
        return frozenset()
    counts: dict[str, int] = {}
    for oid, used_on, ts in uses:
        cap = caps.get(oid)
        if cap is not None and ts >= now - cap.seconds and cap.counts_on(used_on):
            counts[oid] = counts.get(oid, 0) + 1
    return frozenset(oid for oid, cap in caps.items()
                     if cap.counts_on(channel) and counts.get(oid, 0) >= cap.max_offers)
