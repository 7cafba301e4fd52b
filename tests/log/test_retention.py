"""Data kept only as long as allowed: the purge deletes what is older than the retention
period, whole decisions with their outcomes; ``forget`` erases every row of one customer,
audits it without saying whose, and is a no-op the second time (SQLite and PostgreSQL);
through HTTP the admin route does the same."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from bandit.config.catalog import NO_OFFER
from bandit.decide.decider import Decider, customer_key
from bandit.log.retention import erasure_count, purge
from bandit.log.store import DecisionStore
from conftest import ADMIN_KEY, NOW, Served, body, request


def rows(store: DecisionStore, key: str | None = None) -> dict[str, int]:
    """Rows per table, for one customer key (decisions, their outcomes, contacts) or all."""
    where = "" if key is None else " where customer_key = :k"
    with store.engine.connect() as c:
        d = c.execute(text(f"select count(*) from decisions{where}"), {"k": key}).scalar_one()
        o = c.execute(text("select count(*) from outcomes where event_id in (select event_id from decisions"
                           f"{where})"), {"k": key}).scalar_one()
        orphans = c.execute(text("select count(*) from outcomes where event_id not in "
                                 "(select event_id from decisions)")).scalar_one()
        k = c.execute(text(f"select count(*) from contacts{where}"), {"k": key}).scalar_one()
    return {"decisions": d, "outcomes": o, "contacts": k, "orphan outcomes": orphans}


def decide_with_outcomes(decider: Decider, customer: str, n: int, start) -> int:
    """``n`` decisions for ``customer`` from ``start``, an outcome for each offer; the offers made."""
    made = 0
    for i in range(n):
        d = decider.decide(request(event_id=f"{customer}-{i}", customer__id=customer),
                           now=start + timedelta(days=8 * i))  # a week apart: the frequency cap lets each through
        if d.offer_id != NO_OFFER:
            decider.record_outcome(d.event_id, "declined", now=start + timedelta(days=8 * i, minutes=1))
            made += 1
    return made


def test_forget_erases_every_row_of_one_customer_once_and_audits_without_the_id(
        decider: Decider, store: DecisionStore) -> None:
    decide_with_outcomes(decider, "keep-me", 6, NOW)
    decide_with_outcomes(decider, "forget-me", 6, NOW)
    key, other = customer_key("test-salt", "forget-me"), customer_key("test-salt", "keep-me")
    before, kept = rows(store, key), rows(store, other)
    assert before["decisions"] == 6
    removed = decider.forget("forget-me", requested_by="ticket 7")
    assert (removed.decisions, removed.outcomes, removed.contacts) == (6, before["outcomes"], before["contacts"])
    assert rows(store, key) == {"decisions": 0, "outcomes": 0, "contacts": 0, "orphan outcomes": 0}
    assert rows(store, other) == kept
    if store.engine.dialect.name == "postgresql":  # the ids' table (partitioned log) keeps none of them
        with store.engine.connect() as c:
            assert c.execute(text("select count(*) from decision_ids where event_id like 'forget-me-%'")).scalar_one() == 0
            assert c.execute(text("select count(*) from decision_ids where event_id like 'keep-me-%'")).scalar_one() == 6
    assert erasure_count(store.engine) == 1
    with store.engine.connect() as c:
        audit = c.execute(text("select * from erasures")).mappings().one()
    assert audit["decisions"] == 6 and audit["requested_by"] == "ticket 7"
    assert key not in str(dict(audit)) and "forget-me" not in str(dict(audit))
    again = decider.forget("forget-me")
    assert (again.decisions, again.outcomes, again.contacts) == (0, 0, 0) and erasure_count(store.engine) == 1


def test_purge_deletes_whole_decisions_older_than_the_period_in_batches(decider: Decider,
                                                                        store: DecisionStore) -> None:
    for c in ("p1", "p2", "p3"):
        decide_with_outcomes(decider, c, 5, NOW)  # days 0, 8, 16, 24, 32
    cutoff = (NOW + timedelta(days=20)).timestamp()
    with store.engine.connect() as c:
        older = c.execute(text("select count(*) from decisions where ts < :t"), {"t": cutoff}).scalar_one()
        newer = c.execute(text("select count(*) from decisions where ts >= :t"), {"t": cutoff}).scalar_one()
    seen = []
    removed = purge(store.engine, cutoff, batch=2, progress=seen.append)
    assert removed.decisions == older == 9 and len(seen) == 5  # 2 per batch
    left = rows(store)
    assert left["decisions"] == newer and left["orphan outcomes"] == 0
    with store.engine.connect() as c:
        assert c.execute(text("select count(*) from contacts where ts < :t"), {"t": cutoff}).scalar_one() == 0
    assert purge(store.engine, cutoff).decisions == 0


def test_the_admin_route_forgets_a_customer(served: Served) -> None:
    client = served.client()
    for i in range(3):
        assert client.post("/decide", json=body(customer__id="http-forget")).status_code == 200
    admin = served.client(ADMIN_KEY)
    r = admin.post("/admin/customers/forget", json={"customer_id": "http-forget", "requested_by": "DPO-1"})
    assert r.status_code == 200 and r.json()["decisions"] == 3
    again = admin.post("/admin/customers/forget", json={"customer_id": "http-forget"})
    assert again.json() == {"decisions": 0, "outcomes": 0, "contacts": 0}
    assert client.post("/admin/customers/forget", json={"customer_id": "x"}).status_code == 403
    bad = admin.post("/admin/customers/forget", json={"customer": "x"})
    assert bad.status_code == 422 and "customer_id" in bad.text
