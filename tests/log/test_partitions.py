"""PostgreSQL's log partitioned by day (``bandit.log.partitions``): a decision is still
logged once by event id, whatever its time and however many writers race; the purge drops
the days past the retention whole, deletes the rest of what is older, and creates the days
ahead; a day created over rows the default partition caught takes them in."""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from bandit.domain.outcomes import Outcome
from bandit.log import partitions as partitions_module
from bandit.log.partitions import DAY, PartitionBusy, day_name, day_start, drop_before, ensure_ahead, partitions
from bandit.log.records import DecisionRecord
from bandit.log.retention import purge
from bandit.log.store import DecisionStore

pytestmark = pytest.mark.postgres


def rec(event_id: str, ts: float, customer: str = "k") -> DecisionRecord:
    """A decision that offered ``a`` (so it is a contact too) at ``ts``."""
    return DecisionRecord(event_id=event_id, ts=ts, mode="online", model_version="m1",
                          action_ids=["no_offer", "a"], pmf=[0.5, 0.5], chosen_index=1, activated=True,
                          customer_key=customer, channel="chat", request_type="advisory", payload={"content": "x"})


def count(store: DecisionStore, sql: str, **params: object) -> int:
    with store.engine.connect() as c:
        return int(c.execute(text(sql), params).scalar_one())


def ids(store: DecisionStore, table: str) -> set[str]:
    with store.engine.connect() as c:
        return set(c.execute(text(f"select event_id from {table}")).scalars())


@pytest.fixture(scope="module")
def shared(module_pg_url: str) -> DecisionStore:
    s = DecisionStore(module_pg_url)
    yield s
    s.close()


def test_the_same_event_id_at_different_times_is_logged_once_among_racing_writers(module_pg_url: str,
                                                                                 shared: DecisionStore) -> None:
    """Six stores (six connections) log one event id at once, each at another day: the
    history partition, tomorrow's, the default. ``decisions``' own key, (event_id, ts), would
    take them all; ``decision_ids`` takes one."""
    tomorrow = _tomorrow(shared)
    times = [tomorrow - 400 * DAY, tomorrow + 100, tomorrow + 40 * DAY] * 2
    stores = [DecisionStore(module_pg_url) for _ in range(6)]
    barrier, results = threading.Barrier(6), []

    def write(i: int) -> None:
        barrier.wait()
        results.append(stores[i].log_decision(rec("race", times[i] + i)))

    try:
        threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for s in stores:
            s.close()
    assert sorted(results) == [False] * 5 + [True]
    assert count(shared, "select count(*) from decisions where event_id = 'race'") == 1
    assert count(shared, "select count(*) from decision_ids where event_id = 'race'") == 1


_runs = itertools.count()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from([-400, 0, 1, 30])),
                                 min_size=1, max_size=5), min_size=1, max_size=4))
def test_each_event_id_is_logged_once_whatever_the_batches_and_days(shared: DecisionStore, batches) -> None:
    """Batches of decisions whose ids repeat within and across batches, at days in every
    kind of partition (history, a day, the default): each id is new exactly the first time,
    and that write is the one kept."""
    base, run = _tomorrow(shared), next(_runs)  # each example's ids its own
    first: dict[str, float] = {}
    for batch in batches:
        recs = [rec(f"{run}-{eid}", base + days * DAY + 60) for eid, days in batch]
        expected = []
        for r in recs:
            expected.append(r.event_id not in first)
            first.setdefault(r.event_id, r.ts)
        assert shared.log_decisions(recs) == expected
    for eid, ts in first.items():
        assert shared.get_decision(eid).ts == ts
    assert count(shared, "select count(*) from decisions where event_id like :p", p=f"{run}-%") == len(first)


def test_purge_drops_the_days_past_the_retention_and_creates_the_days_ahead(pg_url: str) -> None:
    store = DecisionStore(pg_url)
    try:
        engine = store.engine
        # Days T..T+8 exist (T: three days ahead of the fresh log's tomorrow), the rest of
        # the far future is the default's.
        t = day_start(max(p.upper for p in _parts(store, "decisions") if p.upper)) + 2 * DAY
        ensure_ahead(engine, now=t, days=8)
        at = {"past": t - 30 * DAY, "d0": t + 3600, "d1": t + DAY + 3600, "d2a": t + 2 * DAY + 3600,
              "d2b": t + 2 * DAY + 20 * 3600, "far": t + 40 * DAY}
        assert store.log_decisions([rec(e, ts, customer=e) for e, ts in at.items()]) == [True] * len(at)
        store.add_outcomes([Outcome(e, "declined", ts + 60) for e, ts in at.items()])
        with engine.begin() as c:
            c.execute(text("insert into offer_uses (offer_id, channel, ts, event_id) values ('a', 'chat', :ts, :e)"),
                      [{"ts": ts, "e": e} for e, ts in at.items()])
        before = t + 2 * DAY + 12 * 3600  # day 2 straddles it: d2a is older, d2b newer
        removed = purge(engine, before, batch=2, now=t + 2 * DAY)

        assert (removed.decisions, removed.outcomes, removed.contacts, removed.uses) == (4, 4, 8, 4)  # contacts: each offer shown and declined
        names = {p.name for p in _parts(store, "decisions")}
        assert "decisions_history" not in names
        assert day_name("decisions", t) not in names and day_name("decisions", t + DAY) not in names
        assert {day_name("decisions", t + k * DAY) for k in range(2, 10)} <= names  # kept, and made ahead
        for table in ("contacts", "offer_uses"):
            assert day_name(table, t + DAY) not in {p.name for p in _parts(store, table)}
            assert day_name(table, t + 9 * DAY) in {p.name for p in _parts(store, table)}
        left = ids(store, "decisions")
        assert left == {"d2b", "far"}
        for table in ("decision_ids", "outcomes", "offer_uses"):
            assert ids(store, table) == left
        assert count(store, "select count(*) from contacts where ts < :b", b=before) == 0
        assert purge(engine, before, now=t + 2 * DAY).decisions == 0
        assert store.log_decision(rec("d0", at["d0"])) is True  # a purged id is new again (the default's)
    finally:
        store.close()


def test_a_day_made_over_rows_the_default_caught_takes_them_in(pg_url: str) -> None:
    store = DecisionStore(pg_url)
    try:
        last = max(p.upper for p in _parts(store, "decisions") if p.upper)
        stray = last + 3 * DAY + 100  # no partition yet: the default's
        assert store.log_decision(rec("stray", stray)) is True
        assert count(store, "select count(*) from decisions_default") == 1
        made = ensure_ahead(store.engine, now=stray, days=0)
        assert day_name("decisions", day_start(stray)) in made
        assert count(store, "select count(*) from decisions_default") == 0
        assert count(store, f"select count(*) from {day_name('decisions', day_start(stray))}") == 1
        assert store.get_decision("stray").ts == stray
        assert store.log_decision(replace(rec("stray", stray), ts=stray + 1)) is False
    finally:
        store.close()


def _tomorrow(store: DecisionStore) -> float:
    """The start of a fresh log's last day partition (tomorrow's)."""
    return max(p.upper for p in _parts(store, "decisions") if p.upper) - DAY


def _parts(store: DecisionStore, table: str):
    with store.engine.connect() as c:
        return partitions(c, table)


def test_a_day_is_not_dropped_while_a_reader_holds_the_table_and_is_once_it_ends(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long reader (a retrain's stream) holds ``decisions``: the purge gives up on the
    drop after its attempts (``PartitionBusy``, which fails the flow run and notifies),
    rather than queue every insert behind its lock; once the reader is done it drops."""
    monkeypatch.setattr(partitions_module, "LOCK_TIMEOUT", "100ms")
    monkeypatch.setattr(partitions_module, "RETRY_PAUSE", 0.0)
    store = DecisionStore(pg_url)
    try:
        before = _tomorrow(store)  # the history partition is entirely older
        reader = store.engine.connect()
        reader.execute(text("select count(*) from decisions"))  # its transaction stays open
        with pytest.raises(PartitionBusy):
            drop_before(store.engine, before)
        assert "decisions_history" in {p.name for p in _parts(store, "decisions")}
        reader.rollback()
        reader.close()
        drop_before(store.engine, before)
        assert "decisions_history" not in {p.name for p in _parts(store, "decisions")}
    finally:
        store.close()
