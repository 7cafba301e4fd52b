"""The smallest end-to-end loop: simulated interactions through the decision path,
outcomes, nightly training, and a table of what happened.

The customer behaviour here is a deliberately small toy (hidden acceptance by
offer family, request type and tier; complaints when the tone is poor); the full
contact-center simulator lives with the demo issue. Everything goes through
``Decider``: the same guardrails, sampling and log as the service.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bandit.config.catalog import NO_OFFER, Catalog
from bandit.config.loader import LiveConfig
from bandit.domain.context import DecisionRequest
from bandit.decide.decider import Decider, ModelSlot
from bandit.config.settings import Settings
from bandit.log.store import DecisionStore
from bandit.learn.training import train_from_log
from bandit.decide.vw import ColdStart

CHANNELS = ["phone", "chat", "email", "sms", "web"]
REQUEST_TYPES = ["informational", "diagnostic", "transactional", "advisory", "feedback"]
RT_WEIGHTS = [0.25, 0.3, 0.25, 0.1, 0.1]
TIERS = ["standard", "silver", "gold", "platinum"]
TIER_WEIGHTS = [0.6, 0.25, 0.12, 0.03]
PRODUCTS = ["mobile", "fiber_1g", "device_care", "card_protection", "home_insurance", "checking"]
INTENTS = {"transactional": ["order_checkbook", "cancel_subscription", "prescription_refill", "billing"]}
# Hidden acceptance: which families each request type responds to.
AFFINITY = {
    ("informational", "sales_contact"): 0.30, ("informational", "upsell"): 0.10,
    ("diagnostic", "upgrade"): 0.22, ("diagnostic", "warranty"): 0.08,
    ("transactional", "cross_sell"): 0.25, ("transactional", "retention"): 0.35,
    ("transactional", "protection"): 0.06, ("transactional", "renewal"): 0.30,
    ("advisory", "upsell"): 0.25, ("advisory", "protection"): 0.15, ("feedback", "goodwill"): 0.4,
}


@dataclass
class DayStats:
    decisions: int = 0
    offers: int = 0
    accepted: int = 0
    complaints: int = 0
    revenue: float = 0.0


def random_request(rng: random.Random, n_customers: int) -> DecisionRequest:
    rt = rng.choices(REQUEST_TYPES, RT_WEIGHTS)[0]
    attrs = {}
    intent = rng.choice(INTENTS[rt]) if rt in INTENTS else None
    if intent == "prescription_refill":
        price = round(rng.uniform(10, 80), 2)
        attrs = {"refill_price": price, "drugstore_price": round(price * rng.uniform(0.95, 1.3), 2)}
    return DecisionRequest.model_validate({
        "channel": rng.choice(CHANNELS),
        "customer": {
            "id": f"cust-{rng.randrange(n_customers)}",
            "authenticated": rng.random() < 0.7,
            "tier": rng.choices(TIERS, TIER_WEIGHTS)[0],
            "tenure_months": rng.randrange(0, 120),
            "products": rng.sample(PRODUCTS, rng.randrange(0, 3)),
            "region": rng.choice(["north", "south", "east", "west"]),
            "opted_out": rng.random() < 0.05,
        },
        "interaction": {
            "request_type": rt, "intent": intent,
            "resolved": rng.choices(["true", "false", "unknown"], [0.75, 0.15, 0.1])[0],
            "sentiment": max(-1.0, min(1.0, rng.gauss(0.25, 0.4))),
            "distress": rng.random() < 0.04,
        },
        "attributes": attrs,
    })


def respond(rng: random.Random, req: DecisionRequest, offer_id: str, catalog: Catalog) -> tuple[bool, bool]:
    """(accepted, complaint) for an offer made in this context: the hidden truth."""
    if offer_id == NO_OFFER:
        return False, False
    offer = catalog.offers[offer_id]
    p = AFFINITY.get((req.interaction.request_type.value, offer.family), 0.03)
    p *= {"standard": 0.8, "silver": 1.0, "gold": 1.3, "platinum": 1.5}.get(req.customer.tier, 1.0)
    complaint = 0.01 + (0.08 if req.interaction.sentiment < 0.2 else 0.0)
    return rng.random() < p, rng.random() < complaint


def run_loop(settings: Settings, days: int = 4, per_day: int = 1500, seed: int = 7) -> int:
    home = settings.ensure_home() / "demo"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    live = LiveConfig(settings)
    store = DecisionStore(f"sqlite:///{(home / 'decisions.db').resolve()}", sqlite_synchronous="NORMAL")
    policy = live.current.policy
    penalty = policy.reward.complaint_penalty
    decider = Decider(live, store, ModelSlot(ColdStart(policy.exploration.cold_start_epsilon)), settings.secret)
    rng = random.Random(seed)
    start = datetime(2026, 11, 2, 8, tzinfo=UTC)
    print(f"{'day':>3} {'model':<20} {'decisions':>9} {'offer rate':>10} {'accept':>7} "
          f"{'rev/interaction':>15} {'complaint':>9}")
    for day in range(days):
        st = DayStats()
        for i in range(per_day):
            now = start + timedelta(days=day, seconds=i * 36000 / per_day)
            req = random_request(rng, n_customers=50_000)
            d = decider.decide(req, now=now)
            st.decisions += 1
            accepted, complaint = respond(rng, req, d.offer_id, live.current.catalog)
            later = now + timedelta(minutes=5)
            if d.offer_id != NO_OFFER:
                st.offers += 1
                kind = "accepted" if accepted else "declined"
                decider.record_outcome(d.event_id, kind, now=later)
                if accepted:
                    st.accepted += 1
                    st.revenue += live.current.catalog.offers[d.offer_id].value
            if complaint and d.offer_id != NO_OFFER:
                st.complaints += 1
                decider.record_outcome(d.event_id, "complaint", now=later)
        print(f"{day + 1:>3} {decider.models.current.version:<20} {st.decisions:>9} "
              f"{st.offers / st.decisions:>10.1%} {st.accepted / max(st.offers, 1):>7.1%} "
              f"{(st.revenue - penalty * st.complaints) / st.decisions:>15.2f} {st.complaints / st.decisions:>9.2%}")
        model, n = train_from_log(store, policy)
        model.save(home / "model.vw")
        decider.models.swap(model)
    print(f"\nlog: {home / 'decisions.db'}  model: {home / 'model.vw'}")
    print(f"rev/interaction is revenue minus the complaint penalty ({penalty:g}), per interaction.")
    return 0
