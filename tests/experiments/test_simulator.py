"""The contact-center simulator: seeded, faithful to its parameter file, an oracle that
really is best on its own model, complaints that rise sharply for unhappy customers, and
a world where choosing well pays (the oracle beats the rules heuristic and random)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit.config.catalog import NO_OFFER, Catalog, load_catalog
from bandit.domain.context import History
from bandit.decide.control import rules_choice
from bandit.domain.errors import ConfigError
from bandit.decide.guardrails import eligible_offers
from bandit.config.policyfile import PolicyFile
from experiments.simulator import (
    DEFAULT_PARAMS,
    Interaction,
    Response,
    Simulator,
    SimParams,
    SimState,
    load_params,
    outcomes,
    parse_params,
)

REPO = Path(__file__).resolve().parents[2]
DAYS = 3
OFFERS = sorted(load_catalog(REPO / "config/offers.yaml").offers)


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    return load_catalog(REPO / "config/offers.yaml")


@lru_cache(maxsize=1)
def params() -> SimParams:
    return load_params()


@lru_cache(maxsize=4)
def sim(seed: int = 11) -> Simulator:
    return Simulator(params(), catalog(), seed)


@lru_cache(maxsize=8)
def day(d: int, seed: int = 11) -> tuple[Interaction, ...]:
    return tuple(sim(seed).interactions(d))


def with_interaction(inter: Interaction, **over: object) -> Interaction:
    """The same interaction with some of ``request.interaction``'s fields replaced (validated)."""
    i = type(inter.request.interaction).model_validate({**inter.request.interaction.model_dump(), **over})
    return dataclasses.replace(inter, request=inter.request.model_copy(update={"interaction": i}))


def snapshot(inters: list[Interaction] | tuple[Interaction, ...]) -> list[tuple]:
    return [(x.event_id, x.ts, x.customer, x.request.model_dump()) for x in inters]


# -- reproducibility --------------------------------------------------------------------


def test_same_seed_same_world_different_seed_different() -> None:
    a, b = Simulator(params(), catalog(), 5), Simulator(params(), catalog(), 5)
    assert a.customers == b.customers
    assert snapshot(a.interactions(2)) == snapshot(b.interactions(2))
    other = Simulator(params(), catalog(), 6)
    assert other.customers != a.customers
    assert snapshot(other.interactions(2)) != snapshot(a.interactions(2))
    # not only other customers: other channels, requests, tones and times
    assert [(x.ts, x.request.channel, x.request.interaction) for x in other.interactions(2)] != \
        [(x.ts, x.request.channel, x.request.interaction) for x in a.interactions(2)]
    assert snapshot(a.interactions(1)) != snapshot(a.interactions(2))  # days differ too


def test_interactions_do_not_depend_on_what_policies_did() -> None:
    """Common random numbers: a day is a pure function of (seed, day), whatever was drawn
    before (responses, other days, in any order)."""
    s = Simulator(params(), catalog(), 5)
    first = snapshot(s.interactions(3))
    state = s.new_state()
    for inter in s.interactions(0)[:300]:
        s.respond(inter, "sales_specialist_callback", state)
    s.interactions(7)
    assert snapshot(s.interactions(3)) == first


def test_same_offer_same_interaction_same_draw_in_every_run() -> None:
    """Two runs (two states) making the same offer see the same response, and the same
    seed gives the same responses; another seed's dice differ."""
    s1, s2, s3 = Simulator(params(), catalog(), 5), Simulator(params(), catalog(), 5), Simulator(params(), catalog(), 9)
    offer = "sales_specialist_callback"
    inters = [x for x in s1.interactions(0) if x.customer.last_complaint is None][:800]
    r1 = [s1.respond(x, offer, SimState()) for x in inters]
    r2 = [s2.respond(x, offer, SimState()) for x in inters]
    r3 = [s3.respond(x, offer, SimState()) for x in inters]
    assert r1 == r2
    assert any(r.accepted for r in r1) and r1 != r3


def test_event_ids_and_times() -> None:
    inters = day(1)
    cal = params().calendar
    assert len(inters) == cal.interactions_per_day
    assert [x.event_id for x in inters] == [f"sim-11-1-{i}" for i in range(len(inters))]
    assert all(x.request.event_id == x.event_id for x in inters)
    assert [x.ts for x in inters] == sorted(x.ts for x in inters)
    assert all(x.ts.date() == cal.start + timedelta(days=1) and cal.open_hour <= x.ts.hour < cal.close_hour
               for x in inters)
    assert all(x.request.customer.id == x.customer.id for x in inters)


# -- faithful to the parameter file -------------------------------------------------------


def test_proportions_follow_the_parameters() -> None:
    """Channels, request types, intents and tiers within ~4 standard errors of the file."""
    p = params()
    inters = [x for d in range(DAYS) for x in day(d)]
    n = len(inters)
    channels = Counter(x.request.channel for x in inters)
    for ch, cp in p.channels.items():
        assert channels[ch] / n == pytest.approx(cp.share, abs=0.025), ch
    types = Counter(x.request.interaction.request_type for x in inters)
    for rt, rp in p.request_types.items():
        assert types[rt] / n == pytest.approx(rp.share, abs=0.025), rt
    refills = [x for x in inters if x.request.interaction.intent == "prescription_refill"]
    transactional = types["transactional"]
    assert len(refills) / transactional == pytest.approx(
        p.request_types["transactional"].intents["prescription_refill"].share, abs=0.04)
    assert all(0.95 <= x.request.attributes["drugstore_price"] / x.request.attributes["refill_price"] <= 1.31
               for x in refills)
    customers = sim().customers
    tiers = Counter(c.tier for c in customers)
    for tier, tp in p.population.tiers.items():
        assert tiers[tier] / len(customers) == pytest.approx(tp.share, abs=0.015), tier
    assert sum(c.opted_out for c in customers) / len(customers) == pytest.approx(
        p.population.opted_out_share, abs=0.01)


def test_respond_draws_with_the_expected_probabilities() -> None:
    """Over thousands of responses, acceptances, complaints and revenue match ``expected``
    (each interaction gets its most acceptable offer, so acceptances are frequent)."""
    s = sim()
    inters = [x for d in range(DAYS) for x in day(d)]
    state = SimState()
    exp, resp = [], []
    for x in inters:  # the expectation under the run's state as it is when the offer is made
        offer = max(OFFERS, key=lambda o, x=x: s.p_accept(x, o))
        exp.append(s.expected(x, offer, state))
        resp.append(s.respond(x, offer, state))
    n = len(inters)
    for drawn, p in (([r.accepted for r in resp], [e.p_accept for e in exp]),
                     ([r.complaint for r in resp], [e.p_complaint for e in exp])):
        sd = sum(q * (1 - q) for q in p) ** 0.5
        assert abs(sum(drawn) - sum(p)) < 4 * sd
    assert sum(r.revenue for r in resp) == pytest.approx(
        sum(e.revenue for e, r in zip(exp, resp, strict=True) if r.accepted))
    assert sum(r.revenue for r in resp) > 0


def test_a_complaint_changes_only_its_own_run() -> None:
    """``respond`` remembers a complaint in the run's state: that customer's complaint risk
    rises in this run and not in another."""
    s = sim()
    # an unhappy, unresolved moment: complaints are likely, so one is found quickly
    for x in day(0):
        if x.customer.last_complaint is not None:
            continue
        bad = with_interaction(x, sentiment=-0.6, resolved="false")
        mine, other = SimState(), SimState()
        r = s.respond(bad, "sales_specialist_callback", mine)
        if r.complaint:
            break
    else:
        pytest.fail("no complaint drawn")
    assert mine.last_complaint == {x.customer.id: x.ts}
    later = dataclasses.replace(x, ts=x.ts + timedelta(days=2))
    assert s.expected(later, "sales_specialist_callback", mine).p_complaint > \
        3 * s.expected(later, "sales_specialist_callback", other).p_complaint
    gone = dataclasses.replace(x, ts=x.ts + timedelta(days=params().complaint.memory_days + 1))
    assert s.expected(gone, "sales_specialist_callback", mine) == s.expected(gone, "sales_specialist_callback", other)


def test_outcomes_map_to_the_service_calls() -> None:
    assert outcomes(Response("fiber_upgrade", True, False, 156.0)) == [("accepted", 156.0)]
    assert outcomes(Response("fiber_upgrade", False, False, 0.0)) == [("declined", None)]
    assert outcomes(Response("fiber_upgrade", False, True, 0.0)) == [("declined", None), ("complaint", None)]
    assert outcomes(Response(NO_OFFER, False, False, 0.0)) == []
    x = day(0)[0]
    assert sim().respond(x, NO_OFFER, SimState()) == Response(NO_OFFER, False, False, 0.0)
    assert sim().expected(x, NO_OFFER).reward == 0.0


# -- the hidden model ---------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(d=st.integers(0, DAYS - 1), k=st.integers(0, 1999), subset=st.lists(st.sampled_from(OFFERS), unique=True),
       recent=st.booleans())
def test_oracle_is_best_on_its_own_model(d: int, k: int, subset: list[str], recent: bool) -> None:
    s = sim()
    inter = day(d)[k % len(day(d))]
    state = SimState({inter.customer.id: inter.ts - timedelta(days=1)} if recent else {})
    eligible = [NO_OFFER, *subset]
    best = s.oracle(inter, eligible, state)
    assert best in eligible
    top = s.expected(inter, best, state).reward
    assert top >= 0.0
    for a in eligible:
        assert top >= s.expected(inter, a, state).reward
    if best != NO_OFFER:
        assert top > 0.0


def test_expected_reward_is_acceptance_revenue_minus_complaint_penalty() -> None:
    s = Simulator(params(), catalog(), 11, complaint_penalty=250.0)
    for x in day(0)[:200]:
        for offer in ("fiber_upgrade", "premium_bundle", "sales_specialist_callback"):
            e = s.expected(x, offer)
            assert 0 <= e.p_accept <= params().acceptance.max and 0 < e.p_complaint < 1
            assert e.reward == pytest.approx(e.p_accept * e.revenue - e.p_complaint * 250.0)
            tier = params().population.tiers[x.customer.tier]
            assert e.revenue == pytest.approx(catalog().offers[offer].value * tier.value_multiplier)


def test_complaints_rise_sharply_for_unhappy_unresolved_or_recent_complainers() -> None:
    """The stolen-card story: the same offer to a happy, resolved customer rarely offends;
    to an unhappy, unresolved, distressed or recently complaining one it often does."""
    s = sim()
    x = next(i for i in day(0)
             if i.customer.last_complaint is None and i.request.interaction.request_type == "advisory")
    offer = "card_protection_plan"
    happy = with_interaction(x, sentiment=0.7, resolved="true", distress=False)
    base = s.expected(happy, offer, SimState()).p_complaint
    assert base < 0.01
    unhappy = s.expected(with_interaction(happy, sentiment=-0.5), offer, SimState()).p_complaint
    unresolved = s.expected(with_interaction(happy, resolved="false"), offer, SimState()).p_complaint
    distressed = s.expected(with_interaction(happy, distress=True), offer, SimState()).p_complaint
    recent = s.expected(happy, offer, SimState({x.customer.id: x.ts - timedelta(days=3)})).p_complaint
    assert unhappy > 20 * base and unresolved > 4 * base and distressed > 20 * base and recent > 8 * base
    # a complaint from before day 0 counts in every run
    y = next(i for i in day(0) if i.customer.last_complaint is not None)
    y = with_interaction(y, request_type="advisory", intent="choose_plan", sentiment=0.7, resolved="true",
                         distress=False)
    forgot = dataclasses.replace(y, customer=dataclasses.replace(y.customer, last_complaint=None))
    assert s.expected(y, offer, SimState()).p_complaint > 8 * s.expected(forgot, offer, SimState()).p_complaint
    assert y.request.history.last_complaint == y.customer.last_complaint  # and the channel says so
    stolen_card = with_interaction(x, sentiment=-0.4, resolved="false", distress=True)
    assert s.expected(stolen_card, offer, SimState()).p_complaint > 0.5
    assert s.expected(stolen_card, offer, SimState()).reward < -40
    # and the mood cuts acceptance the other way
    assert s.p_accept(with_interaction(happy, sentiment=-0.5), offer) < 0.5 * s.p_accept(happy, offer)


def test_nobody_buys_what_they_hold() -> None:
    s = sim()
    x = next(i for i in day(0) if i.request.interaction.intent == "slow_internet"
             and "fiber_1g" not in i.customer.products and i.customer.region != "south")
    c = x.request.customer
    held = type(c).model_validate({**c.model_dump(), "products": (*c.products, "fiber_1g")})
    holder = dataclasses.replace(x, request=x.request.model_copy(update={"customer": held}))
    assert s.p_accept(x, "fiber_upgrade") > 0.1
    assert s.p_accept(holder, "fiber_upgrade") == 0.0


def test_the_world_rewards_choosing_well() -> None:
    """With the real guardrails, the oracle earns more than the rules heuristic, which
    earns more than nothing; both beat uniform random; and the rules do not complain less
    than the oracle (a good policy need not buy revenue with complaints)."""
    s, cat, policy = sim(), catalog(), PolicyFile()
    totals = Counter()
    n = 0
    for d in range(DAYS):
        for x in day(d):
            n += 1
            # the channel's history: empty but for complaints from before day 0
            assert x.request.history.shown == () and x.request.history.declined == ()
            history = x.request.history if x.request.history.last_complaint else History()
            eligible = eligible_offers(x.request, cat, history, policy.guardrails, x.ts).eligible
            i = x.request.interaction
            rules = eligible[rules_choice(eligible, cat, i.resolved.value, i.sentiment,
                                          policy.control.rules_min_sentiment)]
            for name, a in (("oracle", s.oracle(x, eligible)), ("rules", rules)):
                e = s.expected(x, a)
                totals[name] += e.reward
                totals[name + "_complaint"] += e.p_complaint
            es = [s.expected(x, a) for a in eligible]
            totals["random"] += sum(e.reward for e in es) / len(es)
    mean = {k: v / n for k, v in totals.items()}
    assert mean["oracle"] > 1.5 * mean["rules"] > 0
    assert mean["rules"] > mean["random"]
    assert mean["oracle"] > mean["random"]
    assert mean["rules_complaint"] >= mean["oracle_complaint"]


# -- the parameter file -------------------------------------------------------------------


def test_shipped_file_loads_and_every_section_is_commented() -> None:
    p = load_params()
    assert p == load_params(DEFAULT_PARAMS)
    assert p.reward.complaint_penalty == PolicyFile().reward.complaint_penalty
    text = DEFAULT_PARAMS.read_text()
    for section in ("population:", "calendar:", "channels:", "request_types:", "acceptance:", "complaint:",
                    "revenue:", "reward:"):
        assert section in text
    assert sim().complaint_penalty == 300.0


BAD = [
    ("  interactions_per_day: 2000", "  interactons_per_day: 2000", "calendar.interactons_per_day"),
    ("opted_out_share: 0.05", "opted_out_share: 1.5", "population.opted_out_share"),
    ("phone: {share: 0.45,", "phone: {share: 0.65,", "channels"),
    ("  base: 0.004 ", "  base: lots ", "complaint.base"),
    ("intents: {slow_internet: 2.5,", "intents: {slow_interweb: 2.5,",
     "acceptance.offers.fiber_upgrade.intents.slow_interweb"),
    ("drugstore_price: {low: 0.95, high: 1.30, times: refill_price",
     "drugstore_price: {low: 0.95, high: 1.30, times: refill_prize",
     "request_types.transactional.intents.prescription_refill.attributes.drugstore_price.times"),
]


@pytest.mark.parametrize(("old", "new", "field"), BAD, ids=[b[2].split(".")[-1] for b in BAD])
def test_a_bad_parameter_file_names_the_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    text = DEFAULT_PARAMS.read_text()
    assert old in text
    path = tmp_path / "sim.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert f"{path}: field '{field}'" in str(err.value)


def test_offers_the_catalog_does_not_have_are_named() -> None:
    text = DEFAULT_PARAMS.read_text().replace("    pharmacy_savings_club:\n      base:",
                                              "    pharmacy_club:\n      base:")
    with pytest.raises(ConfigError, match=r"acceptance\.offers\.pharmacy_club.*not in the catalog"):
        Simulator(parse_params(text), catalog(), 0)
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_params("population: [")
