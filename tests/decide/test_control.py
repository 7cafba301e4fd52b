"""The control group: stable membership by salted hash, the control policy, and its log."""

import pytest
from hypothesis import given, strategies as st

from bandit.config.catalog import NO_OFFER, parse_catalog
from bandit.config.loader import Config
from bandit.decide.control import control_pmf, in_control, rules_choice
from bandit.decide.decider import Decider, customer_key
from bandit.config.policyfile import ControlGroup, PolicyFile
from conftest import REPO, request

CATALOG = parse_catalog((REPO / "config/offers.yaml").read_text())


@given(st.text(min_size=1, max_size=40), st.floats(0, 0.99))
def test_membership_is_stable_and_monotone_in_the_share(key: str, share: float) -> None:
    cfg = ControlGroup(share=share)
    assert in_control(key, cfg) == in_control(key, cfg)
    if in_control(key, cfg):  # growing the share never moves a customer out of control
        assert in_control(key, ControlGroup(share=min(0.99, share + 0.1)))
    assert not in_control(key, ControlGroup(share=0))


def test_the_share_is_what_was_asked_and_the_salt_redraws_the_group() -> None:
    keys = [customer_key("secret", f"cust-{i}") for i in range(20000)]
    a = {k for k in keys if in_control(k, ControlGroup(share=0.05))}
    b = {k for k in keys if in_control(k, ControlGroup(share=0.05, salt="control-2"))}
    assert 0.045 < len(a) / len(keys) < 0.055  # binomial sd 0.0015: 3.3 sd either side
    assert len(a & b) < 0.2 * len(a)  # independent draws overlap ~5%


def test_the_rules_heuristic() -> None:
    ids = [NO_OFFER, *sorted(CATALOG.offers)[:3]]
    best = max(range(1, 4), key=lambda k: CATALOG.offers[ids[k]].value)
    assert rules_choice(ids, CATALOG, "true", 0.5, 0.3) == best
    assert rules_choice(ids, CATALOG, "true", 0.2, 0.3) == 0  # tone too low
    assert rules_choice(ids, CATALOG, "unknown", 0.9, 0.3) == 0  # not resolved
    assert rules_choice([NO_OFFER], CATALOG, "true", 0.9, 0.3) == 0
    assert control_pmf(ids, CATALOG, "true", 0.9, ControlGroup(policy="no_offer")) == [1.0, 0.0, 0.0, 0.0]


def _with_control(decider: Decider, **cfg: object) -> None:
    live = decider.config
    live._config = Config(live.current.catalog, PolicyFile(control=ControlGroup(**cfg)))


def test_control_customers_get_the_control_policy_and_are_flagged_in_the_log(decider: Decider) -> None:
    _with_control(decider, share=0.5)
    seen = {"control": 0, "cold_start": 0}
    for i in range(200):
        cid = f"c{i}"
        d = decider.decide(request(event_id=f"e{i}", customer__id=cid))
        rec = decider.store.get_decision(d.event_id)
        assert d.mode == rec.mode
        expected = in_control(customer_key("test-salt", cid), ControlGroup(share=0.5))
        assert (d.mode == "control") == expected
        seen[d.mode] += 1
        if d.mode == "control":  # deterministic rules choice, logged with probability 1, model's view kept
            want = rules_choice(rec.action_ids, CATALOG, "true", 0.6, 0.3)
            assert d.offer_id == rec.action_ids[want] != NO_OFFER and d.probability == 1.0
            assert sorted(rec.pmf) == [0.0] * (len(rec.pmf) - 1) + [1.0]
            assert sum(rec.payload["shadow"]["pmf"]) == pytest.approx(1.0)
    assert seen["control"] > 60 and seen["cold_start"] > 60
    # a customer stays in their group, whatever the channel
    cid = next(f"c{i}" for i in range(200) if in_control(customer_key("test-salt", f"c{i}"), ControlGroup(share=0.5)))
    assert decider.decide(request(event_id="again", channel="chat", customer__id=cid)).mode == "control"


def test_a_no_offer_control_group_and_guardrails_still_apply(decider: Decider) -> None:
    _with_control(decider, share=0.99, policy="no_offer")
    for i in range(30):
        d = decider.decide(request(event_id=f"n{i}", customer__id=f"n{i}"))
        assert d.offer_id == NO_OFFER and (d.mode == "control" or not in_control(
            customer_key("test-salt", f"n{i}"), ControlGroup(share=0.99)))
    _with_control(decider, share=0.99)
    d = decider.decide(request(event_id="distressed", customer__id="n1", interaction__distress=True))
    assert d.offer_id == NO_OFFER  # the rules policy never sees an offer the guardrails removed
