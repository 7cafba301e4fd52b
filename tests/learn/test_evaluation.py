"""Policies compared on a held-out log, and the promotion gate."""

import numpy as np
import pytest

from bandit.config.catalog import load_catalog
from bandit.learn.evaluation import (
    Comparison,
    PolicyEvaluation,
    eval_set,
    eval_set_from_store,
    evaluate,
    model_policy,
    no_offer_policy,
    rules_policy,
    uniform_policy,
)
from bandit.deploy.gate import gate
from bandit.learn.ope import Estimate
from bandit.config.policyfile import Promotion
from bandit.domain.outcomes import RewardConfig
from bandit.log.records import DecisionRecord
from bandit.log.store import DecisionStore
from bandit.domain.outcomes import Outcome
from bandit.decide.vw import ColdStart

CFG = RewardConfig(window_hours=1, complaint_penalty=100)
T0 = 1_800_000_000.0
CATALOG = load_catalog(__import__("pathlib").Path("config/offers.yaml"))


def rec(eid: str, ids: list[str], chosen: int, pmf: list[float], *, activated: bool = True, ts: float = T0,
        resolved: str = "true", sentiment: float = 0.5) -> DecisionRecord:
    return DecisionRecord(eid, ts, "online", "m", ids, pmf, chosen, activated, customer_key="k",
                          payload={"offer_value": 10.0, "context": {"interaction": {"resolved": resolved,
                                                                                   "sentiment": sentiment}},
                                   "shared": {"context": {"x": 1.0}},
                                   "actions": [{"offer": {f"id={a}": 1.0}} for a in ids]})


def test_only_activated_decisions_with_a_closed_window_count(store: DecisionStore) -> None:
    ids = ["no_offer", "fiber_upgrade"]
    store.log_decisions([rec("a", ids, 1, [0.5, 0.5]), rec("shown-later", ids, 1, [0.5, 0.5], activated=False),
                         rec("too-new", ids, 1, [0.5, 0.5], ts=T0 + 7200), rec("c", ids, 1, [0.5, 0.5])])
    store.add_outcome(Outcome("a", "accepted", T0 + 60, value=25.0))
    store.add_outcome(Outcome("c", "complaint", T0 + 60))
    store.add_outcome(Outcome("c", "accepted", T0 + 7200, value=99.0))  # after the window: not learned
    ev = eval_set_from_store(store, CFG, None, None, as_of=T0 + 3600)
    assert [r.event_id for r in ev.records] == ["a", "c"]
    assert list(ev.rewards.reward) == [25.0, -100.0] and list(ev.complaints.reward) == [0.0, 1.0]
    assert list(ev.rewards.propensity) == [0.5, 0.5]


def test_baseline_policies() -> None:
    ev = eval_set([(rec("1", ["no_offer", "fiber_upgrade", "premium_bundle"], 0, [0.8, 0.1, 0.1]), []),
                   (rec("2", ["no_offer", "fiber_upgrade"], 1, [0.5, 0.5], sentiment=0.1), []),
                   (rec("3", ["no_offer"], 0, [1.0], resolved="false"), [])], CFG, as_of=T0 + 3600)
    assert no_offer_policy(ev)[:, 0].tolist() == [1, 1, 1]
    assert np.allclose(uniform_policy(ev), [[1 / 3] * 3, [0.5, 0.5, 0], [1, 0, 0]])
    best = max(("fiber_upgrade", "premium_bundle"), key=lambda o: CATALOG.offers[o].value)
    rules = rules_policy(CATALOG)(ev)
    assert rules[0, ["no_offer", "fiber_upgrade", "premium_bundle"].index(best)] == 1.0
    assert rules[1, 0] == 1.0 and rules[2, 0] == 1.0  # tone too low; nothing eligible
    assert model_policy(ColdStart(0.1))(ev)[0].tolist() == pytest.approx([0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3])


def test_evaluate_orders_policies_by_what_they_would_have_earned() -> None:
    # Logged uniformly over [no_offer, fiber_upgrade]: the offer earns 10, no_offer 0.
    rng = np.random.default_rng(1)
    pairs = []
    for i in range(4000):
        chosen = int(rng.integers(0, 2))
        outs = [Outcome(str(i), "accepted", T0 + 1, value=10.0)] if chosen else []
        pairs.append((rec(str(i), ["no_offer", "fiber_upgrade"], chosen, [0.5, 0.5]), outs))
    ev = eval_set(pairs, CFG, as_of=T0 + 3600)

    def always_offer(e):  # noqa: ANN001, ANN202
        pi = np.zeros((len(e), 2))
        pi[:, 1] = 1.0
        return pi

    cmp = evaluate(ev, {"no_offer": no_offer_policy, "uniform": uniform_policy, "offer": always_offer})
    assert cmp.policies["no_offer"].reward["snips"].value == 0.0
    assert cmp.policies["offer"].reward["snips"].value == pytest.approx(10.0)
    for name in ("ips", "dr"):
        e = cmp.policies["uniform"].reward[name]
        assert e.low < 5.0 < e.high
    assert cmp.policies["offer"].offer_rate == 1.0 and cmp.policies["uniform"].ess == pytest.approx(4000)
    assert [r["policy"] for r in cmp.table()] == ["no_offer", "uniform", "offer"]


def _ev(name: str, value: float, low: float, complaints: float, ess: float = 5000,
        complaints_high: float | None = None) -> PolicyEvaluation:
    est = {k: Estimate(k, value, low, value + (value - low), 0.1, 5000, ess) for k in ("ips", "snips", "dr")}
    high = complaints + 0.002 if complaints_high is None else complaints_high
    return PolicyEvaluation(name, est, Estimate("snips", complaints, max(0.0, complaints - 0.002), high, 0.001,
                                                5000, ess), 0.3, ess)


def _cmp(*evs: PolicyEvaluation, n: int = 5000, diff_low: float | None = None) -> Comparison:
    """The first policy against the second; the paired difference of their values has lower
    bound ``diff_low`` (default: the difference of their lower bounds)."""
    a, b = evs[0], evs[1]
    value = a.reward["snips"].value - b.reward["snips"].value
    low = a.reward["snips"].low - b.reward["snips"].low if diff_low is None else diff_low
    d = {k: Estimate(f"{k} difference", value, low, 2 * value - low, 0.1, n, a.ess) for k in ("ips", "snips", "dr")}
    return Comparison(n, {e.policy: e for e in evs}, {(a.policy, b.policy): d})


GATE = Promotion(estimator="snips", non_inferiority_margin=0.1, complaint_tolerance=0.0, max_complaint_rate=0.02, min_events=1000,
                 min_ess=100)


def test_gate_promotes_a_better_candidate_and_says_why() -> None:
    v = gate(_cmp(_ev("candidate", 3.0, 2.5, 0.005), _ev("champion", 2.0, 1.5, 0.006), diff_low=0.4), GATE)
    assert v.promote and "candidate minus champion: +1.0000 (snips), paired lower bound +0.4000 > -0.1" in v.summary()


def test_gate_promotes_a_slightly_better_candidate_superiority_would_refuse() -> None:
    """Estimated better, paired bound a little below zero but above -margin: promoted; the
    former superiority rule (margin 0) kept the champion."""
    cmp = _cmp(_ev("candidate", 2.05, 1.5, 0.005), _ev("champion", 2.0, 1.5, 0.005), diff_low=-0.04)
    assert gate(cmp, GATE).promote
    v = gate(cmp, GATE.model_copy(update={"non_inferiority_margin": 0.0}))
    assert not v.promote and "is not above +0 (-non_inferiority_margin)" in v.summary()


@pytest.mark.parametrize(("cand", "champ", "n", "diff_low", "expected"), [
    (_ev("candidate", 3.0, 2.05, 0.005), _ev("champion", 2.0, 1.5, 0.006), 5000, -0.15,
     "is not above -0.1 (-non_inferiority_margin)"),
    (_ev("candidate", 2.0, 1.6, 0.005), _ev("champion", 2.0, 1.5, 0.006), 5000, -0.05, "the estimate is not above"),
    (_ev("candidate", 3.0, 2.5, 0.008), _ev("champion", 2.0, 1.5, 0.006), 5000, 0.4, "above champion's 0.0060 + 0"),
    (_ev("candidate", 3.0, 2.5, 0.015, complaints_high=0.025), _ev("champion", 2.0, 1.5, 0.016), 5000, 0.4,
     "has upper bound 0.0250, above the cap 0.02"),
    (_ev("candidate", 3.0, 2.5, 0.005, ess=50), _ev("champion", 2.0, 1.5, 0.006), 5000, 0.4,
     "effective sample size"),
    (_ev("candidate", 3.0, 2.5, 0.005), _ev("champion", 2.0, 1.5, 0.006), 500, 0.4, "only 500 evaluated"),
])
def test_gate_keeps_the_champion_and_records_why(cand: PolicyEvaluation, champ: PolicyEvaluation, n: int,
                                                 diff_low: float, expected: str) -> None:
    v = gate(_cmp(cand, champ, n=n, diff_low=diff_low), GATE)
    assert not v.promote and expected in v.summary()


def test_a_complaint_tolerance_lets_a_candidate_level_with_the_champion_through() -> None:
    cmp = _cmp(_ev("candidate", 3.0, 2.5, 0.0065), _ev("champion", 2.0, 1.5, 0.006), diff_low=0.4)
    assert not gate(cmp, GATE).promote
    assert gate(cmp, GATE.model_copy(update={"complaint_tolerance": 0.001})).promote


def test_the_personalizer_rule_reads_each_policys_own_interval() -> None:
    """Auto-Optimize: estimate and own lower bound above the champion's; the paired
    difference is not read."""
    rule = GATE.model_copy(update={"rule": "personalizer"})
    cmp = _cmp(_ev("candidate", 2.2, 1.6, 0.005), _ev("champion", 2.0, 1.5, 0.005), diff_low=-5.0)
    v = gate(cmp, rule)
    assert v.promote and "candidate +2.2000 [+1.6000, +2.8000] vs champion +2.0000 [+1.5000, +2.5000]" in v.summary()
    v = gate(_cmp(_ev("candidate", 2.2, 1.4, 0.005), _ev("champion", 2.0, 1.5, 0.005), diff_low=0.1), rule)
    assert not v.promote and "estimate and lower bound not both above champion's" in v.summary()


def test_gate_needs_the_paired_estimate() -> None:
    cmp = Comparison(5000, {e.policy: e for e in (_ev("candidate", 3.0, 2.5, 0.005), _ev("champion", 2.0, 1.5, 0.006))})
    v = gate(cmp, GATE)
    assert not v.promote and "no paired estimate of candidate minus champion" in v.summary()


def test_first_model_must_beat_no_offer() -> None:
    no = _ev("no_offer", 0.0, 0.0, 0.0)
    assert gate(_cmp(_ev("candidate", 1.0, 0.5, 0.0), no), GATE, champion=None).promote
    v = gate(_cmp(_ev("candidate", 1.0, -0.5, 0.0), no), GATE, champion=None)
    assert not v.promote and "candidate minus no_offer" in v.summary()
    # no_offer never draws a complaint: a first model is held to the cap, not to zero
    assert gate(_cmp(_ev("candidate", 1.0, 0.5, 0.01), no), GATE, champion=None).promote
    v = gate(_cmp(_ev("candidate", 1.0, 0.5, 0.019, complaints_high=0.03), no), GATE, champion=None)
    assert not v.promote and v.reasons == ["candidate's complaint rate 0.0190 has upper bound 0.0300, above the cap 0.02"]


def test_the_former_margin_setting_is_refused_with_its_new_name() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="promotion.margin is now promotion.non_inferiority_margin.*"
                                              "margin 0.05 is non_inferiority_margin -0.05"):
        Promotion.model_validate({"margin": 0.05})


def test_the_gate_promotes_a_better_candidate_its_own_interval_could_not_show() -> None:
    """The reason the gate reads a paired difference: two policies that agree on most rounds
    share the log's noise. Here the champion offers fiber_upgrade everywhere; the candidate
    too, except in the tenth of contexts where the offer is never bought and draws
    complaints, and there it makes none. The revenue noise is the same for both, so the
    candidate's own lower bound stays below the champion's estimate, while the paired
    interval of the difference is clearly above zero. (On 30 seeds of this log the paired
    test promoted 28 times; the former rule, the candidate's lower bound above the
    champion's estimate, once.)"""
    rng = np.random.default_rng(5)
    ids = ["no_offer", "fiber_upgrade"]
    pairs = []
    for i in range(4000):
        chosen = int(rng.random() < 0.9)  # logged: 90% the offer
        risky = i % 10 == 0  # a context where the offer draws complaints
        outs = []
        if chosen and not risky and rng.random() < 0.1:
            outs.append(Outcome(str(i), "accepted", T0 + 1, value=150.0))
        if chosen and risky and rng.random() < 0.1:
            outs.append(Outcome(str(i), "complaint", T0 + 1))
        pairs.append((rec(str(i), ids, chosen, [0.1, 0.9], sentiment=0.0 if risky else 0.5), outs))
    ev = eval_set(pairs, CFG, as_of=T0 + 3600)

    def champion(e):  # noqa: ANN001, ANN202
        pi = np.zeros((len(e), 2))
        pi[:, 1] = 1.0
        return pi

    def candidate(e):  # noqa: ANN001, ANN202
        pi = champion(e)
        for k, r in enumerate(e.records):
            if r.payload["context"]["interaction"]["sentiment"] == 0.0:
                pi[k] = [1.0, 0.0]
        return pi

    cmp = evaluate(ev, {"candidate": candidate, "champion": champion}, paired=[("candidate", "champion")])
    cand, champ = cmp.policies["candidate"].reward["snips"], cmp.policies["champion"].reward["snips"]
    diff = cmp.difference("candidate", "champion")
    assert diff is not None and diff.value == pytest.approx(cand.value - champ.value)
    assert cand.low < champ.value  # the former rule would have kept the champion
    assert diff.low > 0 and diff.high - diff.low < (cand.high - cand.low) / 2
    assert gate(cmp, Promotion(min_events=1000, min_ess=100)).promote
