"""A seeded contact-center simulator: the world a policy is tried against.

Grounded in the domain documents (``../shared/seeds/``): customers with a segment
(tier), tenure, products held, region and an opt-out flag; interactions over
simulated days on phone, chat, email and SMS, each with one of the five request
types, an intent, a resolution, a tone and a distress flag. Behind each interaction
sits a hidden truth the policy never sees: the probability that the customer accepts
each offer, the probability that the offer provokes a complaint, and the revenue an
acceptance brings. Because the simulator knows that truth, it can name the best action
in every context (``Simulator.oracle``) and so report regret and the oracle's value.

Every number lives in one documented file, ``experiments/simulator/simulator.yaml``
(``load_params``), so a user describes their own center without touching code.

Determinism and common random numbers
-------------------------------------
Nothing here touches the global ``random`` state. Every draw comes from a
``random.Random`` seeded by SHA-256 of (seed, purpose, ...):

* the population from (seed, "population");
* day ``d``'s interactions from (seed, "day", d): the same seed and day always give the
  same interactions, whatever any policy did, so two policies face the same customers;
* a response from (seed, event_id, offer_id): two policies making the same offer in
  the same interaction see the same draw, so their difference is the policies', not
  the dice's.

What a policy changes is only its own ``SimState`` (each customer's last complaint),
which raises that customer's complaint risk for ``complaint.memory_days``.

The model (see ``experiments/simulator/simulator.yaml`` for the numbers)
--------------------------------------------------------------
Acceptance of offer ``o`` (family ``f``) in an interaction of request type ``t``::

    P(accept) = min(max, b(t, o) * m_offer * m_intent * m_tier_offer * m_region * m_channel_offer
                         * prod(m_product for each product held) * tier.accept * channel.accept
                         * exp(a * (s - s0)) * r[resolution] * (d if distressed))

and 0 when the offer needs a product (``requires_products``) the customer lacks.
``b(t, o)`` is the offer's own base for ``t`` if set, else the family base for
``(t, f)``, else ``default``; ``fit = b(t, o) * m_offer * m_intent`` is how well the offer
suits the request whoever asks (``Simulator.fit``). Multiplicative because each effect is a lift on the base
rate that marketing would quote ("platinum converts 25% better"); capped so no offer is
ever certain. Holding the product an offer sells sets its multiplier to 0: nobody buys
what they have.

Complaint, given the offer was made::

    odds = p0/(1-p0) * c_family[f] * c_type_family[t][f] * c_offer[o]
           * exp(k * max(0, s1 - s)) * (q / fit)^g if fit < q
           * (u if unresolved, v if unknown) * (w if distressed)
           * (z if complained within memory_days)
    P(complaint) = odds / (1 + odds)

Odds multiply so the conditions compound and stay below 1: a happy, resolved customer
almost never complains (p0 ~ 0.4%), while the stolen-card customer of the white paper
(distressed, low tone, unresolved) complains about almost anything. The misfit term
``(q / fit)^g`` is the white paper's "downright objectionable" offer: selling fiber to
someone ordering a checkbook is pushy even when they are happy. It is what makes "the
highest-margin eligible offer" (the rules heuristic) a poor policy: margin alone picks
misfits, which are rarely accepted and often resented.

Acceptance and complaint are drawn independently (a customer may accept and still complain), so by
linearity the expected reward is::

    E[reward] = P(accept) * revenue - P(complaint) * complaint_penalty

the same reward the service learns from (``bandit.domain.outcomes``): revenue of an acceptance
minus the penalty for a complaint. ``revenue`` is the offer's catalog value (its
margin), or the file's override, times the tier's value multiplier. ``no_offer`` is 0
on every count.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bandit.config.catalog import NO_OFFER, Catalog
from bandit.domain.context import Channel, DecisionRequest, History, RequestType, Resolved
from bandit.domain.errors import ConfigError, yaml_mapping, read_config_file
from bandit.domain.outcomes import OutcomeType

DEFAULT_PARAMS = Path(__file__).with_name("simulator.yaml")
SHARE_TOLERANCE = 0.01
MIN_FIT = 1e-3  # floor of the fit in the misfit term, so a 0 base cannot make the odds infinite

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Multiplier = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]


# -- parameters ----------------------------------------------------------------------------


class FieldProblems(ValueError):
    """Problems found across sections, each with the dotted field it is about (pydantic
    would otherwise report them at the top level)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))


class _Model(BaseModel):
    """Strict: an unknown (misspelt) key is an error naming it, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _normalised_shares(value: dict[Any, float], what: str) -> dict[Any, float]:
    """Shares must be non-negative and sum to 1 (within SHARE_TOLERANCE); returned
    normalised, so 0.33/0.33/0.33 is accepted and sums to exactly 1."""
    if not value:
        raise ValueError(f"{what}: at least one entry is needed")
    bad = [k for k, v in value.items() if not (v >= 0 and math.isfinite(v))]
    if bad:
        raise ValueError(f"{what}: shares must be non-negative numbers ({bad})")
    total = sum(value.values())
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ValueError(f"{what}: shares sum to {total:g}, not 1")
    return {k: v / total for k, v in value.items()}


class TierParams(_Model):
    share: Probability
    value_multiplier: float = Field(1.0, gt=0, allow_inf_nan=False)
    accept_multiplier: Multiplier = 1.0


class TenureParams(_Model):
    mean_months: float = Field(gt=0, allow_inf_nan=False)
    max_months: int = Field(ge=0, le=1200)


class Population(_Model):
    customers: int = Field(ge=1, le=5_000_000)
    tiers: dict[Name, TierParams]
    tenure: TenureParams
    products: dict[Name, Probability] = Field(default_factory=dict)
    regions: dict[Name, float]
    opted_out_share: Probability = 0.0
    recent_complaint_share: Probability = 0.0

    @field_validator("tiers")
    @classmethod
    def _tier_shares(cls, v: dict[str, TierParams]) -> dict[str, TierParams]:
        norm = _normalised_shares({k: t.share for k, t in v.items()}, "tier shares")
        return {k: t.model_copy(update={"share": norm[k]}) for k, t in v.items()}

    @field_validator("regions")
    @classmethod
    def _region_shares(cls, v: dict[str, float]) -> dict[str, float]:
        return _normalised_shares(v, "region shares")


class Calendar(_Model):
    start: date
    interactions_per_day: int = Field(ge=0, le=1_000_000)
    open_hour: int = Field(8, ge=0, le=23)
    close_hour: int = Field(20, ge=1, le=24)

    @model_validator(mode="after")
    def _hours(self) -> "Calendar":
        if self.close_hour <= self.open_hour:
            raise ValueError(f"close_hour ({self.close_hour}) must be after open_hour ({self.open_hour})")
        return self


class ChannelParams(_Model):
    share: Probability
    authenticated: Probability
    accept_multiplier: Multiplier = 1.0


class SentimentDist(_Model):
    mean: float = Field(ge=-1, le=1, allow_inf_nan=False)
    sd: float = Field(ge=0, le=2, allow_inf_nan=False)


class ResolutionMix(_Model):
    """How often an interaction ends resolved / unresolved / unknown (probabilities)."""

    resolved: Probability
    unresolved: Probability
    unknown: Probability

    @model_validator(mode="after")
    def _sums_to_one(self) -> "ResolutionMix":
        _normalised_shares(self.as_dict(), "resolution")
        return self

    def as_dict(self) -> dict[str, float]:
        return {"resolved": self.resolved, "unresolved": self.unresolved, "unknown": self.unknown}


class ResolutionEffect(_Model):
    """A multiplier (or shift) by resolution outcome."""

    resolved: float = Field(allow_inf_nan=False)
    unresolved: float = Field(allow_inf_nan=False)
    unknown: float = Field(allow_inf_nan=False)

    def of(self, resolved: Resolved) -> float:
        return {Resolved.yes: self.resolved, Resolved.no: self.unresolved, Resolved.unknown: self.unknown}[resolved]


class AttributeSpec(_Model):
    """An attribute the channel sends: uniform(low, high), times attribute ``times`` if set."""

    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    times: Name | None = None
    decimals: int = Field(2, ge=0, le=6)

    @model_validator(mode="after")
    def _range(self) -> "AttributeSpec":
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        return self


class IntentParams(_Model):
    share: Probability
    sentiment_shift: float = Field(0.0, ge=-2, le=2, allow_inf_nan=False)
    distress: Probability | None = None
    resolution: ResolutionMix | None = None
    attributes: dict[Name, AttributeSpec] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _times_defined_first(cls, v: dict[str, AttributeSpec]) -> dict[str, AttributeSpec]:
        seen: set[str] = set()
        for name, spec in v.items():
            if spec.times is not None and spec.times not in seen:
                raise FieldProblems([(f"{name}.times", f"'{spec.times}' is not an attribute listed before it")])
            seen.add(name)
        return v


class RequestTypeParams(_Model):
    share: Probability
    resolution: ResolutionMix
    sentiment: SentimentDist
    distress: Probability = 0.0
    intents: dict[Name, IntentParams] = Field(default_factory=dict)

    @field_validator("intents")
    @classmethod
    def _intent_shares(cls, v: dict[str, IntentParams]) -> dict[str, IntentParams]:
        if not v:
            return v
        norm = _normalised_shares({k: i.share for k, i in v.items()}, "intent shares")
        return {k: i.model_copy(update={"share": norm[k]}) for k, i in v.items()}


class SentimentEffect(_Model):
    pivot: float = Field(ge=-1, le=1, allow_inf_nan=False)
    slope: float = Field(ge=0, le=50, allow_inf_nan=False)


class OfferAcceptance(_Model):
    base: dict[RequestType, Probability] = Field(default_factory=dict)
    multiplier: Multiplier = 1.0
    intents: dict[Name, Multiplier] = Field(default_factory=dict)
    tiers: dict[Name, Multiplier] = Field(default_factory=dict)
    regions: dict[Name, Multiplier] = Field(default_factory=dict)
    channels: dict[Channel, Multiplier] = Field(default_factory=dict)
    products: dict[Name, Multiplier] = Field(default_factory=dict)
    requires_products: tuple[Name, ...] = ()


class Acceptance(_Model):
    base: dict[RequestType, dict[Name, Probability]]
    default: Probability = 0.0
    max: Probability = 0.9
    sentiment: SentimentEffect
    resolution: ResolutionEffect
    distress: Multiplier = 1.0
    offers: dict[Name, OfferAcceptance] = Field(default_factory=dict)

    @field_validator("resolution")
    @classmethod
    def _non_negative(cls, v: ResolutionEffect) -> ResolutionEffect:
        if min(v.resolved, v.unresolved, v.unknown) < 0:
            raise ValueError("multipliers must be non-negative")
        return v


class MisfitEffect(_Model):
    pivot: Probability = 0.0
    power: float = Field(1.0, ge=0, le=5, allow_inf_nan=False)


class ComplaintParams(_Model):
    base: float = Field(gt=0, lt=1, allow_inf_nan=False)
    sentiment: SentimentEffect
    unresolved: Multiplier = 1.0
    unknown_resolution: Multiplier = 1.0
    distress: Multiplier = 1.0
    recent_complaint: Multiplier = 1.0
    memory_days: float = Field(30.0, ge=0, allow_inf_nan=False)
    misfit: MisfitEffect = MisfitEffect()
    families: dict[Name, Multiplier] = Field(default_factory=dict)
    request_type_families: dict[RequestType, dict[Name, Multiplier]] = Field(default_factory=dict)
    offers: dict[Name, Multiplier] = Field(default_factory=dict)


class RevenueParams(_Model):
    scale_by_tier: bool = True
    overrides: dict[Name, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(default_factory=dict)


class RewardParams(_Model):
    complaint_penalty: float = Field(300.0, ge=0, allow_inf_nan=False)  # the policy file's default


class SimParams(_Model):
    """The whole simulated world; see ``experiments/simulator/simulator.yaml`` for each field."""

    version: int = 1
    population: Population
    calendar: Calendar
    channels: dict[Channel, ChannelParams]
    sentiment_shift: ResolutionEffect = ResolutionEffect(resolved=0.0, unresolved=0.0, unknown=0.0)
    distress_sentiment_shift: float = Field(0.0, ge=-2, le=2, allow_inf_nan=False)
    request_types: dict[RequestType, RequestTypeParams]
    acceptance: Acceptance
    complaint: ComplaintParams
    revenue: RevenueParams = RevenueParams()
    reward: RewardParams = RewardParams()

    @field_validator("channels")
    @classmethod
    def _channel_shares(cls, v: dict[Channel, ChannelParams]) -> dict[Channel, ChannelParams]:
        norm = _normalised_shares({k: c.share for k, c in v.items()}, "channel shares")
        return {k: c.model_copy(update={"share": norm[k]}) for k, c in v.items()}

    @field_validator("request_types")
    @classmethod
    def _type_shares(cls, v: dict[RequestType, RequestTypeParams]) -> dict[RequestType, RequestTypeParams]:
        norm = _normalised_shares({k: r.share for k, r in v.items()}, "request type shares")
        return {k: r.model_copy(update={"share": norm[k]}) for k, r in v.items()}

    @model_validator(mode="after")
    def _names_exist(self) -> "SimParams":
        """Tiers, regions, products and intents named in the behaviour tables must exist in
        the population and request types: a typo would otherwise be a silent no-op."""
        tiers, regions = set(self.population.tiers), set(self.population.regions)
        products = set(self.population.products)
        intents = {i for rt in self.request_types.values() for i in rt.intents}
        problems: list[tuple[str, str]] = []
        for oid, o in self.acceptance.offers.items():
            where = f"acceptance.offers.{oid}"
            for what, names, known in (("intents", o.intents, intents), ("tiers", o.tiers, tiers),
                                       ("regions", o.regions, regions), ("products", o.products, products),
                                       ("requires_products", o.requires_products, products)):
                kind = what.split("_")[-1][:-1]
                problems += [(f"{where}.{what}.{n}", f"unknown {kind} '{n}' (not in the population or "
                              f"request types)") for n in names if n not in known]
        if problems:
            raise FieldProblems(problems)
        return self


def parse_params(text: str, source: str = "<simulator params>") -> SimParams:
    """Validate simulator parameter YAML; ``ConfigError`` lists every problem with its field."""
    raw = yaml_mapping(text, source, empty_ok=False)
    try:
        return SimParams.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            cause = e.get("ctx", {}).get("error")
            if isinstance(cause, FieldProblems):
                prefix = ".".join(map(str, e["loc"]))
                lines += [f"{source}: field '{prefix + '.' if prefix else ''}{f}': {m}" for f, m in cause.problems]
            else:
                lines.append(f"{source}: field '{'.'.join(map(str, e['loc'])) or '(top level)'}': {e['msg']}")
        raise ConfigError(lines) from exc


def load_params(path: Path | str | None = None) -> SimParams:
    """The simulator's parameters from ``path`` (default: the shipped ``simulator.yaml``)."""
    p = Path(path) if path is not None else DEFAULT_PARAMS
    return parse_params(read_config_file(p, "simulator parameters"), str(p))


# -- the world -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SimCustomer:
    """A customer as the simulator knows them (the request carries the channel's view)."""

    id: str
    tier: str
    tenure_months: int  # on day 0
    products: tuple[str, ...]
    region: str
    opted_out: bool
    last_complaint: datetime | None  # before day 0 (the channel's CRM knows it)


@dataclass(frozen=True)
class Interaction:
    """One contact: what the channel sends (``request``, whose ``event_id`` is this one) and
    who is really calling (``customer``, with what the simulator alone knows)."""

    event_id: str
    ts: datetime
    day: int
    customer: SimCustomer
    request: DecisionRequest


@dataclass(frozen=True)
class Expectation:
    """The hidden truth of one offer in one interaction (never shown to a policy)."""

    p_accept: float
    p_complaint: float
    revenue: float  # if accepted
    reward: float  # p_accept * revenue - p_complaint * complaint_penalty


@dataclass(frozen=True)
class Response:
    """What the customer did; ``outcomes`` turns it into the service's outcome calls."""

    offer_id: str
    accepted: bool
    complaint: bool
    revenue: float  # realised: the acceptance's revenue, else 0


@dataclass
class SimState:
    """One policy run's memory of the world: each customer's last complaint during the run.
    Per run, so a policy that provokes complaints changes its own future, not another
    policy's. (Complaints from before day 0 live on ``SimCustomer`` and count in every run.)"""

    last_complaint: dict[str, datetime] = field(default_factory=dict)

    def copy(self) -> "SimState":
        return SimState(dict(self.last_complaint))


ZERO = Expectation(0.0, 0.0, 0.0, 0.0)


def _seed(*parts: object) -> int:
    """A 64-bit seed from SHA-256 of the parts: stable across runs, platforms and Python
    versions (unlike ``hash()``), and independent streams for different purposes."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    """One key drawn by weight, using exactly one ``rng.random()`` (stable stream)."""
    u, acc, last = rng.random(), 0.0, None
    for key, w in weights.items():
        if w <= 0:
            continue
        acc += w
        last = key
        if u < acc:
            return key
    return last  # only when the weights sum to a hair under 1


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def outcomes(response: Response) -> list[tuple[str, float | None]]:
    """The service's outcome calls for a response (``Decider.record_outcome(type, value)``):
    ``accepted`` with value = revenue, or ``declined``; plus ``complaint``. Nothing for
    ``no_offer`` (the service refuses accepted/declined for a decision that offered nothing)."""
    if response.offer_id == NO_OFFER:
        return []
    out: list[tuple[str, float | None]] = [(OutcomeType.ACCEPTED, response.revenue) if response.accepted
                                           else (OutcomeType.DECLINED, None)]
    if response.complaint:
        out.append((OutcomeType.COMPLAINT, None))
    return out


class Simulator:
    """The seeded world: a population, days of interactions, and the hidden truth.

    ``complaint_penalty`` should be the policy file's ``reward.complaint_penalty`` so the
    oracle optimises the reward the service learns; ``None`` takes the parameter file's.
    """

    def __init__(self, params: SimParams, catalog: Catalog, seed: int = 0,
                 complaint_penalty: float | None = None):
        if seed < 0:
            raise ValueError("seed must be non-negative")
        self.params = params
        self.catalog = catalog
        self.seed = seed
        self.complaint_penalty = params.reward.complaint_penalty if complaint_penalty is None else complaint_penalty
        self._check_catalog()
        self.customers: tuple[SimCustomer, ...] = self._population()
        self._start = datetime.combine(params.calendar.start, datetime.min.time(), tzinfo=UTC)

    # -- construction ------------------------------------------------------------------
    def _check_catalog(self) -> None:
        """Offer ids and families in the file must be the catalog's: a typo must not
        silently leave an offer with default behaviour."""
        p, offers = self.params, self.catalog.offers
        families = {o.family for o in offers.values()}
        problems = [f"field 'acceptance.offers.{o}': offer not in the catalog" for o in p.acceptance.offers
                    if o not in offers]
        problems += [f"field 'complaint.offers.{o}': offer not in the catalog" for o in p.complaint.offers
                     if o not in offers]
        problems += [f"field 'revenue.overrides.{o}': offer not in the catalog" for o in p.revenue.overrides
                     if o not in offers]
        problems += [f"field 'acceptance.base.{t.value}.{f}': no catalog offer has family '{f}'"
                     for t, fams in p.acceptance.base.items() for f in fams if f not in families]
        problems += [f"field 'complaint.families.{f}': no catalog offer has family '{f}'"
                     for f in p.complaint.families if f not in families]
        problems += [f"field 'complaint.request_type_families.{t.value}.{f}': no catalog offer has family '{f}'"
                     for t, fams in p.complaint.request_type_families.items() for f in fams if f not in families]
        if problems:
            raise ConfigError(problems)

    def _population(self) -> tuple[SimCustomer, ...]:
        """The customer book, a pure function of the seed and ``population``."""
        pop = self.params.population
        rng = random.Random(_seed(self.seed, "population"))
        tiers = {k: t.share for k, t in pop.tiers.items()}
        start = datetime.combine(self.params.calendar.start, datetime.min.time(), tzinfo=UTC)
        memory = self.params.complaint.memory_days
        out = []
        for n in range(pop.customers):
            tier = _pick(rng, tiers)
            tenure = min(pop.tenure.max_months, int(-pop.tenure.mean_months * math.log(1.0 - rng.random())))
            products = tuple(p for p, q in pop.products.items() if rng.random() < q)
            region = _pick(rng, pop.regions)
            opted_out = rng.random() < pop.opted_out_share
            complained = rng.random() < pop.recent_complaint_share
            ago = rng.random()
            last = start - timedelta(days=memory * ago) - timedelta(hours=1) if complained else None
            out.append(SimCustomer(f"c{n:07d}", tier, tenure, products, region, opted_out, last))
        return tuple(out)

    # -- interactions ------------------------------------------------------------------
    def interactions(self, day: int) -> list[Interaction]:
        """Day ``day``'s interactions in time order: a pure function of (seed, day), the same
        whatever any policy did, so different policies face the same customers."""
        if day < 0:
            raise ValueError("day must be non-negative")
        cal, p = self.params.calendar, self.params
        rng = random.Random(_seed(self.seed, "day", day))
        opens = self._start + timedelta(days=day, hours=cal.open_hour)
        span = (cal.close_hour - cal.open_hour) * 3600.0
        offsets = sorted(rng.random() * span for _ in range(cal.interactions_per_day))
        channels = {k: c.share for k, c in p.channels.items()}
        types = {k: r.share for k, r in p.request_types.items()}
        out = []
        for i, off in enumerate(offsets):
            ts = opens + timedelta(seconds=int(off))
            cust = self.customers[int(rng.random() * len(self.customers))]
            channel: Channel = _pick(rng, channels)
            rt: RequestType = _pick(rng, types)
            rtp = p.request_types[rt]
            intent = _pick(rng, {k: v.share for k, v in rtp.intents.items()}) if rtp.intents else None
            ip = rtp.intents[intent] if intent is not None else None
            mix = (ip.resolution if ip and ip.resolution else rtp.resolution).as_dict()
            resolved = {"resolved": Resolved.yes, "unresolved": Resolved.no, "unknown": Resolved.unknown}[
                _pick(rng, mix)]
            distress_rate = ip.distress if ip and ip.distress is not None else rtp.distress
            distress = rng.random() < distress_rate
            tone = rtp.sentiment.mean + rtp.sentiment.sd * rng.gauss(0.0, 1.0)
            tone += (ip.sentiment_shift if ip else 0.0) + p.sentiment_shift.of(resolved)
            tone += p.distress_sentiment_shift if distress else 0.0
            authenticated = rng.random() < p.channels[channel].authenticated
            attrs: dict[str, float] = {}
            for name, spec in (ip.attributes.items() if ip else ()):
                v = spec.low + (spec.high - spec.low) * rng.random()
                attrs[name] = round(v * (attrs[spec.times] if spec.times else 1.0), spec.decimals)
            event_id = f"sim-{self.seed}-{day}-{i}"
            history = History(last_complaint=cust.last_complaint) if cust.last_complaint else History()
            request = DecisionRequest(
                event_id=event_id,
                channel=channel,
                customer={"id": cust.id, "authenticated": authenticated, "tier": cust.tier,
                          "tenure_months": min(1200, cust.tenure_months + day // 30), "products": cust.products,
                          "region": cust.region, "opted_out": cust.opted_out},
                interaction={"request_type": rt, "intent": intent, "resolved": resolved,
                             "sentiment": round(_clip(tone), 3), "distress": distress},
                history=history,
                attributes=attrs,
            )
            out.append(Interaction(event_id, ts, day, cust, request))
        return out

    def new_state(self) -> SimState:
        """A fresh policy run's state (the same as ``SimState()``: complaints from before
        day 0 belong to the customers, so every run sees them)."""
        return SimState()

    # -- the hidden truth ----------------------------------------------------------------
    def revenue(self, inter: Interaction, offer_id: str) -> float:
        """Revenue of an acceptance: catalog value (or the file's override) x tier value."""
        if offer_id == NO_OFFER:
            return 0.0
        r = self.params.revenue
        value = r.overrides.get(offer_id, self.catalog.offers[offer_id].value)
        tier = self.params.population.tiers.get(inter.request.customer.tier)
        return value * (tier.value_multiplier if r.scale_by_tier and tier else 1.0)

    def fit(self, inter: Interaction, offer_id: str) -> float:
        """How well the offer fits the request, whoever asks: the base acceptance for the
        request type times the offer's multiplier and intent multiplier (no customer, channel
        or mood terms). Acceptance starts from it; a poor fit also raises complaints."""
        if offer_id == NO_OFFER:
            return 0.0
        a, offer = self.params.acceptance, self.catalog.offers[offer_id]
        i = inter.request.interaction
        oa = a.offers.get(offer_id)
        base = oa.base.get(i.request_type) if oa else None
        if base is None:
            base = a.base.get(i.request_type, {}).get(offer.family, a.default)
        return base * oa.multiplier * oa.intents.get(i.intent or "", 1.0) if oa else base

    def p_accept(self, inter: Interaction, offer_id: str) -> float:
        """P(accept) for this offer in this interaction (formula in the module docstring)."""
        if offer_id == NO_OFFER:
            return 0.0
        a = self.params.acceptance
        req = inter.request
        c, i = req.customer, req.interaction
        oa = a.offers.get(offer_id)
        held = set(c.products)
        if oa and oa.requires_products and not held & set(oa.requires_products):
            return 0.0
        p = self.fit(inter, offer_id)
        if oa:
            p *= oa.tiers.get(c.tier, 1.0) * oa.regions.get(c.region or "", 1.0) * oa.channels.get(req.channel, 1.0)
            for prod in held:
                p *= oa.products.get(prod, 1.0)
        tier = self.params.population.tiers.get(c.tier)
        chan = self.params.channels.get(req.channel)
        p *= (tier.accept_multiplier if tier else 1.0) * (chan.accept_multiplier if chan else 1.0)
        p *= math.exp(a.sentiment.slope * (i.sentiment - a.sentiment.pivot)) * a.resolution.of(i.resolved)
        if i.distress:
            p *= a.distress
        return min(a.max, p)

    def recent_complaint(self, inter: Interaction, state: SimState | None) -> bool:
        """Whether the customer complained within ``complaint.memory_days`` before now: before
        day 0 (the population's) or during this run (``state``, ``None`` for none)."""
        memory = timedelta(days=self.params.complaint.memory_days)
        times = (inter.customer.last_complaint, state.last_complaint.get(inter.customer.id) if state else None)
        return any(t is not None and timedelta(0) <= inter.ts - t < memory for t in times)

    def p_complaint(self, inter: Interaction, offer_id: str, state: SimState | None = None) -> float:
        """P(complaint | offer made) (formula in the module docstring); 0 for ``no_offer``."""
        if offer_id == NO_OFFER:
            return 0.0
        cp, offer = self.params.complaint, self.catalog.offers[offer_id]
        i = inter.request.interaction
        odds = cp.base / (1.0 - cp.base)
        odds *= cp.families.get(offer.family, 1.0) * cp.offers.get(offer_id, 1.0)
        odds *= cp.request_type_families.get(i.request_type, {}).get(offer.family, 1.0)
        odds *= math.exp(cp.sentiment.slope * max(0.0, cp.sentiment.pivot - i.sentiment))
        fit = self.fit(inter, offer_id)
        if fit < cp.misfit.pivot:
            odds *= (cp.misfit.pivot / max(fit, MIN_FIT)) ** cp.misfit.power
        if i.resolved == Resolved.no:
            odds *= cp.unresolved
        elif i.resolved == Resolved.unknown:
            odds *= cp.unknown_resolution
        if i.distress:
            odds *= cp.distress
        if self.recent_complaint(inter, state):
            odds *= cp.recent_complaint
        return odds / (1.0 + odds)

    def expected(self, inter: Interaction, offer_id: str, state: SimState | None = None) -> Expectation:
        """The hidden expected outcome of making ``offer_id`` in ``inter``, given the run's
        complaint memory ``state`` (``None``: none yet; complaints from before day 0 always count)."""
        if offer_id == NO_OFFER:
            return ZERO
        if offer_id not in self.catalog.offers:
            raise KeyError(f"unknown offer '{offer_id}'")
        pa, pc, rev = self.p_accept(inter, offer_id), self.p_complaint(inter, offer_id, state), \
            self.revenue(inter, offer_id)
        return Expectation(pa, pc, rev, pa * rev - pc * self.complaint_penalty)

    def respond(self, inter: Interaction, offer_id: str, state: SimState) -> Response:
        """The customer's response, drawn from (seed, event_id, offer_id) so that two runs
        making the same offer in the same interaction see the same dice. A complaint is
        remembered in ``state`` (this run's only)."""
        if offer_id == NO_OFFER:
            return Response(NO_OFFER, False, False, 0.0)
        e = self.expected(inter, offer_id, state)
        rng = random.Random(_seed(self.seed, "respond", inter.event_id, offer_id))
        accepted = rng.random() < e.p_accept
        complaint = rng.random() < e.p_complaint
        if complaint:
            state.last_complaint[inter.customer.id] = inter.ts
        return Response(offer_id, accepted, complaint, e.revenue if accepted else 0.0)

    def oracle(self, inter: Interaction, eligible: Sequence[str], state: SimState | None = None) -> str:
        """The eligible action with the highest expected reward on the hidden model;
        ``no_offer`` (when eligible) unless an offer beats 0 strictly; other ties: the first."""
        if not eligible:
            raise ValueError("no eligible action")
        best, best_r = (NO_OFFER, 0.0) if NO_OFFER in eligible else (None, -math.inf)
        for a in eligible:
            r = self.expected(inter, a, state).reward
            if r > best_r:
                best, best_r = a, r
        assert best is not None
        return best

    outcomes = staticmethod(outcomes)
