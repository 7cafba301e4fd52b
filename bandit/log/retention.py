"""Data kept only as long as allowed: the retention purge, and one customer's erasure.

``purge`` deletes what is older than the policy file's ``retention.days`` (decisions with
their outcomes, contacts, capacity uses): on PostgreSQL whole days at a time, dropping the
partitions of the days past it (``bandit.log.partitions``), and what is left in batches of
``batch`` decisions, one short transaction each, so that the request path's commits are
never held up for long and a run interrupted half-way has deleted whole decisions only (a
decision never loses some of its outcomes). An outcome is deleted with its decision, whatever its own time: without the
decision it could not be learned from or judged.

``forget`` erases one customer's rows, found by the salted customer key the log stores
(``bandit.decide.decider.customer_key``): decisions, their outcomes and the contact history,
in one transaction, and writes an audit row that does not say whose. A second call finds
nothing and writes nothing. What the log never held it cannot erase: the context logged with
a decision holds no customer id (``bandit.domain.context.logged_context``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.engine import Connection, Engine, Row

from bandit.log.partitions import decision_ids, drop_before, ensure_ahead
from bandit.log.schema import contacts, decisions, erasures, offer_uses, outcomes


@dataclass(frozen=True)
class Removed:
    decisions: int = 0
    outcomes: int = 0
    contacts: int = 0
    uses: int = 0

    def __add__(self, other: "Removed") -> "Removed":
        return Removed(self.decisions + other.decisions, self.outcomes + other.outcomes,
                       self.contacts + other.contacts, self.uses + other.uses)

    def __str__(self) -> str:
        return (f"{self.decisions} decisions, {self.outcomes} outcomes, {self.contacts} contacts, "
                f"{self.uses} capacity uses")


def _rows_of(table: Table, key: str, found: list[Row[Any]]) -> list[Any]:
    """Where ``table``'s rows ``found`` (``(key, ts)`` pairs) are: by key, and within their
    times' span, so that PostgreSQL reads only the partitions of that span (by key alone,
    every day's index would be probed for every key)."""
    times = [r[1] for r in found]
    return [table.c[key].in_([r[0] for r in found]), table.c.ts >= min(times), table.c.ts <= max(times)]


def _decisions_with_outcomes(conn: Connection, found: list[Row[Any]]) -> tuple[int, int]:
    """Delete the decisions ``found`` (``(event_id, ts)`` pairs) and their outcomes
    (PostgreSQL: their ``decision_ids`` rows too, which the outcomes reference); how many
    decisions and outcomes went."""
    ids = [r[0] for r in found]
    gone_outcomes = conn.execute(delete(outcomes).where(outcomes.c.event_id.in_(ids))).rowcount
    gone = conn.execute(delete(decisions).where(*_rows_of(decisions, "event_id", found))).rowcount
    if conn.dialect.name == "postgresql":
        gone = conn.execute(delete(decision_ids).where(decision_ids.c.event_id.in_(ids))).rowcount
    return gone, gone_outcomes


def purge(engine: Engine, before: float, batch: int = 5000,
          progress: Callable[[Removed], None] | None = None, now: float | None = None) -> Removed:
    """Delete every decision logged before ``before`` (with its outcomes), and the contacts
    and capacity uses older than that, ``batch`` decisions per transaction.

    PostgreSQL: the day partitions for the week after ``now`` (default: the clock's) are
    created first (``bandit.log.partitions.ensure_ahead``), so that a daily purge keeps the
    days to come ready.

    PostgreSQL (partitioned, ``bandit.log.partitions``): first drop every partition entirely
    older than ``before``, then delete by batches what is left: the event ids of the
    decisions before ``before`` (``decision_ids``, whose rows are one per decision: the
    decisions' count) with their outcomes, and the rows older than ``before`` in the
    partition that straddles it. Dropping first means a run stopped half-way leaves no
    decision short of some of its outcomes (outcomes whose decision is gone are never read)."""
    total = Removed()
    ensure_ahead(engine, now)
    dropped = drop_before(engine, before)
    ids_of = decision_ids if engine.dialect.name == "postgresql" else decisions
    while True:
        with engine.begin() as conn:
            found = conn.execute(select(ids_of.c.event_id, ids_of.c.ts).where(ids_of.c.ts < before)
                                 .order_by(ids_of.c.ts).limit(batch)).all()
            if not found:
                break
            gone, gone_outcomes = _decisions_with_outcomes(conn, found)
        total = total + Removed(gone, gone_outcomes)
        if progress is not None:
            progress(total)
    total = total + Removed(contacts=dropped["contacts"], uses=dropped["offer_uses"])
    for table, field in ((contacts, "contacts"), (offer_uses, "uses")):
        while True:
            with engine.begin() as conn:
                found = conn.execute(select(table.c.id, table.c.ts).where(table.c.ts < before).limit(batch)).all()
                if not found:
                    break
                n = conn.execute(delete(table).where(*_rows_of(table, "id", found))).rowcount
            total = total + Removed(**{field: n})
    return total


def forget(engine: Engine, key: str, requested_by: str | None = None, batch: int = 500) -> Removed:
    """Erase every row of the customer whose salted key is ``key``; audit it (without the key)
    when anything was erased. One transaction: all of it, or none."""
    with engine.begin() as conn:
        found = conn.execute(select(decisions.c.event_id, decisions.c.ts).where(decisions.c.customer_key == key)
                             .order_by(decisions.c.ts)).all()
        gone = gone_outcomes = 0
        for i in range(0, len(found), batch):
            d, o = _decisions_with_outcomes(conn, found[i : i + batch])
            gone, gone_outcomes = gone + d, gone_outcomes + o
        gone_contacts = conn.execute(delete(contacts).where(contacts.c.customer_key == key)).rowcount
        removed = Removed(gone, gone_outcomes, gone_contacts)
        if gone or gone_contacts:
            conn.execute(insert(erasures).values(ts=time.time(), decisions=gone, outcomes=gone_outcomes,
                                                 contacts=gone_contacts, requested_by=requested_by))
    return removed


def erasure_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(erasures)).scalar_one())
