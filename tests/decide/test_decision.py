"""The decision path: logged before answered, idempotent, outcomes, failure modes."""

from datetime import timedelta

import pytest
from hypothesis import given, strategies as st
from sqlalchemy import text

from bandit.config.catalog import NO_OFFER
from bandit.decide.decider import Decider, NullObserver, customer_key
from bandit.domain.errors import EventConflict, InvalidRequest, UnknownEvent
from bandit.config.policyfile import PolicyFile
from bandit.decide.sampling import baseline_pmf, normalized, sample_index, uniform_from, with_floor
from conftest import NOW, REPO, request


def test_decision_is_logged_with_everything_before_it_returns(decider: Decider) -> None:
    d = decider.decide(request(event_id="ev-1"))
    rec = decider.store.get_decision("ev-1")
    assert rec is not None and d.logged
    assert rec.chosen_id == d.offer_id and rec.probability == pytest.approx(d.probability)
    assert rec.customer_key == customer_key("test-salt", "cust-1") != "cust-1"
    assert "id" not in rec.payload["context"]["customer"]
    assert rec.action_ids[0] == NO_OFFER and len(rec.payload["actions"]) == len(rec.action_ids)
    assert rec.payload["excluded"] and rec.model_version == "cold-start" and d.mode == "cold_start"
    assert sum(rec.pmf) == pytest.approx(1.0)


def test_raw_customer_id_is_nowhere_in_the_log(decider: Decider) -> None:
    decider.decide(request(customer__id="SECRET-CUSTOMER-42"))
    with decider.store.engine.connect() as c:
        dump = " ".join(str(r) for r in c.execute(text("select * from decisions")))
    assert "SECRET-CUSTOMER-42" not in dump


def test_same_event_id_and_request_twice_replays_the_logged_decision(decider: Decider) -> None:
    a = decider.decide(request(event_id="dup"))
    b = decider.decide(request(event_id="dup"))
    assert not a.replayed and b.replayed
    assert b.model_copy(update={"replayed": False}) == a and decider.store.count_decisions() == 1


@pytest.mark.parametrize("other", [
    {"interaction__sentiment": -0.9},
    {"customer__id": "someone-else"},
    {"customer__id": "someone-else", "customer__opted_out": True, "interaction__distress": True,
     "channel": "sms"},
])
def test_same_event_id_with_another_request_is_refused_never_replayed(decider: Decider, other: dict) -> None:
    """A channel using its call id as event id for two customers must not show the first
    customer's offer to the second (opted out, distressed): 409, nothing written."""
    first = decider.decide(request(event_id="call-1", customer__tier="platinum"))
    with pytest.raises(EventConflict, match="call-1"):
        decider.decide(request(event_id="call-1", **other))
    assert decider.store.count_decisions() == 1
    assert decider.store.get_decision("call-1").chosen_id == first.offer_id


def test_cold_start_explores_around_no_offer(decider: Decider) -> None:
    ds = [decider.decide(request(customer__id=f"c{i}")) for i in range(60)]
    n = len(ds[0].ranking)
    assert ds[0].ranking[0].id == NO_OFFER
    assert ds[0].ranking[0].probability == pytest.approx(baseline_pmf(n, 0.1)[0])
    assert {d.offer_id for d in ds} - {NO_OFFER}, "cold start never explored"
    assert sum(d.offer_id == NO_OFFER for d in ds) > 40


def test_sampling_replays_from_event_id() -> None:
    pmf = [0.5, 0.3, 0.2]
    picks = [sample_index(pmf, uniform_from(f"e{i}", "s")) for i in range(2000)]
    assert picks == [sample_index(pmf, uniform_from(f"e{i}", "s")) for i in range(2000)]
    assert abs(picks.count(0) / 2000 - 0.5) < 0.05 and sample_index([0.0, 1.0], 0.0) == 1


@given(weights=st.lists(st.floats(0, 1), min_size=1, max_size=12), floor=st.floats(0, 0.999))
def test_the_floor_keeps_a_pmf_and_the_models_choice(weights: list[float], floor: float) -> None:
    pmf = normalized(weights)
    served = with_floor(pmf, floor)
    assert sum(served) == pytest.approx(1) and min(served) >= floor / len(pmf) - 1e-12
    assert served.index(max(served)) == pmf.index(max(pmf))  # the floor never changes the model's choice
    assert with_floor(pmf, 0.0) == pmf and with_floor([1.0], floor) == pytest.approx([1.0])


def test_unknown_candidate_is_a_precise_error(decider: Decider) -> None:
    with pytest.raises(InvalidRequest, match=r"candidates\[1\]: unknown offer id 'nope'"):
        decider.decide(request(candidates=["premium_bundle", "nope"]))
    assert decider.store.count_decisions() == 0


def test_outcomes_append_dedupe_and_reject_unknown(decider: Decider) -> None:
    d = decider.decide(request(event_id="o1", candidates=["premium_bundle"]))
    with pytest.raises(UnknownEvent, match="unknown event_id 'zzz'"):
        decider.record_outcome("zzz", "complaint")
    if d.offer_id == NO_OFFER:
        with pytest.raises(InvalidRequest, match="made no offer"):
            decider.record_outcome("o1", "accepted")
    else:
        assert decider.record_outcome("o1", "accepted", value=40.0).recorded
        assert not decider.record_outcome("o1", "accepted", value=40.0).recorded
    assert decider.record_outcome("o1", "nps", score=9).recorded
    assert decider.record_outcome("o1", "complaint").recorded
    with pytest.raises(InvalidRequest, match="score"):
        decider.record_outcome("o1", "nps", score=11)
    with pytest.raises(InvalidRequest, match="type"):
        decider.record_outcome("o1", "bought")
    types = [o.type for o in decider.store.outcomes_for("o1")]
    assert types.count("nps") == 1 and types.count("complaint") == 1


def test_complaint_logged_blocks_offers_for_30_days(decider: Decider) -> None:
    decider.decide(request(event_id="c1"))
    decider.record_outcome("c1", "complaint", now=NOW)
    later = decider.decide(request(event_id="c2"), now=NOW + timedelta(days=3))
    assert later.offer_id == NO_OFFER and {e.reason for e in later.excluded} == {"recent_complaint"}


def test_offer_shown_caps_the_customer_on_every_channel(decider: Decider) -> None:
    from conftest import request as r
    first = None
    for i in range(200):
        d = decider.decide(r(event_id=f"f{i}", customer__id="capped", candidates=["premium_bundle"]))
        if d.offer_id != NO_OFFER:
            first = d
            break
    assert first is not None
    nxt = decider.decide(r(event_id="next", customer__id="capped", channel="chat"))
    assert nxt.offer_id == NO_OFFER and {e.reason for e in nxt.excluded} == {"frequency_cap"}


def test_deferred_decision_is_not_history_until_activated(decider: Decider) -> None:
    d = None
    for i in range(200):
        d = decider.decide(request(event_id=f"d{i}", customer__id="defer", defer_activation=True,
                                   candidates=["premium_bundle"]))
        if d.offer_id != NO_OFFER:
            break
    assert d is not None and d.offer_id != NO_OFFER and not d.activated
    assert decider.history_of("defer", NOW).shown == ()
    assert decider.activate(d.event_id) is True and decider.activate(d.event_id) is False
    assert [e.offer_id for e in decider.history_of("defer", NOW).shown] == ["premium_bundle"]
    with pytest.raises(UnknownEvent):
        decider.activate("never-made")


def test_a_decision_that_cannot_be_logged_is_never_an_offer(decider: Decider) -> None:
    """Break the real log (its table disappears), decide, restore: no offer, nothing written."""
    failures = []
    decider.observer = type("O", (NullObserver,), {"decided": lambda *a, **k: None, "outcome": lambda *a: None,
                                      "log_failed": lambda self, e: failures.append(e)})()
    eng = decider.store.engine
    with eng.begin() as c:
        c.execute(text("alter table outcomes rename to outcomes_away"))
        c.execute(text("alter table decisions rename to decisions_away"))
    try:
        for i in range(30):
            d = decider.decide(request(event_id=f"x{i}", customer__id=f"x{i}", candidates=["premium_bundle"]))
            assert d.offer_id == NO_OFFER and not d.logged and d.mode == "not_logged" and d.content is None
    finally:
        with eng.begin() as c:
            c.execute(text("alter table decisions_away rename to decisions"))
            c.execute(text("alter table outcomes_away rename to outcomes"))
    assert len(failures) == 30 and decider.store.count_decisions() == 0
    assert decider.decide(request(event_id="after")).logged


def test_apprentice_serves_baseline_and_logs_the_model_choice(decider: Decider, live) -> None:
    from bandit.config.loader import Config
    live._config = Config(live.current.catalog, PolicyFile(mode="apprentice"))
    d = decider.decide(request(event_id="ap"))
    rec = decider.store.get_decision("ap")
    assert d.offer_id == NO_OFFER and d.probability == 1.0 and d.mode == "apprentice"
    assert rec.payload["shadow"]["chosen"] in rec.action_ids
    assert sum(rec.payload["shadow"]["pmf"]) == pytest.approx(1.0)


def test_broken_model_falls_back_to_cold_start(decider: Decider) -> None:
    from bandit.decide.decider import ModelSlot

    class Broken:
        version = "v-broken"

        def pmf(self, shared, actions):
            raise RuntimeError("boom")

    failed = []
    decider.observer = type("O", (NullObserver,), {"decided": lambda *a, **k: None,
                                      "scorer_failed": lambda self, v, e: failed.append((v, str(e)))})()
    decider.models = ModelSlot(Broken())
    d = decider.decide(request())
    assert d.model_version == "cold-start" and d.logged
    assert failed == [("v-broken", "boom")]  # counted, not silent


def test_a_bug_while_reading_the_log_is_raised_not_answered_as_no_offer(decider: Decider,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the database failing means "no offer, not logged"; a bug is a bug."""
    def buggy(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug")

    monkeypatch.setattr(decider.store, "history", buggy)
    with pytest.raises(TypeError, match="a bug"):
        decider.decide(request(event_id="bug"))


def test_an_offer_whose_content_renders_empty_is_not_made(settings, store) -> None:
    """Its template's only part never applies: no offer, reason template_error, counted."""
    import yaml

    from bandit.config.loader import LiveConfig
    from bandit.decide.decider import ModelSlot
    from bandit.decide.vw import ColdStart

    raw = yaml.safe_load((REPO / "config/offers.yaml").read_text())
    for o in raw["offers"]:
        if o["id"] == "premium_bundle":
            o["templates"]["phone"] = [{"text": "Never shown", "when": "interaction.sentiment > 5"}]
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "offers.yaml").write_text(yaml.safe_dump(raw))
    (settings.home / "policy.yaml").write_text("exploration: {cold_start_epsilon: 1.0}\ncontrol: {share: 0}\n")
    live = LiveConfig(settings.model_copy(update={"catalog": settings.home / "offers.yaml",
                                                  "policy": settings.home / "policy.yaml"}))
    failed = []
    observer = type("O", (NullObserver,), {"decided": lambda *a, **k: None, "template_failed": lambda self, o: failed.append(o)})()
    decider = Decider(live, store, ModelSlot(ColdStart(1.0)), "test-salt", observer=observer, clock=lambda: NOW)
    answers = [decider.decide(request(event_id=f"t{i}", customer__id=f"t{i}", candidates=["premium_bundle"]))
               for i in range(20)]
    assert all(d.offer_id == NO_OFFER for d in answers)
    hit = [d for d in answers if ("premium_bundle", "template_error") in [(e.offer_id, e.reason) for e in d.excluded]]
    assert hit and len(failed) == len(hit)
    logged = store.get_decision(hit[0].event_id)
    assert logged is not None and logged.action_ids == [NO_OFFER] and logged.pmf == [1.0]
