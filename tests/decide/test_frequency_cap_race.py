"""The frequency cap under concurrency: decisions for one customer that arrive together
(one event loop's group commit, threads deciding at once) make at most ``max_offers``
offers, because the cap is counted again inside the commit (``OfferLimit``). Across two
replicas on PostgreSQL: ``tests/service/test_replicas.py``."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import text

from bandit.config.catalog import NO_OFFER
from bandit.config.loader import LiveConfig
from bandit.config.settings import Settings
from bandit.decide.decider import Decider, ModelSlot, customer_key
from bandit.decide.vw import ColdStart
from bandit.domain.context import History, OfferEvent
from bandit.log.store import DecisionStore
from bandit.log.writer import GroupCommitWriter
from conftest import NOW, request

N = 50


def eager_decider(settings: Settings, store: DecisionStore, max_offers: int = 1) -> Decider:
    """A cold start that offers nearly every time (epsilon 1: no_offer gets 1/n), so that
    concurrent decisions for one customer would mostly be offers without the cap."""
    policy = settings.home / "policy.yaml"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(f"guardrails: {{frequency_cap: {{max_offers: {max_offers}, window_days: 7}}}}\n"
                      "exploration: {cold_start_epsilon: 1.0}\ncontrol: {share: 0}\n")
    live = LiveConfig(settings.model_copy(update={"policy": policy}))
    return Decider(live, store, ModelSlot(ColdStart(1.0)), "test-salt", clock=lambda: NOW)


def offers_logged(store: DecisionStore, customer: str) -> tuple[int, int]:
    """(offers in ``decisions``, ``shown`` rows in ``contacts``) for one customer."""
    key = customer_key("test-salt", customer)
    with store.engine.connect() as c:
        d = c.execute(text("select count(*) from decisions where customer_key = :k and chosen_id != :n"),
                      {"k": key, "n": NO_OFFER}).scalar_one()
        s = c.execute(text("select count(*) from contacts where customer_key = :k and kind = 'shown'"),
                      {"k": key}).scalar_one()
    return d, s


def test_one_group_commit_of_simultaneous_decisions_makes_at_most_one_offer(
        settings: Settings, store: DecisionStore) -> None:
    decider = eager_decider(settings, store)

    async def burst() -> list:
        writer = GroupCommitWriter(store)
        return await asyncio.gather(*(decider.decide_async(request(event_id=f"burst-{i}"), writer)
                                      for i in range(N)))

    answers = asyncio.run(burst())
    offers = [d for d in answers if d.offer_id != NO_OFFER]
    assert len(offers) == 1, [d.offer_id for d in answers]
    assert all(d.logged for d in answers)
    capped = [d for d in answers if d.offer_id == NO_OFFER and {e.reason for e in d.excluded} == {"frequency_cap"}]
    assert capped, "the decisions that lost the race say why they made no offer"
    for d in capped:  # answered as logged: no_offer with probability 1, no content
        assert d.probability == 1.0 and d.content is None and [r.id for r in d.ranking] == [NO_OFFER]
        logged = store.get_decision(d.event_id)
        assert logged is not None and logged.chosen_id == NO_OFFER and logged.pmf == [1.0]
    assert offers_logged(store, "cust-1") == (1, 1)
    # a retry of a capped decision replays what was logged
    again = decider.decide(request(event_id=capped[0].event_id))
    assert again.replayed and again.offer_id == NO_OFFER


def test_threads_deciding_at_once_make_at_most_max_offers(settings: Settings, store: DecisionStore) -> None:
    decider = eager_decider(settings, store, max_offers=2)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: decider.decide(request(event_id=f"thread-{i}")), range(N)))
    assert all(d.logged for d in answers)
    assert sum(d.offer_id != NO_OFFER for d in answers) == 2
    assert offers_logged(store, "cust-1") == (2, 2)


def test_offers_the_channel_told_of_still_count_at_commit(settings: Settings, store: DecisionStore) -> None:
    """max_offers 2, one offer shown elsewhere (sent in ``history``, unknown to the log):
    of simultaneous decisions, one more offer only."""
    decider = eager_decider(settings, store, max_offers=2)
    told = History(shown=(OfferEvent(offer_id="fiber_upgrade", at=NOW - timedelta(days=1)),))

    async def burst() -> list:
        writer = GroupCommitWriter(store)
        return await asyncio.gather(*(decider.decide_async(
            request(event_id=f"told-{i}", history=told.model_dump(mode="json")), writer) for i in range(N)))

    answers = asyncio.run(burst())
    assert sum(d.offer_id != NO_OFFER for d in answers) == 1
