"""An offer's capacity (at most N per hour or day, on some channels): counted in the shared
log, ineligible with reason ``capacity`` once reached, exact under concurrency (counted again
inside the commit), and the learner never sees it. Across two replicas on PostgreSQL:
``tests/service/test_replicas.py``."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings as hsettings, strategies as st
from sqlalchemy import text

from bandit.config.catalog import NO_OFFER, load_catalog, parse_catalog
from bandit.config.loader import LiveConfig
from bandit.config.settings import Settings
from bandit.decide.decider import Decider, ModelSlot
from bandit.decide.guardrails import offers_at_capacity
from bandit.decide.vw import ColdStart
from bandit.domain.errors import ConfigError
from bandit.log.store import DecisionStore
from bandit.log.writer import GroupCommitWriter
from conftest import NOW, REPO, request

CALLBACK = "sales_specialist_callback"  # eligible for request()'s advisory phone interaction


def with_capacity(path: Path, capacity: dict, offer: str = CALLBACK) -> Path:
    """The example catalog with ``capacity`` on ``offer``, written to ``path``."""
    raw = yaml.safe_load((REPO / "config/offers.yaml").read_text())
    for o in raw["offers"]:
        if o["id"] == offer:
            o["capacity"] = capacity
    path.write_text(yaml.safe_dump(raw))
    return path


def eager_decider(settings: Settings, store: DecisionStore, capacity: dict, clock=lambda: NOW) -> Decider:
    """Cold start offering half the time between no_offer and the one candidate."""
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    policy = home / "policy.yaml"
    policy.write_text("exploration: {cold_start_epsilon: 1.0}\ncontrol: {share: 0}\n")
    catalog = with_capacity(home / "offers.yaml", capacity)
    live = LiveConfig(settings.model_copy(update={"policy": policy, "catalog": catalog}))
    return Decider(live, store, ModelSlot(ColdStart(1.0)), "test-salt", clock=clock)


def ask(i: int, prefix: str = "cap", **over: object):
    return request(event_id=f"{prefix}-{i}", customer__id=f"{prefix}-c{i}", candidates=[CALLBACK], **over)


def uses_logged(store: DecisionStore) -> tuple[int, int]:
    with store.engine.connect() as c:
        d = c.execute(text("select count(*) from decisions where chosen_id = :o"), {"o": CALLBACK}).scalar_one()
        u = c.execute(text("select count(*) from offer_uses where offer_id = :o"), {"o": CALLBACK}).scalar_one()
    return d, u


def test_one_group_commit_of_simultaneous_decisions_makes_at_most_capacity_offers(
        settings: Settings, store: DecisionStore) -> None:
    decider = eager_decider(settings, store, {"max_offers": 3, "per": "day"})

    async def burst() -> list:
        writer = GroupCommitWriter(store)
        return await asyncio.gather(*(decider.decide_async(ask(i), writer) for i in range(50)))

    answers = asyncio.run(burst())
    assert all(d.logged for d in answers)
    made = [d for d in answers if d.offer_id == CALLBACK]
    assert len(made) == 3
    lost = [d for d in answers if d.offer_id == NO_OFFER and any(e.reason == "capacity" for e in d.excluded)]
    assert lost, "decisions that chose the offer after its capacity was taken say why they made none"
    for d in lost:  # logged as answered: no_offer with probability 1, the offer not in the action set
        logged = store.get_decision(d.event_id)
        assert logged is not None and logged.chosen_id == NO_OFFER and logged.probability == 1.0
        assert CALLBACK not in logged.action_ids
    assert uses_logged(store) == (3, 3)
    # a later decision: excluded by the guardrails already (fresh count), never chosen
    store.capacity_uses(NOW.timestamp(), fresh=True)
    later = decider.decide(ask(99))
    assert later.offer_id == NO_OFFER and (CALLBACK, "capacity") in [(e.offer_id, e.reason) for e in later.excluded]
    assert [r.id for r in later.ranking] == [NO_OFFER]  # the learner never sees it
    # retries replay what was logged
    assert decider.decide(ask(0)).replayed


def test_threads_on_their_own_connections_make_exactly_capacity_offers(settings: Settings,
                                                                       store: DecisionStore) -> None:
    decider = eager_decider(settings, store, {"max_offers": 2, "per": "hour"})
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: decider.decide(ask(i, "thr")), range(50)))
    assert all(d.logged for d in answers)
    assert sum(d.offer_id == CALLBACK for d in answers) == 2 and uses_logged(store) == (2, 2)


def test_the_period_rolls_and_other_channels_do_not_count(settings: Settings, store: DecisionStore) -> None:
    now = [NOW]
    decider = eager_decider(settings, store, {"max_offers": 1, "per": "hour", "channels": ["phone"]},
                            clock=lambda: now[0])
    made = 0
    i = 0
    while made == 0:
        made += decider.decide(ask(i, "roll")).offer_id == CALLBACK
        i += 1
    store.capacity_uses(now[0].timestamp(), fresh=True)
    assert all(decider.decide(ask(i + k, "roll")).offer_id == NO_OFFER for k in range(10))
    chat = [decider.decide(ask(100 + k, "chat", channel="chat")) for k in range(20)]
    assert any(d.offer_id == CALLBACK for d in chat), "chat is not limited, nor counted"
    now[0] = NOW + timedelta(hours=1, seconds=1)
    store.capacity_uses(now[0].timestamp(), fresh=True)
    again = [decider.decide(ask(200 + k, "roll")) for k in range(20)]
    assert sum(d.offer_id == CALLBACK for d in again) == 1


def test_a_capacity_must_be_a_positive_count_per_hour_or_day(tmp_path: Path) -> None:
    for bad, field in (({"max_offers": 0, "per": "day"}, "capacity.max_offers"),
                       ({"max_offers": 3, "per": "week"}, "capacity.per"),
                       ({"max_offers": 3, "per": "day", "channels": ["fax"]}, "capacity.channels.0")):
        with pytest.raises(ConfigError) as err:
            load_catalog(with_capacity(tmp_path / "offers.yaml", bad))
        assert f"offer '{CALLBACK}': field '{field}'" in str(err.value)


USES = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["phone", "chat", None]),
                          st.floats(0, 200_000)), max_size=30)


@hsettings(max_examples=200, deadline=None)
@given(uses=USES, channel=st.sampled_from(["phone", "chat", "web"]), now=st.floats(0, 200_000),
       max_a=st.integers(1, 5), max_b=st.integers(1, 5))
def test_offers_at_capacity_counts_the_rolling_period_on_the_capacitys_channels(
        uses: list, channel: str, now: float, max_a: int, max_b: int) -> None:
    catalog = parse_catalog(f"""
offers:
  - {{id: a, title: A, family: f, value: 1, channels: [phone, chat, web], templates: {{phone: a, chat: a, web: a}},
     capacity: {{max_offers: {max_a}, per: hour, channels: [phone]}}}}
  - {{id: b, title: B, family: f, value: 1, channels: [phone, chat, web], templates: {{phone: b, chat: b, web: b}},
     capacity: {{max_offers: {max_b}, per: day}}}}
  - {{id: c, title: C, family: f, value: 1, channels: [phone], templates: {{phone: c}}}}
""")
    full = offers_at_capacity(catalog, uses, channel, now)
    a = sum(1 for o, ch, ts in uses if o == "a" and ch == "phone" and now - 3600 <= ts)
    b = sum(1 for o, _, ts in uses if o == "b" and now - 86400 <= ts)
    assert ("a" in full) == (channel == "phone" and a >= max_a)
    assert ("b" in full) == (b >= max_b)
    assert "c" not in full
