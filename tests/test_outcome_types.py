"""The outcome types and what each means: one table (``bandit.domain.outcomes``), and the
decider, the contact history and the simulator all reading it."""

from __future__ import annotations

import json

import pytest

from bandit.config.catalog import NO_OFFER
from bandit.decide.decider import Decider
from bandit.domain.errors import InvalidRequest
from bandit.domain.outcomes import (
    CONTACT_KIND,
    OUTCOME_FACTS,
    OUTCOME_TYPES,
    REPORTED_OUTCOME_TYPES,
    OutcomeType,
    ValueRule,
    facts,
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
    _log(decider, "offer", "premium_bundle")
    for i, t in enumerate(OutcomeType):
        assert decider.record_outcome("offer", t.value, **_valid(t))
        assert not decider.record_outcome("offer", t, **_valid(t))  # the member is the same outcome
    assert sorted(o.type for o in decider.store.outcomes_for("offer")) == sorted(WIRE)
    assert all(type(o.type) is str for o in decider.store.outcomes_for("offer"))
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
        assert decider.record_outcome("nothing", t, **_valid(t))
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
