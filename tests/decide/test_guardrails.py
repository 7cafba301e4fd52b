"""Guardrails: each default rule, then properties that hold whatever the input."""

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from bandit.config.catalog import NO_OFFER, parse_catalog
from bandit.domain.context import Channel, DecisionRequest, History, OfferEvent, RequestType, Resolved
from bandit.decide.decider import Decider, ModelSlot
from bandit.decide.guardrails import eligible_offers
from bandit.config.policyfile import ANY, PolicyFile
from conftest import NOW, REPO, request

CATALOG = parse_catalog((REPO / "config/offers.yaml").read_text())
G = PolicyFile().guardrails
IDS = sorted(CATALOG.offers)


def elig(req: DecisionRequest, history: History = History(), suspended=()) -> tuple[str, ...]:
    return eligible_offers(req, CATALOG, history, G, NOW, suspended).eligible


def reasons(req: DecisionRequest, history: History = History()) -> dict[str, str]:
    return {e.offer_id: e.reason for e in eligible_offers(req, CATALOG, history, G, NOW).excluded}


def ev(offer: str, days_ago: float) -> OfferEvent:
    return OfferEvent(offer_id=offer, at=NOW - timedelta(days=days_ago))


def test_happy_advisory_customer_has_offers() -> None:
    e = elig(request())
    assert e[0] == NO_OFFER and len(e) > 1


@pytest.mark.parametrize("over,reason", [
    ({"customer__opted_out": True}, "opted_out"),
    ({"interaction__distress": True}, "distress"),
    ({"interaction__sentiment": -0.3}, "low_sentiment"),
    ({"interaction__request_type": "diagnostic", "interaction__resolved": "false"}, "unresolved"),
    ({"interaction__request_type": "transactional", "interaction__resolved": "unknown"}, "resolution_unknown"),
    ({"interaction__sentiment": None}, "tone_unknown"),
])
def test_interaction_blocks_leave_only_no_offer(over, reason) -> None:
    req = request(**over)
    assert elig(req) == (NO_OFFER,)
    assert set(reasons(req).values()) == {reason}


def test_unknown_is_not_negative_where_the_policy_file_says_so() -> None:
    """An unknown tone or resolution blocks an offer by default; a rule of ``guardrails.unknown``
    allows it on its channels and request types (the first matching rule decides); a known
    low tone or an unresolved issue still blocks."""
    from bandit.config.policyfile import load_policy

    shipped = load_policy(REPO / "config/policy.yaml").guardrails
    web = {"channel": "web", "interaction__sentiment": None, "interaction__resolved": None,
           "interaction__request_type": "advisory"}

    def blocked(g, **over) -> set[str]:
        ex = eligible_offers(request(**over), CATALOG, History(), g, NOW)
        return {e.reason for e in ex.excluded} if len(ex.eligible) == 1 else set()

    assert blocked(G, **web) == {"tone_unknown"}  # the code's default: strict everywhere
    assert blocked(shipped, **web) == set()  # the shipped file: a web form's content decides
    assert blocked(shipped, **{**web, "interaction__request_type": "diagnostic"}) == {"resolution_unknown"}
    assert blocked(shipped, **{**web, "interaction__sentiment": 0.05}) == {"low_sentiment"}  # known: still judged
    assert blocked(shipped, **{**web, "interaction__resolved": False}) == {"unresolved"}
    assert blocked(shipped, **{**web, "channel": "phone"}) == {"tone_unknown"}  # where tone is observed
    assert blocked(shipped, **{**web, "channel": "email"}) == {"tone_unknown"}


def test_integrators_json_booleans_null_and_omitted_fields() -> None:
    """``resolved`` as JSON true/false/null, and a request that leaves every optional field out."""
    assert request(interaction__resolved=True).interaction.resolved is Resolved.yes
    assert request(interaction__resolved=False).interaction.resolved is Resolved.no
    assert request(interaction__resolved=None).interaction.resolved is Resolved.unknown
    bare = DecisionRequest.model_validate({"channel": "web", "interaction": {"request_type": "informational"}})
    assert bare.customer.id is None and bare.interaction.sentiment is None
    assert bare.interaction.resolved is Resolved.unknown
    with pytest.raises(Exception, match="resolved"):
        request(interaction__resolved="maybe")


def test_complaint_in_last_30_days_blocks_and_older_does_not() -> None:
    assert elig(request(), History(last_complaint=NOW - timedelta(days=29))) == (NO_OFFER,)
    assert len(elig(request(), History(last_complaint=NOW - timedelta(days=31)))) > 1


def test_frequency_cap_across_channels() -> None:
    h = History(shown=(ev("fiber_upgrade", 6),))
    assert set(reasons(request(channel="chat"), h).values()) == {"frequency_cap"}
    assert len(elig(request(), History(shown=(ev("fiber_upgrade", 8),)))) > 1


def test_decline_pauses_that_offer_only() -> None:
    r = reasons(request(), History(declined=(ev("premium_bundle", 3),)))
    assert r["premium_bundle"] == "declined_recently"
    assert "sales_specialist_callback" not in r


def test_impression_cap_pauses_after_three_in_seven_days() -> None:
    g = G.model_copy(update={"frequency_cap": G.frequency_cap.model_copy(update={"max_offers": 99})})
    shown = (ev("premium_bundle", 12), ev("premium_bundle", 10), ev("premium_bundle", 9))
    ex = {e.offer_id: e.reason for e in eligible_offers(request(), CATALOG, History(shown=shown), g, NOW).excluded}
    assert ex["premium_bundle"] == "impression_cap"
    later = NOW + timedelta(days=2)  # 11 days after the third impression
    ex2 = {e.offer_id: e.reason for e in eligible_offers(request(), CATALOG, History(shown=shown), g, later).excluded}
    assert "premium_bundle" not in ex2


def test_request_type_rules_follow_the_seeds() -> None:
    fb = request(interaction__request_type="feedback", channel="email")
    assert elig(fb) == (NO_OFFER, "restaurant_half_off")
    info = request(interaction__request_type="informational", channel="email")
    assert {CATALOG.offers[o].family for o in elig(info)[1:]} <= {"sales_contact", "upsell"}


def test_catalog_eligibility_reasons() -> None:
    r = reasons(request(customer__tier="standard", customer__products=["fiber_1g"], channel="phone"))
    assert r["premium_bundle"] == "tier"
    assert r["fiber_upgrade"] == "product_held"
    assert r["home_insurance_renewal"] == "product_required"
    assert r["restaurant_half_off"] == "channel"
    r = reasons(request(customer__authenticated=False, interaction__request_type="transactional"))
    assert r["card_protection_plan"] == "not_authenticated"


def test_kill_switch_and_candidates() -> None:
    assert "premium_bundle" not in elig(request(), suspended={"premium_bundle"})
    assert elig(request(candidates=["premium_bundle"])) == (NO_OFFER, "premium_bundle")


def test_validity_window() -> None:
    from bandit.decide.guardrails import offer_block
    offer = CATALOG.offers["premium_bundle"]
    assert offer_block(offer, request(), History(), G, NOW.replace(year=2027, month=7)) == "outside_window"


# -- properties ----------------------------------------------------------------

times = st.floats(min_value=0, max_value=60)
events = st.lists(st.builds(ev, st.sampled_from(IDS), times), max_size=6).map(tuple)
histories = st.builds(
    History, shown=events, declined=events, accepted=events,
    last_complaint=st.none() | times.map(lambda d: NOW - timedelta(days=d)),
)
requests = st.builds(
    lambda ch, tier, prods, auth, opt, tenure, rt, intent, res, sent, dis, cands, attrs: DecisionRequest.model_validate({
        "channel": ch, "customer": {"id": "c", "tier": tier, "products": prods, "authenticated": auth,
                                    "opted_out": opt, "tenure_months": tenure, "region": "north"},
        "interaction": {"request_type": rt, "intent": intent, "resolved": res, "sentiment": sent, "distress": dis},
        "candidates": cands, "attributes": attrs}),
    st.sampled_from(list(Channel)), st.sampled_from(["standard", "silver", "gold", "platinum"]),
    st.lists(st.sampled_from(["mobile", "fiber_1g", "home_insurance", "device_care"]), max_size=3, unique=True),
    st.booleans(), st.booleans(), st.integers(0, 200), st.sampled_from(list(RequestType)),
    st.none() | st.sampled_from(["order_checkbook", "cancel_subscription", "prescription_refill"]),
    st.sampled_from(list(Resolved)), st.floats(-1, 1), st.booleans(),
    st.none() | st.lists(st.sampled_from([*IDS, NO_OFFER]), max_size=5, unique=True),
    st.sampled_from([{}, {"refill_price": 10.0, "drugstore_price": 12.0}]),
)
suspensions = st.sets(st.sampled_from(IDS), max_size=4)


@given(requests, histories, suspensions)
@hsettings(max_examples=400, deadline=None)
def test_no_hard_block_can_be_bypassed(req, history, suspended) -> None:
    e = eligible_offers(req, CATALOG, history, G, NOW, suspended)
    assert e.eligible[0] == NO_OFFER and e.eligible.count(NO_OFFER) == 1
    assert set(e.eligible[1:]) | {x.offer_id for x in e.excluded} == set(IDS)
    offered = e.eligible[1:]
    i, c = req.interaction, req.customer
    recent_shown = [s for s in history.shown if NOW - s.at <= timedelta(days=7)]
    if (c.opted_out or i.distress or i.sentiment < G.min_sentiment
            or (i.request_type in G.require_resolved and i.resolved is not Resolved.yes)
            or (history.last_complaint and NOW - history.last_complaint < timedelta(days=30))
            or len(recent_shown) >= G.frequency_cap.max_offers):
        assert offered == ()
    for oid in offered:
        offer = CATALOG.offers[oid]
        assert oid not in suspended
        assert req.channel in offer.channels
        assert req.candidates is None or oid in req.candidates
        fams = G.families_for(i.request_type)
        assert ANY in fams or offer.family in fams
        assert not any(d.offer_id == oid and NOW - d.at < timedelta(days=30) for d in history.declined)


class AdversarialScorer:
    """A model that puts arbitrary mass on whatever it is shown."""

    version = "adversarial"

    def __init__(self, weights):
        self.weights = weights

    def pmf(self, shared, actions):
        w = [self.weights[i % len(self.weights)] + 1e-9 for i in range(len(actions))]
        return [x / sum(w) for x in w]


@given(req=requests, weights=st.lists(st.floats(0, 1), min_size=1, max_size=12),
       floor=st.sampled_from([0.0, 0.05, 0.5, 0.99]), complained=st.none() | times)
@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_chosen_action_is_always_eligible(decider: Decider, req, weights, floor, complained) -> None:
    """Whatever the model and the exploration floor: the action served is eligible, the pmf
    logged is the one sampled (the model's with the floor spread over the eligible actions
    only), and a distressed, opted-out or cooling-down customer gets no offer."""
    if complained is not None:
        req = req.model_copy(update={"history": History(last_complaint=NOW - timedelta(days=complained))})
    cfg = decider.config.current
    decider.config.apply(replace(cfg, policy=cfg.policy.model_copy(update={
        "exploration": cfg.policy.exploration.model_copy(update={"floor": floor})})))
    scorer = AdversarialScorer(weights)
    decider.models = ModelSlot(scorer)
    seen = decider.history_of(req.customer.id, NOW).merged(req.history)
    d = decider.decide(req)
    # the guardrails the decider serves (the shipped policy file's: its `unknown` rules allow what
    # the defaults block, e.g. an unknown resolution on the web)
    e = eligible_offers(req, CATALOG, seen, decider.config.current.policy.guardrails, NOW, decider.store.suspended())
    rec = decider.store.get_decision(d.event_id)
    assert d.offer_id in e.eligible
    assert rec.action_ids == list(e.eligible)
    assert abs(sum(r.probability for r in d.ranking) - 1) < 1e-6
    assert {r.id for r in d.ranking} == set(rec.action_ids)
    assert d.probability == rec.pmf[rec.chosen_index] > 0
    n = len(e.eligible)
    if d.mode == "online" and n > 1:
        model = scorer.pmf(None, [None] * n)
        assert rec.pmf == pytest.approx([(1 - floor) * p + floor / n for p in model])
        assert min(rec.pmf) >= floor / n - 1e-12
    if req.customer.opted_out or req.interaction.distress or (complained is not None and complained < 30):
        assert d.offer_id == NO_OFFER and d.content is None and rec.pmf == [1.0]


def test_the_policy_file_refuses_interactions_on_namespaces_that_do_not_exist() -> None:
    import pytest
    from bandit.domain.errors import ConfigError
    from bandit.config.policyfile import parse_policy

    with pytest.raises(ConfigError, match=r"field 'learner.interactions'.*\['cz'\].*namespace letters ceh"):
        parse_policy("learner: {interactions: [co, cz]}\n")
    with pytest.raises(ConfigError, match="learner.cb_type dm does not go with exploration.algorithm cover"):
        parse_policy("exploration: {algorithm: cover}\nlearner: {cb_type: dm}\n")


def test_anonymous_visitors_share_no_history_and_no_cap(decider: Decider) -> None:
    """No customer id: no contact history is read or written, so one anonymous visitor's offer
    does not cap the next one (a shared placeholder id did, for 7 days), and no control group."""
    from dataclasses import replace

    from bandit.decide.vw import ColdStart

    decider = replace(decider, models=ModelSlot(ColdStart(1.0)))  # offer whenever anything is eligible
    anonymous = {"channel": "web", "interaction": {"request_type": "advisory", "resolved": True, "sentiment": 0.6}}
    offers = 0
    for i in range(40):
        d = decider.decide(DecisionRequest.model_validate({**anonymous, "event_id": f"anon-{i}"}))
        offers += d.offer_id != NO_OFFER
        assert d.mode != "control" and "frequency_cap" not in {e.reason for e in d.excluded}
    assert offers > 5  # a shared id would have allowed one
    with decider.store.engine.connect() as c:
        from sqlalchemy import text
        assert c.execute(text("select count(*) from contacts")).scalar_one() == 0
        assert c.execute(text("select count(*) from decisions where customer_key is not null")).scalar_one() == 0
