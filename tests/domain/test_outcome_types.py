"""The outcome types and what each means: one table (``bandit.domain.outcomes``), and the
decider, the contact history and the simulator all reading it; and revenue, one function
for the reward and for monitoring."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from bandit.config.catalog import NO_OFFER
from bandit.decide.decider import Decider
from bandit.deploy.monitoring import observe
from bandit.domain.errors import InvalidRequest
from bandit.domain.outcomes import (
    CONTACT_KIND,
    OUTCOME_FACTS,
    OUTCOME_TYPES,
    REPORTED_OUTCOME_TYPES,
    Outcome,
    OutcomeType,
    RewardConfig,
    ValueRule,
    accepted,
    complained,
    facts,
    in_window,
    revenue,
    reward,
)
from bandit.log.records import DecisionRecord
from experiments.simulator import Response, outcomes

# The wire strings: the API, the CLI, the log and DSJSON carry exactly these.
WIRE = ("accepted", "declined", "converted", "complaint", "nps", "reward")


def test_the_types_are_the_wire_strings_and_the_tuple_is_derived() -> None:
    assert tuple(t.value for t in OutcomeType) == WIRE == OUTCOME_TYPES
    assert all(type(t) is str for t in OUTCOME_TYPES)  # plain strings, as before
    assert OutcomeType.ACCEPTED == "accepted" and f"{OutcomeType.NPS}" == "nps" and str(OutcomeType.REWARD) == "reward"
    assert json.dumps([OutcomeType.COMPLAINT]) == '["complaint"]'
    assert REPORTED_OUTCOME_TYPES == ("accepted", "declined", "converted", "complaint", "nps")
    assert dict(CONTACT_KIND) == {"declined": "declined", "accepted": "accepted", "converted": "accepted",
                                  "complaint": "complaint"}


def test_the_facts_table_has_one_row_per_type_and_no_other() -> None:
    assert set(OUTCOME_FACTS) == set(OutcomeType)
    assert all(facts(t) is OUTCOME_FACTS[OutcomeType(t)] for t in OUTCOME_TYPES)
    with pytest.raises(ValueError):
        facts("bought")


def _log(decider: Decider, event_id: str, chosen: str) -> None:
    ids = [NO_OFFER, "premium_bundle"]
    decider.store.log_decision(DecisionRecord(
        event_id=event_id, ts=1_800_000_000.0, mode="online", model_version="m1", action_ids=ids,
        pmf=[0.5, 0.5], chosen_index=ids.index(chosen), activated=True, customer_key="k",
        payload={"offer_value": 10.0}))


def _valid(t: OutcomeType) -> dict[str, float]:
    """The smallest outcome of type ``t`` its facts allow."""
    f = OUTCOME_FACTS[t]
    return {**({"value": 5.0} if f.value is ValueRule.REQUIRED else {}), **({"score": 7.0} if f.scored else {})}


def test_the_decider_accepts_exactly_the_types_of_the_table(decider: Decider) -> None:
    """Every type the decider takes has a row (and every row is a type it takes), each as
    its string or as the member; anything else is refused naming the field."""
    for t in OutcomeType:  # a decision each: a decline and an acceptance of one offer conflict
        _log(decider, f"offer-{t.value}", "premium_bundle")
        assert decider.record_outcome(f"offer-{t.value}", t.value, **_valid(t)).recorded
        assert not decider.record_outcome(f"offer-{t.value}", t, **_valid(t)).recorded  # the member: the same
    recorded = [o for t in OutcomeType for o in decider.store.outcomes_for(f"offer-{t.value}")]
    assert sorted(o.type for o in recorded) == sorted(WIRE)
    assert all(type(o.type) is str for o in recorded)
    _log(decider, "offer", "premium_bundle")
    for junk in ("bought", "Accepted", "", None, 3):
        with pytest.raises(InvalidRequest, match=r"^type: must be one of \['accepted', .*'reward'\]"):
            decider.record_outcome("offer", junk)  # type: ignore[arg-type]


@pytest.mark.parametrize("t", list(OutcomeType))
def test_what_each_type_carries_follows_its_facts(decider: Decider, t: OutcomeType) -> None:
    f = OUTCOME_FACTS[t]
    _log(decider, "offer", "premium_bundle")
    _log(decider, "nothing", NO_OFFER)
    if f.needs_offer:
        with pytest.raises(InvalidRequest, match=f"^type: event 'nothing' made no offer, so it cannot be {t.value}$"):
            decider.record_outcome("nothing", t, **_valid(t))
    else:
        assert decider.record_outcome("nothing", t, **_valid(t)).recorded
    if f.value is ValueRule.REQUIRED:
        with pytest.raises(InvalidRequest, match=f"^value: a {t.value} outcome needs a value$"):
            decider.record_outcome("offer", t, **{**_valid(t), "value": None})
    if f.value is ValueRule.NONE:
        with pytest.raises(InvalidRequest, match=f"^value: a {t.value} outcome carries no value$"):
            decider.record_outcome("offer", t, **_valid(t), value=1.0)
    if f.scored:
        for bad in (None, -1.0, 10.5):
            with pytest.raises(InvalidRequest, match=f"^score: an {t.value} outcome needs a score from 0 to 10$"):
                decider.record_outcome("offer", t, **{**_valid(t), "score": bad})
    else:
        with pytest.raises(InvalidRequest, match=f"^score: only nps outcomes carry a score, not '{t.value}'$"):
            decider.record_outcome("offer", t, **_valid(t), score=5.0)
    with pytest.raises(InvalidRequest, match="^value: must be a finite number$"):
        decider.record_outcome("offer", t, **{**_valid(t), "value": float("nan")})


def test_the_simulator_reports_outcomes_by_the_types() -> None:
    assert outcomes(Response("fiber_upgrade", True, True, 156.0)) == [("accepted", 156.0), ("complaint", None)]
    assert all(OUTCOME_FACTS[OutcomeType(t)].reported for t, _ in outcomes(Response("x", False, True, 0.0)))


# -- revenue: one function for the reward and for monitoring ---------------------------------------

T = 1_800_000_000.0
OUTCOME = st.builds(
    lambda t, dt, value, score: Outcome("e", t, T + dt, value if OUTCOME_FACTS[OutcomeType(t)].value is not ValueRule.NONE
                                        else None, score if OUTCOME_FACTS[OutcomeType(t)].scored else None),
    st.sampled_from(OUTCOME_TYPES), st.floats(0, 100 * 3600), st.one_of(st.none(), st.floats(-50, 500)),
    st.floats(0, 10))


@given(st.lists(OUTCOME, max_size=6), st.floats(0, 300))
def test_the_reward_s_revenue_term_is_revenue(outs: list[Outcome], offer_value: float) -> None:
    """With every other term of the reward switched off, the reward of a decision is its
    revenue over the reward window; and types that are not revenue add none."""
    cfg = RewardConfig(complaint_penalty=0, declined_reward=0, default_reward=0, nps_weight=0)
    seen = in_window(outs, T, cfg)
    extra = sum(o.value or 0.0 for o in seen if o.type == OutcomeType.REWARD)
    assert reward(outs, T, offer_value, cfg) == pytest.approx(revenue(seen, offer_value) + extra)
    others = [o for o in outs if not OUTCOME_FACTS[OutcomeType(o.type)].revenue]
    assert revenue(others, offer_value) == 0.0
    assert accepted(outs) == any(OUTCOME_FACTS[OutcomeType(o.type)].acceptance for o in outs)
    assert complained(outs) == any(o.type == "complaint" for o in outs)


@given(st.lists(OUTCOME, max_size=6), st.floats(0, 300))
def test_monitoring_reports_the_revenue_learning_uses(outs: list[Outcome], offer_value: float) -> None:
    as_of = T + 50 * 3600
    rec = DecisionRecord(event_id="e", ts=T, mode="online", model_version="m1", action_ids=[NO_OFFER, "premium_bundle"],
                         pmf=[0.5, 0.5], chosen_index=1, activated=True, payload={"offer_value": offer_value})
    seen = [o for o in outs if o.ts <= as_of]
    obs = observe(rec, outs, as_of)
    assert (obs.revenue, obs.accepted, obs.complaint) == (revenue(seen, offer_value), accepted(seen), complained(seen))


def test_revenue_examples() -> None:
    o = lambda t, v=None: Outcome("e", t, T, v)  # noqa: E731
    assert revenue([], 50) == 0.0 and revenue([o("declined"), o("complaint")], 50) == 0.0
    assert revenue([o("accepted")], 50) == 50.0 and revenue([o("accepted", 10), o("accepted", 30)], 50) == 30.0
    assert revenue([o("accepted", 10), o("converted", 120), o("converted")], 50) == 120.0
    assert revenue([o("accepted"), o("converted")], 50) == 0.0  # a conversion without a value earns 0, not the offer value
