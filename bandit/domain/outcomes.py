"""The reward function: raw outcomes into the number the policy learns from.

Outcomes are stored raw; the reward is computed at training time, so the service
team can change the reward function and retrain on the same history. For a
decision made at time t whose chosen offer has margin m, with the outcomes that
arrived within the window ``t + window_hours`` (later ones are kept, not learned
from):

.. math::

    r = \\text{revenue} + \\text{declined} - \\text{penalty}\\cdot[\\text{complaint}]
        + w_{nps}\\,(\\text{nps} - 5) + \\sum \\text{reward values}

where revenue is the sum of ``converted`` values if any, else the ``accepted``
value (or m when the acceptance carries no value): ``revenue``, which monitoring
uses too; ``declined`` adds ``declined_reward`` only when nothing was accepted
(``accepted`` or ``converted``). With no outcome in the window,
``r = default_reward``. VW minimizes cost, and ``cost = -r / scale``.

The outcome types (``OutcomeType``) and what each means (``OUTCOME_FACTS``: whether it
needs an offer, carries a value or a score, is a complaint, a contact) are defined here
once; the decider's validation, the contact history, the API and the CLI read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from pydantic import Field

from bandit.domain.context import Strict


class OutcomeType(StrEnum):
    """What can happen after a decision: the one list of outcome types.

    A ``StrEnum`` so that a member *is* its string (``OutcomeType.ACCEPTED == "accepted"``,
    ``str()`` and f-strings give the value): the API, the CLI, the log, DSJSON and the
    metrics keep the plain strings they always had, and code that reads raw strings from
    the log compares them with the members directly."""

    ACCEPTED = "accepted"
    DECLINED = "declined"
    CONVERTED = "converted"
    COMPLAINT = "complaint"
    NPS = "nps"
    REWARD = "reward"


class ValueRule(StrEnum):
    """Whether an outcome of a type carries a ``value``."""

    REQUIRED = "required"
    OPTIONAL = "optional"
    NONE = "none"


@dataclass(frozen=True)
class OutcomeFacts:
    """What one outcome type means, for every rule that asks: the decider's validation,
    the reward and revenue below, monitoring, and the guardrails' contact history. Why a
    table: a new type (or a changed meaning) is then one row here, not an edit in each of
    those places."""

    needs_offer: bool
    """Only an offer can be accepted, declined or converted: refused for a ``no_offer`` decision."""
    value: ValueRule
    """Whether it carries a value (``REQUIRED``: a reward; ``NONE``: a decline or complaint)."""
    revenue: bool
    """Its value, if any, is revenue (``revenue`` below: an acceptance or a conversion)."""
    acceptance: bool
    """The customer took the offer (monitoring's acceptance rate; the reward's declined term
    applies only without one)."""
    complaint: bool
    """A complaint: the reward's penalty, the complaint rate, the guardrails' cooldown."""
    scored: bool
    """Carries an NPS ``score`` (0..10), which no other type may."""
    contact: str | None
    """The kind of contact it is recorded as in the customer's history (None: not a contact)."""
    reported: bool
    """Reported by a channel through the service's outcome route. ``reward`` is not: it is
    a reward value as such, from the Personalizer-compatible reward route or a DSJSON import."""
    single: bool = False
    """At most one per decision: the first wins, and the same type again with another value or
    score is a conflict (an acceptance of 15, then one of 99; two NPS scores)."""
    contradicts: frozenset[str] = frozenset()
    """Types that cannot follow it on the same decision, nor precede it (a decline and an
    acceptance of one offer): the first recorded wins, the later one is a conflict."""


OUTCOME_FACTS: Mapping[OutcomeType, OutcomeFacts] = MappingProxyType({
    OutcomeType.ACCEPTED: OutcomeFacts(needs_offer=True, value=ValueRule.OPTIONAL, revenue=True, acceptance=True,
                                       complaint=False, scored=False, contact="accepted", reported=True,
                                       single=True, contradicts=frozenset({"declined"})),
    OutcomeType.DECLINED: OutcomeFacts(needs_offer=True, value=ValueRule.NONE, revenue=False, acceptance=False,
                                       complaint=False, scored=False, contact="declined", reported=True,
                                       single=True, contradicts=frozenset({"accepted", "converted"})),
    # several conversions (purchases) may follow one acceptance: their values add up
    OutcomeType.CONVERTED: OutcomeFacts(needs_offer=True, value=ValueRule.OPTIONAL, revenue=True, acceptance=True,
                                        complaint=False, scored=False, contact="accepted", reported=True,
                                        contradicts=frozenset({"declined"})),
    OutcomeType.COMPLAINT: OutcomeFacts(needs_offer=False, value=ValueRule.NONE, revenue=False, acceptance=False,
                                        complaint=True, scored=False, contact="complaint", reported=True),
    # an nps value is accepted (and not learned from), as it always was
    OutcomeType.NPS: OutcomeFacts(needs_offer=False, value=ValueRule.OPTIONAL, revenue=False, acceptance=False,
                                  complaint=False, scored=True, contact=None, reported=True, single=True),
    OutcomeType.REWARD: OutcomeFacts(needs_offer=False, value=ValueRule.REQUIRED, revenue=False, acceptance=False,
                                     complaint=False, scored=False, contact=None, reported=False),
})

# Derived from the table, never written out again:
OUTCOME_TYPES: tuple[str, ...] = tuple(t.value for t in OutcomeType)
# what a channel reports through the service's outcome route (every type but ``reward``)
REPORTED_OUTCOME_TYPES: tuple[str, ...] = tuple(t.value for t in OutcomeType if OUTCOME_FACTS[t].reported)
# the outcome types that are contacts (the guardrails' contact history), and the kind each is recorded as
CONTACT_KIND: Mapping[str, str] = MappingProxyType(
    {t.value: f.contact for t, f in OUTCOME_FACTS.items() if f.contact is not None})
# plain strings for the per-decision loops (training reads every decision of a window)
_ACCEPTANCE = frozenset(t.value for t, f in OUTCOME_FACTS.items() if f.acceptance)
_COMPLAINT = frozenset(t.value for t, f in OUTCOME_FACTS.items() if f.complaint)
_ACCEPTED, _CONVERTED, _DECLINED = OutcomeType.ACCEPTED.value, OutcomeType.CONVERTED.value, OutcomeType.DECLINED.value
_NPS, _REWARD = OutcomeType.NPS.value, OutcomeType.REWARD.value


def conflicting(facts_: OutcomeFacts, type_: str) -> frozenset[str]:
    """The outcome types whose presence on a decision makes a new ``type_`` outcome a conflict
    (unless it is the identical outcome again): its contradictions, and itself when single."""
    return facts_.contradicts | ({type_} if facts_.single else frozenset())


def facts(type_: str) -> OutcomeFacts:
    """The facts of an outcome type given as its string (``ValueError`` for an unknown one:
    the decider refuses those before asking)."""
    return OUTCOME_FACTS[OutcomeType(type_)]


@dataclass(frozen=True)
class Outcome:
    event_id: str
    type: str
    ts: float
    value: float | None = None
    score: float | None = None

    @property
    def dedupe(self) -> str:
        """Identity of an outcome: the same type, value and score twice is one outcome."""
        return f"{self.type}:{self.value!r}:{self.score!r}"


class RewardConfig(Strict):
    """How raw outcomes become the reward learned from (computed at training time)."""

    complaint_penalty: float = Field(300.0, ge=0, description="Subtracted once if any complaint arrives (see "
                                     "config/policy.yaml for why 300).")
    default_reward: float = Field(0.0, description="When no outcome arrives within the window.")
    declined_reward: float = 0.0
    window_hours: float = Field(72, gt=0, description="Outcomes later than this are kept, not learned from.")
    nps_weight: float = Field(0.0, description="Reward per NPS point above 0 (score 0..10 minus 5), 0 = unused.")
    scale: float = Field(100.0, gt=0, description="VW cost = -reward / scale (keeps costs near unit size).")


def in_window(outcomes: Sequence[Outcome], decided_ts: float, cfg: RewardConfig) -> list[Outcome]:
    limit = decided_ts + cfg.window_hours * 3600
    return [o for o in outcomes if o.ts <= limit]


def revenue(outcomes: Sequence[Outcome], offer_value: float) -> float:
    """The revenue of one decision from the outcomes given (the caller picks which: the
    reward window's for learning, those recorded by ``as_of`` for monitoring): the
    ``converted`` values summed if any, else the largest ``accepted`` value
    (``offer_value``, the logged offer's value, when no acceptance carries one), else 0.

    Why conversions win: an acceptance that goes on to convert is one sale, counted once,
    at what the conversions say it earned. One function for the reward and for monitoring,
    so what is learned from and the revenue reported in production cannot disagree."""
    converted = [o.value or 0.0 for o in outcomes if o.type == _CONVERTED]
    if converted:
        return float(sum(converted))
    accepted_ = [o.value for o in outcomes if o.type == _ACCEPTED]
    if accepted_:
        values = [v for v in accepted_ if v is not None]
        return float(max(values)) if values else float(offer_value)
    return 0.0


def accepted(outcomes: Sequence[Outcome]) -> bool:
    """Whether the customer took the offer: an outcome of an acceptance type (``accepted``
    or ``converted``) among those given."""
    return any(o.type in _ACCEPTANCE for o in outcomes)


def complained(outcomes: Sequence[Outcome]) -> bool:
    """Whether a complaint is among the outcomes given (several count once: a complaint
    rate is a share of decisions)."""
    return any(o.type in _COMPLAINT for o in outcomes)


def reward(outcomes: Sequence[Outcome], decided_ts: float, offer_value: float, cfg: RewardConfig) -> float:
    """The reward of one decision from its raw outcomes (see the module docstring)."""
    seen = in_window(outcomes, decided_ts, cfg)
    if not seen:
        return cfg.default_reward
    types = {o.type for o in seen}
    r = 0.0 + revenue(seen, offer_value)  # 0.0 + : never -0.0, as when the terms were summed from 0.0
    if _DECLINED in types and types.isdisjoint(_ACCEPTANCE):
        r += cfg.declined_reward
    if not types.isdisjoint(_COMPLAINT):
        r -= cfg.complaint_penalty
    if cfg.nps_weight and _NPS in types:
        r += cfg.nps_weight * ([o.score for o in seen if o.type == _NPS][-1] - 5.0)  # type: ignore[operator]
    if _REWARD in types:
        r += sum(o.value or 0.0 for o in seen if o.type == _REWARD)
    return r


def cost(r: float, cfg: RewardConfig) -> float:
    return -r / cfg.scale + 0.0  # never -0.0 in exports


def window_closed(decided_ts: float, as_of: float, cfg: RewardConfig) -> bool:
    """A decision is learnable once its reward window has passed (else its reward is unknown)."""
    return as_of >= decided_ts + cfg.window_hours * 3600
