"""PostgreSQL: the log's tables partitioned by time, so that retention drops whole days.

``decisions``, ``contacts`` and ``offer_uses`` are ``PARTITION BY RANGE (ts)``: one
partition per UTC day (``decisions_p20261203`` holds ``[2026-12-03, 2026-12-04)`` in epoch
seconds), a ``_history`` partition from ``MINVALUE`` to the first day (what the log held
when it was partitioned, and any import older than that), and a ``_default`` partition for
rows no partition covers (a clock far ahead, a purge that has not created days for a
week). The purge flow creates the days ahead (``ensure_ahead``) and drops every partition
whose upper bound is past the retention (``drop_before``); ``docs/partitioning.md`` says
why this layout and measures it.

Why ``decision_ids``: PostgreSQL allows a unique constraint on a partitioned table only if
it includes the partition key, so ``decisions`` can no longer be unique by ``event_id``
alone (its key is ``(event_id, ts)``), and neither ``ON CONFLICT (event_id)`` nor the
outcomes' foreign key can name it. The narrow, unpartitioned ``decision_ids (event_id
PRIMARY KEY, ts)`` is written in the decision's own statement (``DecisionStore``'s insert):
it keeps a decision exactly once by event id, and outcomes reference it. The purge deletes
its rows by ``ts`` in batches, with their outcomes (an outcome belongs to its decision,
whatever its own time: ``outcomes`` is not partitioned by its own ``ts``).

SQLite keeps the unpartitioned schema of ``bandit.log.schema`` and the purge by batches.
Every DDL statement here runs with a ``lock_timeout``: creating or dropping a partition
locks the parent table, and waiting behind a long reader (a retrain's stream) would queue
every decision insert behind the wait.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import NamedTuple, TypeVar

from psycopg.errors import LockNotAvailable
from sqlalchemy import Column, Float, Index, MetaData, String, Table, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from bandit.log.schema import contacts, decisions, offer_uses

DAY = 86400.0
DAYS_AHEAD = 7
"""Days the purge flow (and migration 0006) creates ahead of today."""
FRESH_DAYS_AHEAD = 1
"""Days a log created by the first process to open it has ahead (tomorrow; the week comes
with the first purge): every test's fresh log pays for each day made here (about 10 ms a
day and table)."""
LOCK_TIMEOUT = "5s"
LOCK_ATTEMPTS = 3
RETRY_PAUSE = 1.0
"""Seconds before the second attempt (then twice that, ...): a reader's transaction may end."""

PARTITIONED = (decisions, contacts, offer_uses)
_T = TypeVar("_T")

layout = MetaData()
decision_ids = Table(
    "decision_ids",
    layout,
    Column("event_id", String(128), primary_key=True),
    Column("ts", Float, nullable=False),
    Index("ix_decision_ids_ts", "ts"),
)


class Partition(NamedTuple):
    """One partition of a partitioned table: its name and range (``None``: ``MINVALUE``
    below, or the default partition, which has no range at all)."""

    name: str
    lower: float | None
    upper: float | None
    default: bool = False


class PartitionBusy(RuntimeError):
    """A partition could not be created or dropped: the table stayed locked by another
    transaction through every attempt (``LOCK_ATTEMPTS`` of ``LOCK_TIMEOUT``)."""


def is_partitioned(conn: Connection) -> bool:
    """Whether this log's ``decisions`` is partitioned (PostgreSQL at revision 0006 on)."""
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(text(
        "SELECT c.relkind = 'p' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = 'decisions' AND n.nspname = current_schema()")).scalar())


def partitions(conn: Connection, table: str) -> list[Partition]:
    """The partitions of ``table``, ordered by range (the default last)."""
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "JOIN pg_namespace n ON n.oid = p.relnamespace WHERE p.relname = :t AND n.nspname = current_schema()"),
        {"t": table}).all()
    out = []
    for name, bound in rows:
        if bound == "DEFAULT":
            out.append(Partition(name, None, None, default=True))
            continue
        lower, upper = re.findall(r"\(([^)]*)\)", bound)
        out.append(Partition(name, _bound(lower), _bound(upper)))
    return sorted(out, key=lambda p: (p.default, p.upper if p.upper is not None else float("inf")))


def _bound(expr: str) -> float | None:
    expr = expr.strip().strip("'")
    return None if expr in ("MINVALUE", "MAXVALUE") else float(expr)


def day_start(ts: float) -> float:
    """The UTC midnight at or before ``ts`` (epoch seconds)."""
    return float(int(ts // DAY) * DAY)


def day_name(table: str, start: float) -> str:
    return f"{table}_p{datetime.fromtimestamp(start, UTC):%Y%m%d}"


def _locked(target: Engine | Connection, work: Callable[[Connection], _T]) -> _T:
    """Run ``work`` in one transaction under ``LOCK_TIMEOUT``; a lock not granted in time
    is tried again (``LOCK_ATTEMPTS`` in all), then ``PartitionBusy``. On a ``Connection``
    (a migration's, a fresh log's: nothing else can hold the tables) it runs there, once."""
    if isinstance(target, Connection):
        return work(target)
    for attempt in range(LOCK_ATTEMPTS):
        try:
            with target.begin() as conn:
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                return work(conn)
        except OperationalError as exc:
            if not isinstance(exc.orig, LockNotAvailable):
                raise
            time.sleep(RETRY_PAUSE * (attempt + 1))
    raise PartitionBusy(f"another transaction held the log's tables through {LOCK_ATTEMPTS} attempts of "
                        f"{LOCK_TIMEOUT} each: the next purge run tries again")


def _run(conn: Connection, statements: list[str]) -> None:
    for sql in statements:
        conn.exec_driver_sql(sql)


def _create_day(conn: Connection, table: str, start: float) -> str:
    """Create the day partition of ``table`` from ``start``, moving into it any rows the
    default partition holds in its range (PostgreSQL refuses a new partition whose rows
    sit in the default); its name."""
    name, end = day_name(table, start), start + DAY
    where = f"ts >= {start!r} AND ts < {end!r}"
    if not conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM {table}_default WHERE {where})")).scalar():
        _run(conn, [f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM ({start!r}) TO ({end!r})"])
    else:
        _run(conn, [f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)",
                    f"INSERT INTO {name} SELECT * FROM {table}_default WHERE {where}",
                    f"DELETE FROM {table}_default WHERE {where}",
                    f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({start!r}) TO ({end!r})"])
    return name


def ensure_ahead(target: Engine | Connection, now: float | None = None, days: int = DAYS_AHEAD) -> list[str]:
    """Create every day partition missing from the last one's end up to ``days`` days after
    ``now``'s, one transaction each; the names created. A no-op on an unpartitioned log
    (SQLite)."""
    now = time.time() if now is None else now
    created: list[str] = []
    if target.dialect.name != "postgresql" or not _locked(target, is_partitioned):
        return created
    for table in PARTITIONED:
        ranged = [p.upper for p in _locked(target, partial(partitions, table=table.name)) if p.upper is not None]
        start = max(ranged) if ranged else day_start(now)
        while start < day_start(now) + (days + 1) * DAY:
            created.append(_locked(target, partial(_create_day, table=table.name, start=start)))
            start += DAY
    return created


def drop_before(target: Engine | Connection, before: float,
                counted: tuple[str, ...] = ("contacts", "offer_uses")) -> dict[str, int]:
    """Drop every partition of the partitioned tables whose rows are all older than
    ``before`` (its upper bound at or before it), one transaction each; the rows dropped
    from the ``counted`` tables (counted first: a count of a day reads its index, far
    cheaper than deleting it). ``decisions`` is not counted by default: the purge counts
    them by their ``decision_ids`` rows, which it deletes anyway, rather than reading a
    day's index of its largest table."""
    dropped = {t.name: 0 for t in PARTITIONED}
    if target.dialect.name != "postgresql" or not _locked(target, is_partitioned):
        return dropped

    def drop(conn: Connection, name: str, count: bool) -> int:
        n = int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()) if count else 0
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        return n

    for table in PARTITIONED:
        for p in _locked(target, partial(partitions, table=table.name)):
            if p.upper is not None and p.upper <= before:
                dropped[table.name] += _locked(target, partial(drop, name=p.name, count=table.name in counted))
    return dropped


def convert(conn: Connection, now: float | None = None, days_ahead: int = DAYS_AHEAD) -> None:
    """Partition an unpartitioned log in place, in the caller's transaction (migration 0006,
    and a fresh PostgreSQL log right after its tables are created).

    Each table's rows are not copied: the table itself becomes the ``_history`` partition,
    ``[MINVALUE, next UTC midnight)`` (after its rows were checked to be older, one scan;
    rows dated later go to the default partition, then into their day), and day partitions
    follow from there. Its old rows are purged by batches until the
    history partition is entirely past the retention, then it is dropped like a day.
    ``decision_ids`` is filled from ``decisions`` and the outcomes' foreign key moved to it."""
    now = time.time() if now is None else now
    insp = inspect(conn)
    for fk in insp.get_foreign_keys("outcomes"):
        if fk["referred_table"] == "decisions":
            conn.exec_driver_sql(f'ALTER TABLE outcomes DROP CONSTRAINT "{fk["name"]}"')
    boundary = day_start(now) + DAY
    for table in PARTITIONED:
        t, old = table.name, f"{table.name}_history"
        pk = insp.get_pk_constraint(t)["name"]
        conn.exec_driver_sql(f"ALTER TABLE {t} RENAME TO {old}")
        conn.exec_driver_sql(f'ALTER TABLE {old} DROP CONSTRAINT "{pk}"')
        for ix in table.indexes:  # kept, renamed: ATTACH adopts them rather than building them again
            conn.exec_driver_sql(f"ALTER INDEX {ix.name} RENAME TO {old}_{ix.name}")
        conn.exec_driver_sql(f"CREATE TABLE {t} (LIKE {old} INCLUDING DEFAULTS) PARTITION BY RANGE (ts)")
        keys = [c.name for c in table.primary_key.columns] + ["ts"]
        conn.exec_driver_sql(f"ALTER TABLE {t} ADD PRIMARY KEY ({', '.join(keys)})")
        for ix in table.indexes:
            ix.create(conn)
        conn.exec_driver_sql(f"CREATE TABLE {t}_default PARTITION OF {t} DEFAULT")
        # rows dated after the boundary (a clock ahead, an import) go to the default, and to
        # their day once it is made (``ensure_ahead``, below)
        future = f"ts >= {boundary!r}"
        conn.exec_driver_sql(f"INSERT INTO {t} SELECT * FROM {old} WHERE {future}")
        conn.exec_driver_sql(f"DELETE FROM {old} WHERE {future}")
        # the range checked once by a constraint, so that ATTACH need not scan again
        conn.exec_driver_sql(f"ALTER TABLE {old} ADD CONSTRAINT {old}_range CHECK (ts < {boundary!r})")
        conn.exec_driver_sql(f"ALTER TABLE {t} ATTACH PARTITION {old} FOR VALUES FROM (MINVALUE) TO ({boundary!r})")
        conn.exec_driver_sql(f"ALTER TABLE {old} DROP CONSTRAINT {old}_range")
        if "id" in table.c:  # the id sequence belongs to the table, not to one partition
            _own_sequence(conn, old, t)
    decision_ids.create(conn)
    conn.exec_driver_sql("INSERT INTO decision_ids (event_id, ts) SELECT event_id, ts FROM decisions")
    conn.exec_driver_sql("ALTER TABLE outcomes ADD CONSTRAINT outcomes_event_id_fkey FOREIGN KEY (event_id) "
                         "REFERENCES decision_ids (event_id)")
    ensure_ahead(conn, now, days_ahead)


def _own_sequence(conn: Connection, source: str, table: str) -> None:
    """Make ``table.id`` the owner of the sequence behind ``source.id`` (its default's)."""
    seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": source}).scalar()
    if seq is not None:
        conn.exec_driver_sql(f"ALTER SEQUENCE {seq} OWNED BY {table}.id")


def unconvert(conn: Connection) -> None:
    """The reverse of ``convert`` (migration 0006's downgrade): each table copied back into
    an unpartitioned one with its key and indexes; ``decision_ids`` dropped."""
    conn.exec_driver_sql("ALTER TABLE outcomes DROP CONSTRAINT outcomes_event_id_fkey")
    for table in PARTITIONED:
        t = table.name
        conn.exec_driver_sql(f"ALTER TABLE {t} RENAME TO {t}_partitioned")
        conn.exec_driver_sql(f"ALTER TABLE {t}_partitioned DROP CONSTRAINT {t}_pkey")
        for ix in table.indexes:
            conn.exec_driver_sql(f"DROP INDEX {ix.name}")
        conn.exec_driver_sql(f"CREATE TABLE {t} (LIKE {t}_partitioned INCLUDING DEFAULTS)")
        conn.exec_driver_sql(f"INSERT INTO {t} SELECT * FROM {t}_partitioned")
        keys = [c.name for c in table.primary_key.columns]
        conn.exec_driver_sql(f"ALTER TABLE {t} ADD PRIMARY KEY ({', '.join(keys)})")
        for ix in table.indexes:
            ix.create(conn)
        if "id" in table.c:
            _own_sequence(conn, f"{t}_partitioned", t)
        conn.exec_driver_sql(f"DROP TABLE {t}_partitioned")
    conn.exec_driver_sql("ALTER TABLE outcomes ADD CONSTRAINT outcomes_event_id_fkey FOREIGN KEY (event_id) "
                         "REFERENCES decisions (event_id)")
    decision_ids.drop(conn)
