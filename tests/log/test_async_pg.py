"""The asynchronous request path on PostgreSQL (``bandit.log.async_pg``): the same answers
as the synchronous store, at most ``pool_size`` connections whatever the concurrency
(counted in ``pg_stat_activity``), the frequency cap kept by concurrent commits, and a
failed commit reaching every waiter."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from bandit.config.catalog import NO_OFFER
from bandit.config.settings import Settings
from bandit.decide.decider import customer_key
from bandit.log.async_pg import AsyncLog, conninfo, request_writer
from bandit.log.records import Written
from bandit.log.store import DecisionStore
from bandit.log.writer import GroupCommitWriter, PipelinedCommitWriter
from conftest import NOW, request
from decide.test_frequency_cap_race import eager_decider, offers_logged

pytestmark = pytest.mark.postgres

N = 60


@pytest.fixture
def named_pg(pg_url: str) -> tuple[str, str]:
    """``pg_url`` with an application name of its own: this test's connections, and only
    they, carry it in ``pg_stat_activity``."""
    name = f"ob-test-{uuid.uuid4().hex[:12]}"
    return f"{pg_url}&application_name={name}", name


async def _connections(watch: psycopg.AsyncConnection, name: str) -> int:
    cur = await watch.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,))
    return int((await cur.fetchone())[0])


def test_connections_never_exceed_the_pool_size(settings: Settings, named_pg: tuple[str, str]) -> None:
    url, name = named_pg
    size = 3
    store = DecisionStore(url, pool_size=size)
    decider = eager_decider(settings, store, max_offers=100)
    writer = request_writer(store, size)
    assert isinstance(writer, PipelinedCommitWriter)
    seen: list[int] = []

    async def run() -> list:
        watch = await psycopg.AsyncConnection.connect(conninfo(store.url.split("&application_name")[0]),
                                                      autocommit=True)
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                seen.append(await _connections(watch, name))
                await asyncio.sleep(0)

        sampler = asyncio.create_task(sample())
        answers = await asyncio.gather(*(decider.decide_async(
            request(event_id=f"bound-{i}", customer__id=f"c{i % 7}"), writer) for i in range(N)))
        done.set()
        await sampler
        await writer.log.aclose()
        await watch.close()
        return answers

    try:
        answers = asyncio.run(run())
    finally:
        store.close()
    assert all(d.logged for d in answers)
    assert len(seen) > 5 and max(seen) >= 1
    # the asynchronous path's connections, plus the store's own (bounded by the same size)
    assert max(seen) <= 2 * size, seen
    assert writer.log.connections == 0  # all closed by aclose


def test_the_async_path_holds_at_most_pool_size_connections(settings: Settings, pg_url: str) -> None:
    store = DecisionStore(pg_url)
    alog = AsyncLog(store, 2)
    peak = 0

    async def run() -> None:
        nonlocal peak

        async def one(i: int) -> None:
            nonlocal peak
            await alog.history(f"k{i}", NOW, 30)
            peak = max(peak, alog.connections)

        await asyncio.gather(*(one(i) for i in range(40)))
        await alog.aclose()

    try:
        asyncio.run(run())
    finally:
        store.close()
    assert 1 <= peak <= 2


@pytest.mark.parametrize("in_flight", [1, 3])
def test_concurrent_async_decisions_keep_the_cap(settings: Settings, pg_url: str, in_flight: int) -> None:
    """Simultaneous decisions for one customer, several batches committing at once on
    separate connections: at most ``max_offers`` offers, the others capped at commit."""
    store = DecisionStore(pg_url)
    decider = eager_decider(settings, store, max_offers=2)

    async def burst() -> list:
        writer = PipelinedCommitWriter(store, AsyncLog(store, 4), max_batch=5, in_flight=in_flight)
        try:
            return await asyncio.gather(*(decider.decide_async(request(event_id=f"cap-{i}"), writer)
                                          for i in range(N)))
        finally:
            await writer.log.aclose()

    try:
        answers = asyncio.run(burst())
        assert all(d.logged for d in answers)
        assert sum(d.offer_id != NO_OFFER for d in answers) == 2
        assert offers_logged(store, "cust-1") == (2, 2)
        # a retry through the async path replays what was logged
        again = asyncio.run(_retry(decider, store, answers[0].event_id))
        assert again.replayed and again.offer_id == answers[0].offer_id
    finally:
        store.close()


async def _retry(decider, store: DecisionStore, event_id: str):  # noqa: ANN001, ANN202
    writer = PipelinedCommitWriter(store, AsyncLog(store, 1))
    try:
        return await decider.decide_async(request(event_id=event_id), writer)
    finally:
        await writer.log.aclose()


@hsettings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 400)), min_size=0, max_size=8),
       lookbacks=st.lists(st.integers(1, 400), min_size=3, max_size=3))
def test_async_reads_equal_the_sync_ones(settings: Settings, pg_url: str, days: list[tuple[int, int]],
                                         lookbacks: list[int]) -> None:
    """History (three customers read at once, each with its own lookback: one grouped
    statement), suspended offers and event-id lookups read through the async path are the
    store's own answers."""
    store = DecisionStore(pg_url, suspension_refresh=0)
    decider = eager_decider(settings, store, max_offers=100)
    run = uuid.uuid4().hex
    customers = [f"{run}-{c}" for c in range(3)]
    try:
        made = [decider.decide(request(event_id=f"{run}-{i}", customer__id=customers[c]), now=NOW - timedelta(days=d))
                for i, (c, d) in enumerate(days)]
        for d in made:
            if d.offer_id != NO_OFFER:
                decider.record_outcome(d.event_id, "declined")
        store.set_suspended("fiber_upgrade", True)
        keys = [customer_key("test-salt", c) for c in customers]

        async def read() -> tuple:
            alog = AsyncLog(store, 2)
            try:
                hists = await asyncio.gather(*(alog.history(k, NOW, lb) for k, lb in zip(keys, lookbacks)))
                return (hists, await alog.suspended(), [await alog.get_decision(d.event_id) for d in made],
                        await alog.get_decision("nope"))
            finally:
                await alog.aclose()

        hists, suspended, got, missing = asyncio.run(read())
        assert hists == [store.history(k, NOW, lb) for k, lb in zip(keys, lookbacks)]
        assert suspended == store.suspended(fresh=True) == frozenset({"fiber_upgrade"})
        assert got == [store.get_decision(d.event_id) for d in made]
        assert missing is None
    finally:
        store.close()


def test_a_failed_commit_reaches_every_waiter(settings: Settings, pg_url: str) -> None:
    """The database refusing the commit (its table gone): every decision of the batch is
    answered no_offer, not logged; nothing hangs."""
    store = DecisionStore(pg_url)
    decider = eager_decider(settings, store, max_offers=100)

    async def burst() -> list:
        writer = PipelinedCommitWriter(store, AsyncLog(store, 2))
        try:
            await decider.decide_async(request(event_id="warm", customer__id="w"), writer)
            with store.engine.begin() as c:
                c.exec_driver_sql("ALTER TABLE decisions RENAME TO decisions_away")
            return await asyncio.wait_for(asyncio.gather(*(decider.decide_async(
                request(event_id=f"fail-{i}", customer__id=f"f{i}"), writer) for i in range(10))), 30)
        finally:
            with store.engine.begin() as c:
                c.exec_driver_sql("ALTER TABLE decisions_away RENAME TO decisions")
            await writer.log.aclose()

    try:
        answers = asyncio.run(burst())
    finally:
        store.close()
    assert [d.logged for d in answers] == [False] * 10
    assert all(d.offer_id == NO_OFFER and d.mode == "not_logged" for d in answers)
    assert decider.log_health.failing


def test_sqlite_keeps_the_group_commit_on_the_loop(settings: Settings) -> None:
    settings.ensure_home()
    store = DecisionStore(settings.db_url)
    try:
        writer = request_writer(store, 4)
        assert type(writer) is GroupCommitWriter and writer.log is None
        with pytest.raises(ValueError, match="PostgreSQL"):
            AsyncLog(store, 4)
    finally:
        store.close()


def test_repeated_event_ids_in_a_pipelined_batch_answer_as_the_synchronous_store(pg_url: str) -> None:
    """The commit sends its inserts unanswered (pipeline mode) expecting new event ids; a
    repeated one (in the batch, or logged before) fails that transaction, which is redone row
    by row. The answers, with a frequency cap checked in the same batch, are the synchronous
    driver's on the same rows."""
    from dataclasses import replace

    from bandit.log.records import OfferLimit
    from log.test_store import rec

    store = DecisionStore(pg_url)
    run = uuid.uuid4().hex[:8]

    def rows(prefix: str) -> list:
        def offer(e: str) -> object:
            r = replace(rec(f"{prefix}-{e}", chosen=1), customer_key=f"{prefix}-k")
            return store.decision_row(r, OfferLimit(f"{prefix}-k", 0.0, 1, replace(r, chosen_index=0)))
        return [offer("p1"), store.decision_row(rec(f"{prefix}-old")), offer("p2"), offer("p1"), offer("p3")]

    async def pipelined() -> list[Written]:
        writer = PipelinedCommitWriter(store, AsyncLog(store, 2))
        try:
            return list(await asyncio.gather(*(writer._batcher.submit(r) for r in rows(f"a{run}"))))
        finally:
            await writer.log.aclose()

    try:
        for prefix in (f"a{run}", f"s{run}"):
            store.log_decisions([rec(f"{prefix}-old")])
        got = asyncio.run(pipelined())
        want = store.insert_decision_rows(rows(f"s{run}"))
        assert got == want
        assert got == [Written.NEW, Written.DUPLICATE, Written.NEW, Written.DUPLICATE, Written.LIMITED]
        with store.engine.connect() as c:
            shown = [c.exec_driver_sql("SELECT count(*) FROM contacts WHERE customer_key = %(k)s AND kind = 'shown'",
                                       {"k": f"{p}{run}-k"}).scalar_one() for p in "as"]
            logged = [c.exec_driver_sql("SELECT count(*) FROM decisions WHERE event_id LIKE %(p)s",
                                        {"p": f"{p}{run}-%"}).scalar_one() for p in "as"]
        assert shown == [2, 2] and logged == [4, 4]  # p1, old, p2, p3 (over the cap: its fallback)
    finally:
        store.close()
