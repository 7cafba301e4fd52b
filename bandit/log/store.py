"""The decision log: decisions, outcomes and kill-switch state, durably stored.

One interface over SQLAlchemy Core, selected by URL: SQLite in WAL mode is the
embedded default, PostgreSQL the scale-out store (its tables partitioned by day, and a
decision kept once by event id through ``decision_ids``: ``bandit.log.partitions``). A decision row is committed
before the decision is returned to a caller. Outcomes are appended separately by
event id and are never updated, so the raw history is kept and the reward is
computed at training time (``bandit.domain.outcomes``).

The request path (contact history, kill-switch state, event-id lookups and the
decision insert) runs prebuilt statements, compiled once for the driver, on a raw
DBAPI connection held per thread: SQLAlchemy's per-execute machinery (connection
checkout, result metadata, row objects) cost more than the query itself. Everything
else goes through SQLAlchemy.

The schema is versioned (``bandit.log.migrations``): opening a store creates an empty
database at the current revision and refuses one that ``offer-bandit migrate`` must
upgrade first.

Customer ids never reach this module: callers pass the salted hash.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Generic, NamedTuple, TypeVar

import psycopg
from sqlalchemy import String, create_engine, event, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql.elements import TextClause

from bandit.config.catalog import CAPACITY_PERIODS, NO_OFFER
from bandit.domain.context import EMPTY_HISTORY, History, OfferEvent
from bandit.domain.outcomes import CONTACT_KIND, Outcome
from bandit.log.partitions import decision_ids
from bandit.log.records import (
    DecisionRecord,
    DecisionRow,
    Appended,
    CapacityLimit,
    OfferLimit,
    Written,
    from_ts,
    record_to_row,
    row_to_record,
    shown_contact,
    to_ts,
)
from bandit.log.schema import (
    CONTACT_COLUMNS,
    DECISION_COLUMNS,
    USE_COLUMNS,
    config_versions,
    contacts,
    decisions,
    metadata,
    outcomes,
    suspension_events,
)

# At most this many rows per insert statement: SQLite allows 32,766 parameters, and every
# distinct row count is one more statement in the driver's cache.
_ROWS_PER_STATEMENT = 64
# One decision by its event id ``:e``. PostgreSQL: with its time read from ``decision_ids``
# too, so that only the partition holding it is read (run-time pruning) rather than every
# day's index probed (``bandit.log.partitions``): 0.4 ms against 3.8 to 5.4 ms a lookup among
# 104 partitions, measured (docs/partitioning.md).
_BY_ID = {"postgresql": "event_id = :e AND ts = (SELECT ts FROM decision_ids WHERE event_id = :e)"}
_GET_DECISION_SQL = f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions WHERE {{by_id}}"
_HISTORY_SQL = text("SELECT kind, offer_id, ts FROM contacts WHERE customer_key = :k AND ts >= :since")
_HISTORIES_SQL = text("SELECT customer_key, kind, offer_id, ts FROM contacts WHERE customer_key = ANY(:ks) "
                      "AND ts >= :since")
# The offers shown to customers since a time, and an offer's uses: what a commit's limits
# count. PostgreSQL reads every key of a batch in one statement (``= ANY`` of an array: one
# round trip, where one per row made the commit of a batch of 16 offers some 36 round
# trips); SQLite, a local file, one statement per key.
_SHOWN_SINCE_SQL = text("SELECT customer_key, ts FROM contacts WHERE customer_key = :k AND kind = 'shown' "
                        "AND ts >= :since")
_SHOWN_SINCE_ANY_SQL = text("SELECT customer_key, ts FROM contacts WHERE customer_key = ANY(:ks) "
                            "AND kind = 'shown' AND ts >= :since")
_USED_SINCE_SQL = text("SELECT offer_id, channel, ts FROM offer_uses WHERE offer_id = :k AND ts >= :since")
_USED_SINCE_ANY_SQL = text("SELECT offer_id, channel, ts FROM offer_uses WHERE offer_id = ANY(:ks) "
                           "AND ts >= :since")
# Transaction-scoped PostgreSQL advisory locks, taken by a commit that checks limits: one per
# customer key of an ``OfferLimit`` (two replicas committing offers to one customer take
# turns, and the second counts the first's contact), then one per offer of a
# ``CapacityLimit``. The two-integer form is a lock space of its own (the schema lock of
# ``bandit.log.migrations`` uses the one-bigint form). All of a commit's locks are taken by
# one statement, in the arrays' order (``WITH ORDINALITY``; PostgreSQL evaluates a volatile
# function of the select list after the sort).
_CUSTOMER_LOCK_CLASS = 0x0FFE
_OFFER_LOCK_CLASS = 0x0FFF
_LOCKS_SQL = text("SELECT pg_advisory_xact_lock(c, hashtext(k)) FROM unnest(CAST(:cs AS integer[]), "
                  "CAST(:ks AS text[])) WITH ORDINALITY AS u(c, k, i) ORDER BY i")
_USES_SINCE_SQL = text("SELECT offer_id, channel, ts FROM offer_uses WHERE ts >= :since")
# A contact of kind ``:kind`` at ``:ts`` for the decision ``:e``, its customer and offer
# copied from the logged row (outcomes); the same for an activation, where a no_offer
# decision shows nothing.
_CONTACT_FROM_DECISION_SQL = (
    "INSERT INTO contacts (customer_key, ts, kind, offer_id) SELECT customer_key, :ts, :kind, chosen_id "
    "FROM decisions WHERE {by_id} AND customer_key IS NOT NULL"
)
_SHOWN_FROM_DECISION_SQL = _CONTACT_FROM_DECISION_SQL + f" AND chosen_id != '{NO_OFFER}'"
# SQLite (3.24+) and PostgreSQL share this syntax.
_UPSERT_SUSPENSION_SQL = text(
    "INSERT INTO suspensions (offer_id, suspended, reason, ts) VALUES (:offer_id, :suspended, :reason, :ts) "
    "ON CONFLICT (offer_id) DO UPDATE SET suspended = excluded.suspended, reason = excluded.reason, ts = excluded.ts"
)
_T = TypeVar("_T")
# What a repeated event id raises from an insert that does not skip it (SQLite's
# IntegrityError is also raised by other constraints: the row-by-row redo then meets the
# same error and raises it).
_REPEATED_KEY: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.errors.UniqueViolation)
_PG = PGDialect_psycopg()

STORE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error, SQLAlchemyError)
"""What the log's database raises when it is down or refuses (the request path's raw
connections raise the driver's errors, SQLAlchemy's paths its own): the errors a caller
turns into ``LogUnavailable``, and nothing broader."""


class _Compiled:
    """A prebuilt statement compiled once for the driver's parameter style."""

    def __init__(self, stmt: TextClause, dialect: Dialect):
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        self._order = compiled.positiontup  # positional styles (sqlite's qmark); None for named ones

    def params(self, values: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        return values if self._order is None else tuple(values[k] for k in self._order)


class Step(NamedTuple):
    """One statement of a ``Plan`` and what its result is wanted as: ``none``, the first
    row (``one``), every row (``all``), the count of rows it changed (``rowcount``), or
    nothing but its being done (``done``: a pipelining driver waits for every statement
    sent so far, so that their errors reach the plan at this step)."""

    sql: str
    params: Sequence[Any] | dict[str, Any] | None = None
    want: str = "none"


Plan = Generator[Step, Any, _T]
"""A transaction written once for both drivers: a generator that yields the ``Step``s to
run, is sent each one's result (or has the database's error thrown into it at the step
where it surfaced: a plan may catch it, say ROLLBACK and go on), and returns its answer. ``run_plan`` runs it on a
synchronous cursor, ``bandit.log.async_pg`` on an asynchronous one: the SQL and the logic
(the limits' locks and counts) exist once."""


def step_result(cur: Any, want: str) -> Any:
    """What a ``Step`` wants from the cursor that ran it (sync or async alike: these calls
    do not wait on the server once ``execute`` has returned)."""
    if want in ("none", "done"):
        return None
    if want == "rowcount":
        return cur.rowcount
    return cur.fetchone() if want == "one" else cur.fetchall()


def run_plan(cur: Any, plan: "Plan[_T]") -> _T:
    """Run ``plan`` on a synchronous cursor in autocommit mode. A statement's database error
    is thrown into the plan; one it does not catch is raised, after a ROLLBACK."""
    try:
        step = next(plan)
        while True:
            try:
                if step.params is None:
                    cur.execute(step.sql)
                else:
                    cur.execute(step.sql, step.params)
                result = step_result(cur, step.want)
            except STORE_ERRORS as exc:
                step = plan.throw(exc)
                continue
            step = plan.send(result)
    except StopIteration as done:
        return done.value
    except BaseException:
        try:
            cur.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise


def history_from_rows(rows: Sequence[tuple[str, str, float]]) -> History:
    """A customer's ``History`` from their ``contacts`` rows (kind, offer, ts): the request
    path's, built without validating our own rows."""
    if not rows:
        return EMPTY_HISTORY
    shown, declined, accepted, complaints = set(), set(), set(), []
    event = OfferEvent.model_construct
    for kind, offer_id, ts in rows:
        if kind == "complaint":
            complaints.append(ts)
        else:
            {"shown": shown, "declined": declined, "accepted": accepted}[kind].add(
                event(offer_id=offer_id, at=from_ts(ts)))
    key = lambda e: (e.at, e.offer_id)  # noqa: E731
    return History.model_construct(
        shown=tuple(sorted(shown, key=key)),
        declined=tuple(sorted(declined, key=key)),
        accepted=tuple(sorted(accepted, key=key)),
        last_complaint=from_ts(max(complaints)) if complaints else None,
    )


class Cached(Generic[_T]):
    """A value read from the log, reused for ``seconds`` (the kill switch, the capacities'
    uses): shared by the synchronous and the asynchronous reads of one store."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._value: tuple[float, _T] | None = None

    def get(self) -> _T | None:
        """The value if it is fresh enough, else ``None``."""
        v = self._value
        return v[1] if v is not None and time.monotonic() - v[0] < self.seconds else None

    def put(self, value: _T, read_at: float) -> _T:
        self._value = (read_at, value)
        return value

    def clear(self) -> None:
        self._value = None


def _shown_count(lim: OfferLimit, shown: dict[str, list[Any]]) -> int:
    """Offers shown to ``lim``'s customer at or after its ``since`` (``(key, ts)`` rows)."""
    return sum(1 for _, ts in shown.get(lim.customer_key, ()) if ts >= lim.since)


def _used_count(cap: CapacityLimit, used: dict[str, list[Any]]) -> int:
    """Uses of ``cap``'s offer at or after its ``since`` on its channels (``(offer, channel, ts)``)."""
    return sum(1 for _, channel, ts in used.get(cap.offer_id, ())
               if ts >= cap.since and (cap.channels is None or channel in cap.channels))


def _insert_once_by_id(n: int, skip_logged: bool = True) -> str:
    """PostgreSQL's ``n``-row decision insert: one statement that claims each event id in
    ``decision_ids`` (``ON CONFLICT DO NOTHING``) and inserts the decisions whose id it
    claimed, so its row count is the new decisions' as SQLite's ``ON CONFLICT (event_id)
    DO NOTHING`` is. Why: ``decisions`` is partitioned by time (``bandit.log.partitions``)
    and can no longer be unique by event id alone. A repeated id within the rows counts
    once (``DISTINCT ON``), so the count is short and the caller redoes them one by one.
    Without ``skip_logged`` it claims them all: a repeated id fails it (a unique violation
    of ``decision_ids``), as SQLite's plain insert fails."""
    # cast to the column's base type (a string to text, not to varchar(n), which would cut
    # it short where the insert refuses it)
    cast = ", ".join("%s::text" if isinstance(decisions.c[c].type, String) else
                     f"%s::{decisions.c[c].type.compile(dialect=_PG)}" for c in DECISION_COLUMNS)
    columns = ", ".join(DECISION_COLUMNS)
    values = f"WITH v ({columns}) AS (VALUES {', '.join([f'({cast})'] * n)}), "
    if not skip_logged:
        return (values + "claimed AS (INSERT INTO decision_ids (event_id, ts) SELECT event_id, ts FROM v) "
                f"INSERT INTO decisions ({columns}) SELECT {columns} FROM v")
    return (values +
            "once AS (SELECT DISTINCT ON (event_id) * FROM v), "
            "claimed AS (INSERT INTO decision_ids (event_id, ts) SELECT event_id, ts FROM once "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id) "
            f"INSERT INTO decisions ({columns}) SELECT {', '.join('once.' + c for c in DECISION_COLUMNS)} "
            "FROM once JOIN claimed USING (event_id)")


class _Insert(NamedTuple):
    """What one decision inserts: its row (or a fallback's), its contact and use, if any."""

    decision: tuple[Any, ...]
    contact: tuple[Any, ...] | None
    use: tuple[Any, ...] | None
    status: Written


class DecisionStore:
    """The log, on SQLite (WAL) or PostgreSQL."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", suspension_refresh: float = 1.0,
                 pool_size: int | None = None):
        """``pool_size`` (PostgreSQL): at most this many connections for every synchronous
        use of the store in this process (SQLAlchemy's pool without overflow; the request
        path's raw connections are borrowed from it per call); ``None``: SQLAlchemy's default
        pool, and a raw connection kept per thread."""
        self.url = url
        self.suspension_refresh = suspension_refresh
        self._suspended_cache: Cached[frozenset[str]] = Cached(suspension_refresh)
        sqlite = url.startswith("sqlite")
        bounded = {} if sqlite or pool_size is None else {"pool_size": pool_size, "max_overflow": 0}
        self._borrow = bool(bounded)
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=not sqlite, **bounded)
        if self.engine.dialect.name == "sqlite":

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
                cur.execute("PRAGMA busy_timeout=10000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

        # Create an empty log at the current revision, or refuse one that needs
        # `offer-bandit migrate` (imported here: it imports this module's tables).
        from bandit.log.migrations import ensure_schema

        ensure_schema(self.engine, metadata)
        d = self.engine.dialect
        self._insert_by_rows: dict[tuple[str, int, bool], str] = {}
        by_id = _BY_ID.get(d.name, "event_id = :e")
        self._sql_get = _Compiled(text(_GET_DECISION_SQL.format(by_id=by_id)), d)
        self._sql_history = _Compiled(_HISTORY_SQL, d)
        self._sql_histories = _Compiled(_HISTORIES_SQL, d) if d.name == "postgresql" else None
        pg = d.name == "postgresql"
        self._sql_shown_since = _Compiled(_SHOWN_SINCE_ANY_SQL if pg else _SHOWN_SINCE_SQL, d)
        self._sql_used_since = _Compiled(_USED_SINCE_ANY_SQL if pg else _USED_SINCE_SQL, d)
        self._sql_locks = _Compiled(_LOCKS_SQL, d) if pg else None
        lock = " FOR UPDATE" if d.name == "postgresql" else ""
        self._sql_lock_decision = _Compiled(text(f"SELECT 1 FROM decisions WHERE {by_id}{lock}"), d)
        self._sql_outcomes_of = _Compiled(text("SELECT type, dedupe FROM outcomes WHERE event_id = :e"), d)
        self._sql_insert_outcome = _Compiled(text(
            "INSERT INTO outcomes (event_id, type, value, score, ts, dedupe) "
            "VALUES (:e, :type, :value, :score, :ts, :dedupe)"), d)
        self._contact_from_decision = text(_CONTACT_FROM_DECISION_SQL.format(by_id=by_id))
        self._shown_from_decision = text(_SHOWN_FROM_DECISION_SQL.format(by_id=by_id))
        self._sql_contact_from_decision = _Compiled(self._contact_from_decision, d)
        self._sql_uses_since = _Compiled(_USES_SINCE_SQL, d)
        self._uses_cache: Cached[list[tuple[str, str | None, float]]] = Cached(suspension_refresh)
        # SQLite: take the write lock at BEGIN, so that a limit's count and the inserts after it
        # see one state of the log (a deferred transaction that read first could not write).
        self._begin = "BEGIN IMMEDIATE" if d.name == "sqlite" else "BEGIN"
        self._sql_suspended = _Compiled(text("SELECT offer_id FROM suspensions WHERE suspended = :t"), d)
        self._local = threading.local()
        self._raw_conns: list[Any] = []
        self._raw_lock = threading.Lock()

    def close(self) -> None:
        with self._raw_lock:
            for conn in self._raw_conns:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing a broken connection is best effort
                    pass
            self._raw_conns.clear()
        self._local = threading.local()
        self.engine.dispose()

    # -- the request path's raw connection -------------------------------------
    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor on this thread's raw connection, in the driver's autocommit mode
        (reads see committed data and hold no transaction; writes say BEGIN/COMMIT).
        A connection that raised is dropped, so the next call reconnects."""
        if self._borrow:
            with self._borrowed_cursor() as cur:
                yield cur
            return
        conn = getattr(self._local, "conn", None)
        if conn is None:
            fairy = self.engine.raw_connection()
            conn = fairy.driver_connection
            fairy.detach()  # ours alone, and never handed back to the pool in autocommit mode
            if self.engine.dialect.name == "sqlite":
                conn.isolation_level = None
            else:
                conn.autocommit = True
            self._local.conn = conn
            with self._raw_lock:
                self._raw_conns.append(conn)
        cur = conn.cursor()
        try:
            yield cur
        except Exception:
            self._local.conn = None
            with self._raw_lock:
                if conn in self._raw_conns:
                    self._raw_conns.remove(conn)
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
            raise
        finally:
            try:
                cur.close()
            except Exception:  # noqa: BLE001
                pass

    @contextmanager
    def _borrowed_cursor(self) -> Iterator[Any]:
        """``_cursor`` with a bounded pool: a connection of the engine's pool for this call,
        in autocommit mode while it is ours; one that raised is invalidated (reconnected)."""
        fairy = self.engine.raw_connection()
        conn = fairy.driver_connection
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                yield cur
            conn.autocommit = False
        except BaseException:
            fairy.invalidate()
            raise
        finally:
            fairy.close()

    def probe(self) -> None:
        """Raise (``STORE_ERRORS``) if the log does not answer now: a connection from the
        pool touches the decisions table. For a health check while writes fail: any thread
        may call it, and it holds no connection of the request path's."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM decisions WHERE event_id = ''").all()

    # -- decisions -----------------------------------------------------------
    def log_decision(self, rec: DecisionRecord) -> bool:
        """Insert durably; ``False`` if the event id was already logged (nothing written)."""
        return self.log_decisions([rec])[0]

    def log_decisions(self, recs: list[DecisionRecord]) -> list[bool]:
        """Insert several decisions in one transaction (one commit, one fsync).

        A duplicate event id is reported as ``False`` without failing the others.
        On any error nothing is committed.
        """
        return [w is Written.NEW for w in self.insert_decision_rows([self.decision_row(r) for r in recs])]

    def write_decision(self, rec: DecisionRecord, limit: OfferLimit | None = None,
                       capacity: CapacityLimit | None = None) -> Written:
        """Insert one decision durably, checking its ``limit`` and ``capacity`` inside the commit."""
        return self.insert_decision_rows([self.decision_row(rec, limit, capacity)])[0]

    def decision_row(self, rec: DecisionRecord, limit: OfferLimit | None = None,
                     capacity: CapacityLimit | None = None) -> DecisionRow:
        """What ``insert_decision_rows`` takes: the decision's row in column order and,
        when it is a contact (an offer shown), its ``contacts`` row; with a ``limit``, its
        fallback's row; with a ``capacity``, its ``offer_uses`` row and that fallback's row."""
        fallback = None if limit is None else self._row_values(limit.fallback)
        if capacity is None:
            return DecisionRow(self._row_values(rec), shown_contact(rec), limit, fallback)
        use = (capacity.offer_id, rec.channel, rec.ts, rec.event_id)
        return DecisionRow(self._row_values(rec), shown_contact(rec), limit, fallback, capacity,
                           self._row_values(capacity.fallback), use)

    @staticmethod
    def _row_values(rec: DecisionRecord) -> tuple[Any, ...]:
        row = record_to_row(rec)
        return tuple(row[c] for c in DECISION_COLUMNS)

    def insert_decision_rows(self, rows: list[DecisionRow]) -> list[Written]:
        """Insert rows made by ``decision_row`` in one transaction; for each, whether it was
        logged as made, was a repeated event id (nothing written), or met its
        ``OfferLimit`` or ``CapacityLimit`` (its fallback logged instead).

        The statements are ``insert_plan``'s, run here on this thread's raw connection (the
        asynchronous path, ``bandit.log.async_pg``, runs the same plan on its own)."""
        if not rows:
            return []
        with self._cursor() as cur:
            return run_plan(cur, self.insert_plan(rows))

    def insert_plan(self, rows: list[DecisionRow]) -> "Plan[list[Written]]":
        """The transaction that inserts ``rows``, as the statements it runs (``Step``s, each
        sent back its result): one description of it for the synchronous and the
        asynchronous driver. BEGIN, the limits' locks and counts, the inserts, COMMIT.

        The rows go to the driver as multi-row ``INSERT`` statements (up to
        ``_ROWS_PER_STATEMENT`` rows each): one call into the driver per chunk rather than
        per row. The inserts expect every event id to be new, so that no answer need be
        awaited between them and the COMMIT (a pipelining driver sends them together: one
        wait where there were three). A repeated event id (a client's retry: rare) fails
        the transaction; it is rolled back and redone row by row, each insert skipping an
        event id already logged, to learn which rows were new."""
        yield Step(self._begin)
        chosen = yield from self._within_limits(rows)
        try:
            yield from self._insert_all("decisions", [c.decision for c in chosen], skip_logged=False)
            yield from self._insert_all("contacts", [c.contact for c in chosen if c.contact is not None])
            yield from self._insert_all("offer_uses", [c.use for c in chosen if c.use is not None])
            yield Step("COMMIT", want="done")
            return [c.status for c in chosen]
        except _REPEATED_KEY:  # the fast path's only expected failure; any other error goes on up
            yield Step("ROLLBACK")
        yield Step(self._begin)
        yield from self._lock_limits(rows)
        written = []
        for r in rows:  # each limit's count sees the rows inserted before it
            c = (yield from self._within_limits([r], locked=True))[0]
            new = (yield from self._insert_all("decisions", [c.decision])) == 1
            if new and c.contact is not None:
                yield from self._insert_all("contacts", [c.contact])
            if new and c.use is not None:
                yield from self._insert_all("offer_uses", [c.use])
            written.append(c.status if new else Written.DUPLICATE)
        yield Step("COMMIT")
        return written

    def _lock_limits(self, rows: list[DecisionRow]) -> "Plan[None]":
        """PostgreSQL: the per-customer locks of the rows' limits, then the per-offer locks of
        their capacities, each in key order (every transaction takes them in this one order,
        so none can deadlock another), in one statement. SQLite's BEGIN IMMEDIATE has already
        serialized every writer."""
        if self._sql_locks is None:
            return
        customers = sorted({r.limit.customer_key for r in rows if r.limit is not None})
        offers = sorted({r.capacity.offer_id for r in rows if r.capacity is not None})
        q = self._sql_locks
        yield Step(q.sql, q.params({"cs": [_CUSTOMER_LOCK_CLASS] * len(customers) + [_OFFER_LOCK_CLASS] * len(offers),
                                    "ks": customers + offers}))

    def _within_limits(self, rows: list[DecisionRow], locked: bool = False) -> "Plan[list[_Insert]]":
        """For each row, what to insert: its own rows, or a fallback's where its limit (the
        customer's cap, checked first) or its offer's capacity is reached, counting what the
        log holds and what ``rows`` inserts before it."""
        limits = [r.limit for r in rows if r.limit is not None]
        capacities = [r.capacity for r in rows if r.capacity is not None]
        if not limits and not capacities:
            return [_Insert(r.decision, r.contact, None, Written.NEW) for r in rows]
        if not locked:
            yield from self._lock_limits(rows)
        shown = yield from self._logged_since(self._sql_shown_since, {lim.customer_key for lim in limits},
                                              min((lim.since for lim in limits), default=0.0))
        used = yield from self._logged_since(self._sql_used_since, {cap.offer_id for cap in capacities},
                                             min((cap.since for cap in capacities), default=0.0))
        out: list[_Insert] = []
        for r in rows:
            choice = _Insert(r.decision, r.contact, r.use, Written.NEW)
            if r.limit is not None and _shown_count(r.limit, shown) > r.limit.allowed:
                assert r.fallback is not None
                choice = _Insert(r.fallback, None, None, Written.LIMITED)
            elif r.capacity is not None and _used_count(r.capacity, used) > r.capacity.allowed:
                assert r.capacity_fallback is not None
                choice = _Insert(r.capacity_fallback, None, None, Written.AT_CAPACITY)
            if choice.contact is not None:  # (customer_key, ts, kind, offer_id): counted by the rows after it
                shown.setdefault(choice.contact[0], []).append((choice.contact[0], choice.contact[1]))
            if choice.use is not None:  # (offer_id, channel, ts, event_id)
                used.setdefault(choice.use[0], []).append(choice.use[:3])
            out.append(choice)
        return out

    def _logged_since(self, q: "_Compiled", keys: set[str], since: float) -> "Plan[dict[str, list[Any]]]":
        """The rows ``q`` reads for ``keys`` at or after ``since`` (each row's first column is
        its key), by key: on PostgreSQL in one statement, on SQLite one per key."""
        by_key: dict[str, list[Any]] = {k: [] for k in keys}
        if not keys:
            return by_key
        if self._sql_locks is not None:
            batches = [{"ks": sorted(keys), "since": since}]
        else:
            batches = [{"k": k, "since": since} for k in sorted(keys)]
        for params in batches:
            for row in (yield Step(q.sql, q.params(params), "all")):
                by_key[row[0]].append(tuple(row))
        return by_key

    def capacity_uses(self, now: float | None = None, fresh: bool = False) -> list[tuple[str, str | None, float]]:
        """Uses of offers with a capacity in the 24 hours (the longest period) before ``now``
        (default: the clock's), as ``(offer_id, channel, ts)``: what the guardrails count.
        Cached like ``suspended`` (a second stale at most; the commit counts again, exactly)."""
        with self._cursor() as cur:
            return run_plan(cur, self.capacity_uses_plan(now, fresh))

    def capacity_uses_plan(self, now: float | None = None,
                           fresh: bool = False) -> "Plan[list[tuple[str, str | None, float]]]":
        """``capacity_uses`` as a ``Plan`` (no statement while the cached value is fresh)."""
        if not fresh and (cached := self._uses_cache.get()) is not None:
            return cached
        read_at = time.monotonic()
        q = self._sql_uses_since
        since = (time.time() if now is None else now) - CAPACITY_PERIODS["day"]
        rows = yield Step(q.sql, q.params({"since": since}), "all")
        return self._uses_cache.put([(str(o), c, float(ts)) for o, c, ts in rows], read_at)

    def _insert_all(self, table: str, rows: list[tuple[Any, ...]], skip_logged: bool = True) -> "Plan[int]":
        """Insert ``rows`` into ``table`` (``decisions``: skipping event ids already logged)
        in chunks of ``_ROWS_PER_STATEMENT``; how many rows were inserted (``decisions``
        when ``skip_logged``: the others' counts are not asked for, so a pipelining driver
        need not wait). Without ``skip_logged`` an event id already logged fails the insert."""
        count = 0
        counted = table == "decisions" and skip_logged
        for i in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[i : i + _ROWS_PER_STATEMENT]
            sql = self._insert_sql(table, len(chunk), skip_logged)
            count += (yield Step(sql, [v for row in chunk for v in row], "rowcount" if counted else "none")) or 0
        return count

    def _insert_sql(self, table: str, n: int, skip_logged: bool = True) -> str:
        """The ``n``-row insert into ``table``, in the driver's positional parameter style
        (built once per table, n and ``skip_logged``: for ``decisions``, skip event ids
        already logged)."""
        sql = self._insert_by_rows.get((table, n, skip_logged))
        if sql is None:
            mark = "?" if self.engine.dialect.name == "sqlite" else "%s"
            columns = {"decisions": DECISION_COLUMNS, "contacts": CONTACT_COLUMNS, "offer_uses": USE_COLUMNS}[table]
            one = "(" + ", ".join([mark] * len(columns)) + ")"
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * n)}"
            if table == "decisions" and self.engine.dialect.name == "postgresql":
                sql = _insert_once_by_id(n, skip_logged)
            elif table == "decisions" and skip_logged:
                sql += " ON CONFLICT (event_id) DO NOTHING"
            self._insert_by_rows[(table, n, skip_logged)] = sql
        return sql

    def log_many(self, recs: list[DecisionRecord]) -> int:
        """Insert a batch in one transaction (imports); skips event ids already present.

        Returns how many were new. Duplicates within the batch keep the first.
        """
        if not recs:
            return 0
        with self.engine.begin() as conn:
            ids = [r.event_id for r in recs]
            known = decision_ids if conn.dialect.name == "postgresql" else decisions  # the ids' table: one index
            present = {row[0] for row in conn.execute(select(known.c.event_id).where(known.c.event_id.in_(ids)))}
            rows, shown = [], []
            for rec in recs:
                if rec.event_id not in present:
                    present.add(rec.event_id)
                    rows.append(record_to_row(rec))
                    if (contact := shown_contact(rec)) is not None:
                        shown.append(dict(zip(CONTACT_COLUMNS, contact, strict=True)))
            if rows and conn.dialect.name == "postgresql":  # the ids' table keeps them once (partitions)
                conn.execute(decision_ids.insert(), [{"event_id": r["event_id"], "ts": r["ts"]} for r in rows])
            if rows:
                conn.execute(decisions.insert(), rows)
            if shown:
                conn.execute(contacts.insert(), shown)
        return len(rows)

    def get_decision(self, event_id: str) -> DecisionRecord | None:
        with self._cursor() as cur:
            return run_plan(cur, self.get_decision_plan(event_id))

    def get_decision_plan(self, event_id: str) -> "Plan[DecisionRecord | None]":
        row = yield Step(self._sql_get.sql, self._sql_get.params({"e": event_id}), "one")
        return row_to_record(dict(zip(DECISION_COLUMNS, row, strict=True))) if row else None

    def activate(self, event_id: str, ts: float) -> bool | None:
        """Mark a deferred decision shown. ``None``: unknown id; ``False``: already active."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(decisions)
                .where(decisions.c.event_id == event_id, decisions.c.activated.is_(False), *self._pruned(event_id))
                .values(activated=True, activated_ts=ts)
            )
            if res.rowcount:
                conn.execute(self._shown_from_decision, {"e": event_id, "ts": ts, "kind": "shown"})
                return True
            exists = conn.execute(select(decisions.c.event_id).where(decisions.c.event_id == event_id)).first()
        return False if exists else None

    def _pruned(self, event_id: str) -> list[Any]:
        """PostgreSQL: the condition that reads the one partition holding the decision
        ``event_id`` (its time, from ``decision_ids``: see ``_BY_ID``); SQLite: none."""
        if self.engine.dialect.name != "postgresql":
            return []
        return [decisions.c.ts == select(decision_ids.c.ts).where(decision_ids.c.event_id == event_id).scalar_subquery()]

    def count_decisions(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(decisions)).scalar_one())

    def time_range(self) -> tuple[float, float] | None:
        """The times of the first and the last decision logged, or ``None`` for an empty log
        (what Personalizer's log properties report)."""
        with self.engine.connect() as conn:
            first, last = conn.execute(select(func.min(decisions.c.ts), func.max(decisions.c.ts))).one()
        return None if first is None else (float(first), float(last))

    # -- outcomes ------------------------------------------------------------
    def add_outcome(self, o: Outcome, conflicts: frozenset[str] = frozenset()) -> tuple[Appended, str | None]:
        """Append an outcome unless the decision already has the identical one (``DUPLICATE``)
        or one of a type in ``conflicts`` (``CONFLICT``, with that type: nothing written).

        One transaction that holds the decision (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the
        decision's row locked ``FOR UPDATE``), so two outcomes for one decision arriving at
        once cannot both pass the check: the first recorded stands."""
        with self._cursor() as cur:
            return run_plan(cur, self._add_outcome_plan(o, conflicts))

    def _add_outcome_plan(self, o: Outcome, conflicts: frozenset[str]) -> "Plan[tuple[Appended, str | None]]":
        yield Step(self._begin)
        q = self._sql_lock_decision
        yield Step(q.sql, q.params({"e": o.event_id}), "all")
        q = self._sql_outcomes_of
        present = yield Step(q.sql, q.params({"e": o.event_id}), "all")
        if any(dedupe == o.dedupe for _, dedupe in present):
            verdict: tuple[Appended, str | None] = (Appended.DUPLICATE, None)
        elif (clash := next((t for t, _ in present if t in conflicts), None)) is not None:
            verdict = (Appended.CONFLICT, clash)
        else:
            q = self._sql_insert_outcome
            yield Step(q.sql, q.params({"e": o.event_id, "type": o.type, "value": o.value, "score": o.score,
                                        "ts": o.ts, "dedupe": o.dedupe}))
            if o.type in CONTACT_KIND:
                q = self._sql_contact_from_decision
                yield Step(q.sql, q.params({"e": o.event_id, "ts": o.ts, "kind": CONTACT_KIND[o.type]}))
            verdict = (Appended.NEW, None)
        yield Step("COMMIT")
        return verdict

    def add_outcomes(self, items: list[Outcome]) -> int:
        """Append a batch in one transaction, skipping exact duplicates. Returns how many were new."""
        if not items:
            return 0
        with self.engine.begin() as conn:
            ids = list({o.event_id for o in items})
            have = {
                (r.event_id, r.dedupe)
                for r in conn.execute(select(outcomes.c.event_id, outcomes.c.dedupe).where(outcomes.c.event_id.in_(ids)))
            }
            rows = []
            for o in items:
                if (o.event_id, o.dedupe) not in have:
                    have.add((o.event_id, o.dedupe))
                    rows.append({"event_id": o.event_id, "type": o.type, "value": o.value, "score": o.score,
                                 "ts": o.ts, "dedupe": o.dedupe})
            if rows:
                conn.execute(outcomes.insert(), rows)
                contact_rows = [{"e": r["event_id"], "ts": r["ts"], "kind": CONTACT_KIND[r["type"]]}
                                for r in rows if r["type"] in CONTACT_KIND]
                if contact_rows:
                    conn.execute(self._contact_from_decision, contact_rows)
        return len(rows)

    def outcomes_for(self, event_id: str) -> list[Outcome]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outcomes).where(outcomes.c.event_id == event_id).order_by(outcomes.c.id)
            ).all()
        return [Outcome(r.event_id, r.type, r.ts, r.value, r.score) for r in rows]

    # -- contact history -----------------------------------------------------
    def history(self, customer_key: str, now: datetime, lookback_days: float) -> History:
        """What the log knows of a customer: offers shown (activated), declined, accepted, complaints.

        On the request path: one prebuilt statement over ``contacts``, no validation of our
        own rows (``history_from_rows``).
        """
        with self._cursor() as cur:
            return run_plan(cur, self.history_plan(customer_key, now, lookback_days))

    def history_plan(self, customer_key: str, now: datetime, lookback_days: float) -> "Plan[History]":
        since = to_ts(now - timedelta(days=lookback_days))
        rows = yield Step(self._sql_history.sql, self._sql_history.params({"k": customer_key, "since": since}), "all")
        return history_from_rows(rows)

    def histories_plan(self, wanted: list[tuple[str, float]]) -> "Plan[list[History]]":
        """The histories of several customers, each since its own time (``(key, since)``
        pairs), in one statement (PostgreSQL: ``= ANY`` of an array): the rows since the
        earliest, each key's then cut at its own ``since``. For requests that arrive
        together (``bandit.log.async_pg``): one round trip instead of one each."""
        if self._sql_histories is None:
            raise RuntimeError("histories_plan is PostgreSQL's")
        q = self._sql_histories
        rows = yield Step(q.sql, q.params({"ks": sorted({k for k, _ in wanted}),
                                           "since": min(s for _, s in wanted)}), "all")
        by_key: dict[str, list[tuple[str, str, float]]] = {}
        for key, kind, offer_id, ts in rows:
            by_key.setdefault(key, []).append((kind, offer_id, ts))
        return [history_from_rows([r for r in by_key.get(k, ()) if r[2] >= since]) for k, since in wanted]

    # -- kill switch ---------------------------------------------------------
    def set_suspended(self, offer_id: str, suspended: bool, reason: str = "", actor: str | None = None) -> None:
        """Set an offer's kill switch: one upsert, so that replicas (an admin route on
        one, the monitor flow on another) setting the same offer at once cannot collide
        (a delete then insert could: both delete, then the second insert fails); and the
        event appended to ``suspension_events`` (who, when, why) in the same transaction."""
        self._suspended_cache.clear()
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(_UPSERT_SUSPENSION_SQL,
                         {"offer_id": offer_id, "suspended": suspended, "reason": reason, "ts": now})
            conn.execute(insert(suspension_events).values(offer_id=offer_id, suspended=suspended, reason=reason,
                                                          actor=actor, ts=now))

    def suspension_history(self, offer_id: str | None = None) -> list[dict[str, Any]]:
        """Every suspension and resume (of one offer, or all), oldest first."""
        q = select(suspension_events).order_by(suspension_events.c.ts, suspension_events.c.id)
        if offer_id is not None:
            q = q.where(suspension_events.c.offer_id == offer_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def resumed_at(self) -> dict[str, float]:
        """When each offer was last resumed: the monitor judges it on what came after."""
        q = (select(suspension_events.c.offer_id, func.max(suspension_events.c.ts))
             .where(suspension_events.c.suspended.is_(False)).group_by(suspension_events.c.offer_id))
        with self.engine.connect() as conn:
            return {str(o): float(ts) for o, ts in conn.execute(q)}

    # -- the configuration a reload published ------------------------------------
    def publish_config(self, catalog_text: str, policy_text: str, catalog_version: str, policy_version: str,
                       sources: tuple[str, str] = ("", ""), published_by: str | None = None) -> int:
        """Append a configuration for every replica to serve; its id."""
        with self.engine.begin() as conn:
            res = conn.execute(insert(config_versions).values(
                ts=time.time(), catalog_version=catalog_version, policy_version=policy_version,
                catalog_text=catalog_text, policy_text=policy_text, catalog_source=sources[0],
                policy_source=sources[1], published_by=published_by))
            return int(res.inserted_primary_key[0])

    def latest_config_id(self) -> int:
        """The newest published configuration's id (0: none yet): one indexed read."""
        with self._cursor() as cur:
            cur.execute("SELECT max(id) FROM config_versions")
            found = cur.fetchone()[0]
        return int(found or 0)

    def published_config(self, config_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(config_versions).where(config_versions.c.id == config_id)).first()
        return dict(row._mapping) if row is not None else None

    def suspended(self, fresh: bool = False) -> frozenset[str]:
        """Suspended offer ids. Cached for ``suspension_refresh`` seconds on the request path;
        a change made through this store is seen at once, one made through another replica
        within the refresh interval. ``fresh=True`` always reads the table."""
        with self._cursor() as cur:
            return run_plan(cur, self.suspended_plan(fresh))

    def suspended_plan(self, fresh: bool = False) -> "Plan[frozenset[str]]":
        """``suspended`` as a ``Plan`` (no statement while the cached value is fresh)."""
        if not fresh and (cached := self._suspended_cache.get()) is not None:
            return cached
        read_at = time.monotonic()
        q = self._sql_suspended
        rows = yield Step(q.sql, q.params({"t": True}), "all")
        return self._suspended_cache.put(frozenset(r[0] for r in rows), read_at)
