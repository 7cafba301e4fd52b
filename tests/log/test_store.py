"""The log's request path: batched inserts, duplicates, failures, the group-commit writer."""

import asyncio
import re
import threading
import time
from dataclasses import replace

import pytest
from sqlalchemy import text

from bandit.decide.decider import new_event_id
from bandit.log.writer import GroupCommitWriter
from bandit.config.settings import Settings
from bandit.log.records import DecisionRecord, Written
from bandit.log.store import DecisionStore


def rec(event_id: str, chosen: int = 0) -> DecisionRecord:
    return DecisionRecord(event_id=event_id, ts=1_800_000_000.0, mode="online", model_version="m1",
                          action_ids=["no_offer", "a"], pmf=[0.5, 0.5], chosen_index=chosen, activated=True,
                          customer_key="k", channel="chat", request_type="advisory", payload={"content": "x"})


def test_a_batch_with_repeated_event_ids_inserts_each_once(store: DecisionStore) -> None:
    assert store.log_decisions([rec("old", chosen=1)]) == [True]
    got = store.log_decisions([rec("n1"), rec("old"), rec("n2"), rec("n1", chosen=1)])
    assert got == [True, False, True, False]
    assert store.count_decisions() == 3
    assert store.get_decision("old").chosen_id == "a"  # the first write stands
    assert store.get_decision("n1").chosen_id == "no_offer"


def test_a_failing_batch_commits_nothing_and_the_store_recovers(store: DecisionStore) -> None:
    bad = replace(rec("bad"), mode=None)  # NOT NULL column
    with pytest.raises(Exception):
        store.log_decisions([rec("ok-1"), bad])
    assert store.get_decision("ok-1") is None and store.count_decisions() == 0
    assert store.log_decisions([rec("ok-2")]) == [True]
    assert store.get_decision("ok-2") is not None


@pytest.mark.parametrize(("level", "code"), [("FULL", 2), ("NORMAL", 1)])
def test_sqlite_synchronous_setting_reaches_the_request_path(settings: Settings, level: str, code: int) -> None:
    settings.ensure_home()
    s = DecisionStore(settings.db_url, sqlite_synchronous=level)
    try:
        with s._cursor() as cur:
            cur.execute("PRAGMA synchronous")
            assert cur.fetchone()[0] == code
    finally:
        s.close()


def test_generated_event_ids_are_hex_and_ordered_by_time() -> None:
    a = new_event_id()
    time.sleep(0.002)
    b = new_event_id()
    assert re.fullmatch(r"[0-9a-f]{32}", a) and a < b
    assert len({new_event_id() for _ in range(10_000)}) == 10_000


def test_group_commit_answers_each_writer_with_its_own_result(store: DecisionStore) -> None:
    async def run() -> list[Written]:
        writer = GroupCommitWriter(store)
        return await asyncio.gather(*(writer.write(rec(e)) for e in ["w1", "w2", "w1", "w3"]))

    assert asyncio.run(run()) == [Written.NEW, Written.NEW, Written.DUPLICATE, Written.NEW]
    assert store.count_decisions() == 3


def test_group_commit_failure_reaches_every_waiter_and_logs_nothing(store: DecisionStore) -> None:
    async def run() -> list[object]:
        writer = GroupCommitWriter(store)
        bad = replace(rec("bad"), mode=None)
        return await asyncio.gather(writer.write(rec("g1")), writer.write(bad), return_exceptions=True)

    results = asyncio.run(run())
    assert all(isinstance(r, Exception) for r in results)
    assert store.count_decisions() == 0


def test_contact_history_holds_what_the_guardrails_ask_and_nothing_else(store: DecisionStore) -> None:
    """Every way into the log (request-path insert, import, activation, outcomes one by one
    and in batches) leaves the contacts the history reads; no_offer is never 'shown', an
    nps score is no contact, and other customers' contacts stay theirs."""
    from datetime import UTC, datetime

    from bandit.domain.outcomes import Outcome

    t = 1_800_000_000.0
    now = datetime.fromtimestamp(t + 100, UTC)

    def d(eid: str, chosen: int, activated: bool = True, key: str = "k", ts: float = t) -> DecisionRecord:
        return replace(rec(eid, chosen), activated=activated, customer_key=key, ts=ts)

    assert store.log_decisions([d("shown", 1), d("none", 0), d("deferred", 1, activated=False),
                                d("other", 1, key="k2")]) == [True] * 4
    assert store.log_many([d("imported", 1, ts=t + 1), d("old", 1, ts=t - 400 * 86400)]) == 2
    h = store.history("k", now, 365)
    assert [(e.offer_id, e.at.timestamp()) for e in h.shown] == [("a", t), ("a", t + 1)]
    assert h.declined == h.accepted == () and h.last_complaint is None

    assert store.activate("deferred", t + 5) is True
    assert store.add_outcome(Outcome("shown", "declined", t + 10))
    assert store.add_outcome(Outcome("none", "complaint", t + 20))  # a complaint about a no_offer contact
    assert store.add_outcome(Outcome("shown", "nps", t + 30, score=9))
    assert store.add_outcomes([Outcome("imported", "converted", t + 40, value=10.0),
                               Outcome("imported", "converted", t + 40, value=10.0)]) == 1
    h = store.history("k", now, 365)
    assert [e.at.timestamp() for e in h.shown] == [t, t + 1, t + 5]
    assert [(e.offer_id, e.at.timestamp()) for e in h.declined] == [("a", t + 10)]
    assert [(e.offer_id, e.at.timestamp()) for e in h.accepted] == [("a", t + 40)]
    assert h.last_complaint is not None and h.last_complaint.timestamp() == t + 20
    assert [e.offer_id for e in store.history("k2", now, 365).shown] == ["a"]
    assert store.history("nobody", now, 365) == store.history("k", now, 0.0001)


def test_group_commit_shares_commits_among_concurrent_writers(store: DecisionStore) -> None:
    """300 concurrent writers: each answered NEW once, every row logged once, in fewer
    commits than rows (the writer groups them)."""
    commits = []
    insert = store.insert_decision_rows

    def counting(rows):  # the real insert, counted
        commits.append(len(rows))
        return insert(rows)

    store.insert_decision_rows = counting  # type: ignore[method-assign]

    async def run() -> list[Written]:
        writer = GroupCommitWriter(store)
        return await asyncio.gather(*(writer.write(rec(f"c{i}")) for i in range(300)))

    assert asyncio.run(run()) == [Written.NEW] * 300
    assert store.count_decisions() == 300 and sum(commits) == 300 and len(commits) < 300


def test_replicas_setting_the_same_kill_switch_at_once_do_not_collide(store: DecisionStore) -> None:
    """The admin route on one replica and the monitor flow on another may set the same
    offer at the same moment; each write is one upsert, so neither fails."""
    other = DecisionStore(store.url)
    barrier, errors = threading.Barrier(4), []

    def flip(s: DecisionStore, suspended: bool) -> None:
        barrier.wait()
        for i in range(40):
            try:
                s.set_suspended("fiber_upgrade", suspended, f"round {i}")
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=flip, args=(s, s is store)) for s in (store, other, store, other)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        other.close()
    assert errors == []
    with store.engine.connect() as c:
        assert c.execute(text("select count(*) from suspensions")).scalar() == 1
