"""A request that brings its own actions (Personalizer's): a catalog offer among them keeps
every guardrail, the caller's own get those that need no catalog entry, their features are
checked as VW's reader reads them, and the frequency cap counted at commit covers them."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from bandit.config.catalog import NO_OFFER, parse_catalog
from bandit.config.policyfile import PolicyFile
from bandit.decide.decider import Decider
from bandit.decide.guardrails import Reason, eligible_offers
from bandit.domain.context import DecisionRequest, History, OfferEvent
from bandit.domain.errors import InvalidRequest
from conftest import NOW, REPO, request

CATALOG = parse_catalog((REPO / "config/offers.yaml").read_text())
G = PolicyFile().guardrails


def own(*ids: str, **over: object) -> DecisionRequest:
    """A happy advisory phone interaction over the caller's own actions ``ids``."""
    return request(actions=[{"id": i, "features": {"kind": {i.replace(" ", "_"): 1}}} for i in ids], **over)


def test_the_caller_actions_replace_the_catalog_and_catalog_offers_keep_their_guardrails() -> None:
    e = eligible_offers(own("ice cream", "premium_bundle", "pharmacy_savings_club"), CATALOG, History(), G, NOW)
    assert e.eligible == (NO_OFFER, "ice cream", "premium_bundle")
    # only the actions sent are considered: the rest of the catalog is not listed as excluded
    assert {(x.offer_id, x.reason) for x in e.excluded} == {("pharmacy_savings_club", Reason.channel)}


@pytest.mark.parametrize("over,reason", [
    ({"customer__opted_out": True}, Reason.opted_out),
    ({"interaction__distress": True}, Reason.distress),
    ({"interaction__sentiment": -0.5}, Reason.low_sentiment),
    ({"interaction__resolved": "false"}, Reason.unresolved),
])
def test_the_interactions_guardrails_exclude_the_callers_actions(over: dict, reason: Reason) -> None:
    e = eligible_offers(own("ice cream", "pizza", **over), CATALOG, History(), G, NOW)
    assert e.eligible == (NO_OFFER,) and {x.reason for x in e.excluded} == {reason}


def test_kill_switch_and_contact_history_apply_by_id() -> None:
    req = own("ice cream", "pizza")
    assert eligible_offers(req, CATALOG, History(), G, NOW, suspended={"pizza"}).eligible == (NO_OFFER, "ice cream")
    declined = History(declined=(OfferEvent(offer_id="pizza", at=NOW - timedelta(days=2)),))
    e = eligible_offers(req, CATALOG, declined, G, NOW)
    assert e.eligible == (NO_OFFER, "ice cream") and e.excluded[0].reason == Reason.declined_recently
    shown = History(shown=(OfferEvent(offer_id="ice cream", at=NOW - timedelta(days=1)),))
    e = eligible_offers(req, CATALOG, shown, G, NOW)
    assert e.eligible == (NO_OFFER,) and {x.reason for x in e.excluded} == {Reason.frequency_cap}


def test_a_request_over_its_own_actions_is_decided_featurized_and_capped_at_commit(decider: Decider) -> None:
    offered = None
    for i in range(300):
        d = decider.decide(own("ice cream", "pizza", event_id=f"own-{i}", customer__id="own-cust",
                               features={"timeOfDay": "morning", "weather": {"sunny": True}}))
        assert d.offer_id in (NO_OFFER, "ice cream", "pizza") and d.content is None
        if d.offer_id != NO_OFFER:
            offered = d
            break
    assert offered is not None, "cold start never explored an action of the caller's in 300 decisions"
    rec = decider.store.get_decision(offered.event_id)
    assert rec.payload["shared"]["timeOfDay"] == "morning" and rec.payload["shared"]["weather"] == {"sunny": True}
    assert "context" in rec.payload["shared"]  # the service's own namespaces are still there
    by_id = dict(zip(rec.action_ids, rec.payload["actions"], strict=True))
    assert by_id[offered.offer_id]["offer"] == {f"id={offered.offer_id.replace(' ', '_')}": 1.0}
    # the next decision for that customer: the cap, over the caller's actions only
    d = decider.decide(own("ice cream", "pizza", event_id="own-capped", customer__id="own-cust"))
    assert d.offer_id == NO_OFFER and {(x.offer_id, x.reason) for x in d.excluded} == {
        ("ice cream", Reason.frequency_cap), ("pizza", Reason.frequency_cap)}


def test_features_vw_cannot_read_are_refused_naming_the_field(decider: Decider) -> None:
    for features, field in [({"visits": ["Mon", "Tue"]}, "features.visits[0]"),
                            ({"big": 1e39}, "features.big"),
                            ({"ns": {"_label_cost": 1}}, "features.ns._label_cost")]:
        with pytest.raises(InvalidRequest, match=f"^{field.replace('[', '.').replace(']', '.')}"):
            decider.decide(own("a", features=features))
    with pytest.raises(InvalidRequest, match=r"^actions\[1\]\.features\.x\[0\]"):
        decider.decide(request(actions=[{"id": "a"}, {"id": "b", "features": {"x": [True]}}]))
    assert decider.store.count_decisions() == 0  # nothing logged for a refused request


@pytest.mark.parametrize("actions,extra,message", [
    ([{"id": "a"}, {"id": "a"}], {}, "appears twice"),
    ([{"id": NO_OFFER}], {}, "built in"),
    ([{"id": "a"}], {"candidates": ["premium_bundle"]}, "not both"),
    ([{"id": "bad\x00id"}], {}, "pattern"),
    ([{"id": "x" * 129}], {}, "at most 128"),
])
def test_bad_action_lists_are_refused(actions: list, extra: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        request(actions=actions, **extra)
