"""Outcomes that make sense: the first answer to an offer stands (a second acceptance with
another value, a decline after an acceptance: ``OutcomeConflict``, nothing written), revenue
is never negative, and an outcome for a decision not yet activated says it counts only once
the decision is. On SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bandit.decide.decider import Decider
from bandit.domain.errors import InvalidRequest, OutcomeConflict
from bandit.log.records import DecisionRecord


def offer(decider: Decider, event_id: str, activated: bool = True) -> str:
    decider.store.log_decision(DecisionRecord(
        event_id=event_id, ts=1_800_000_000.0, mode="online", model_version="m", action_ids=["no_offer", "a"],
        pmf=[0.5, 0.5], chosen_index=1, activated=activated, customer_key="k", payload={"offer_value": 10.0}))
    return event_id


def kinds(decider: Decider, event_id: str) -> list[tuple[str, float | None]]:
    return [(o.type, o.value) for o in decider.store.outcomes_for(event_id)]


@pytest.mark.parametrize(("first", "then"), [
    (("accepted", 15.0), ("accepted", 99.0)),
    (("accepted", 15.0), ("declined", None)),
    (("declined", None), ("accepted", 15.0)),
    (("declined", None), ("converted", 40.0)),
    (("converted", 40.0), ("declined", None)),
])
def test_the_first_answer_stands(decider: Decider, first: tuple, then: tuple) -> None:
    e = offer(decider, "e")
    assert decider.record_outcome(e, first[0], value=first[1]).recorded
    with pytest.raises(OutcomeConflict, match=f"a {then[0]} outcome conflicts with the {first[0]} outcome already "
                                              "recorded; the first outcome stands"):
        decider.record_outcome(e, then[0], value=then[1])
    assert kinds(decider, e) == [first]
    assert not decider.record_outcome(e, first[0], value=first[1]).recorded  # the same again: a duplicate


def test_what_may_follow_an_acceptance(decider: Decider) -> None:
    e = offer(decider, "e")
    assert decider.record_outcome(e, "accepted", value=15.0).recorded
    assert decider.record_outcome(e, "converted", value=40.0).recorded  # purchases after an acceptance add up
    assert decider.record_outcome(e, "converted", value=25.0).recorded
    assert decider.record_outcome(e, "complaint").recorded  # accepted, and still complained
    assert decider.record_outcome(e, "nps", score=3).recorded
    with pytest.raises(OutcomeConflict, match="nps"):
        decider.record_outcome(e, "nps", score=9)  # one score per decision
    assert decider.record_outcome(e, "reward", value=-2.0).recorded  # a reward as such may be negative
    assert [k for k, _ in kinds(decider, e)] == ["accepted", "converted", "converted", "complaint", "nps", "reward"]


@pytest.mark.parametrize("kind", ["accepted", "converted"])
def test_negative_revenue_is_refused(decider: Decider, kind: str) -> None:
    e = offer(decider, "e")
    with pytest.raises(InvalidRequest, match=f"^value: a {kind} outcome's value is revenue, which cannot be negative$"):
        decider.record_outcome(e, kind, value=-1.0)
    assert kinds(decider, e) == []


def test_simultaneous_acceptances_record_one(decider: Decider) -> None:
    e = offer(decider, "e")

    def accept(v: int) -> bool:
        try:
            return decider.record_outcome(e, "accepted", value=float(v)).recorded
        except OutcomeConflict:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(accept, range(1, 41)))
    assert sum(results) == 1 and len(kinds(decider, e)) == 1


def test_an_outcome_before_activation_says_it_counts_once_activated(decider: Decider) -> None:
    e = offer(decider, "deferred", activated=False)
    receipt = decider.record_outcome(e, "accepted", value=15.0)
    assert receipt.recorded and not receipt.counts
    assert decider.activate(e)
    assert decider.record_outcome(e, "complaint").counts
