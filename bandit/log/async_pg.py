"""The request path on PostgreSQL without blocking the event loop.

On SQLite the request path's reads and the group commit run on the loop thread (a local
file: nothing to wait on; ``bandit.log.writer`` says what else was measured). On
PostgreSQL every statement is a round trip to the server, and one run on the loop stalls
every request in flight: measured 1,560 decisions/s against SQLite's 3,284 with 16
connections. Here the same statements (the store's ``Plan``s: one text of the SQL and of
the limits' logic for both drivers) run on psycopg's asyncio connections, so the loop
decides other requests while the server answers.

Statements are not prepared on the server (``prepare_threshold=None``): psycopg prepares a
statement after its fifth run, and PostgreSQL then settles on a generic plan made while
the log was small; the request path's reads (``customer_key = ANY(...)``) were planned for
an empty table and slowed as it grew (measured: 2,448, 1,817, 1,417 decisions/s in three
10-second rounds on one fresh log; unprepared, 2,437 with rounds within 10% of each other).

Connections: at most ``pool_size`` per replica on this path, opened on first need and
kept; a request that finds them all busy waits for one (``asyncio.Semaphore``). A
connection that raised is closed and replaced by the next caller, so a restarted server
is reconnected to without a restart of the replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg
from sqlalchemy.engine import make_url

from bandit.domain.context import History
from bandit.log.batching import Batcher
from bandit.log.records import DecisionRecord, DecisionRow, Written, to_ts
from bandit.log.store import DecisionStore, Plan, Step
from bandit.log.writer import GroupCommitWriter, PipelinedCommitWriter

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def conninfo(sqlalchemy_url: str) -> str:
    """The libpq URI of a ``postgresql+psycopg://`` SQLAlchemy URL (query options kept)."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _result(cur: psycopg.AsyncCursor[Any], want: str) -> Any:
    if want in ("none", "done"):
        return None
    if want == "rowcount":
        return cur.rowcount
    return await (cur.fetchone() if want == "one" else cur.fetchall())


class AsyncLog:
    """The store's request-path reads and its insert transaction, awaited on a bounded
    set of asyncio connections (autocommit mode: reads hold no transaction, the insert
    plan says BEGIN and COMMIT)."""

    def __init__(self, store: DecisionStore, pool_size: int):
        if store.engine.dialect.name != "postgresql":
            raise ValueError("the asynchronous log path is PostgreSQL's")
        self.store = store
        self.pool_size = pool_size
        self._conninfo = conninfo(store.url)
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._open = 0
        self._slots = asyncio.Semaphore(pool_size)
        # One batch of reads, and one of commits, at a time: the next gathers meanwhile, so
        # batches are larger and the connections fewer. Measured (serving.py, quiet machine):
        # PostgreSQL at 0.75, 0.78, 0.70 of SQLite in three runs; with two of each in flight
        # 0.71, 0.75 (the same, within the rounds' spread); four reads and three commits 0.58.
        self._histories: Batcher[tuple[str, float], History] = Batcher(
            self._read_histories, "history read", in_flight=1)

    @property
    def connections(self) -> int:
        """How many connections this path holds open now (at most ``pool_size``)."""
        return self._open

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._slots:
            if self._idle:
                conn = self._idle.pop()
            else:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True, prepare_threshold=None)
                self._open += 1
            try:
                yield conn
            except BaseException:
                self._open -= 1
                try:
                    await conn.close()
                except Exception:  # noqa: BLE001 - closing a broken connection is best effort
                    pass
                raise
            self._idle.append(conn)

    async def run(self, plan: Plan[_T]) -> _T:
        """Run ``plan`` on one of the pool's connections (none taken if it needs no
        statement: a cached value); on an error, ROLLBACK and the connection is dropped.

        In libpq's pipeline mode: a step whose result the plan does not want (BEGIN, the
        limits' locks, the inserts) is sent without waiting for its answer, so a commit waits
        on the server once or twice (the limits' counts, if any; the COMMIT) instead of once
        per statement; an error surfaces at the next wait and is thrown into the plan there. Each wait is an
        await, which under load resumes only after the loop's other ready requests: measured
        at 1 to 2 ms per statement at full load, whatever the server's own time."""
        try:
            step = next(plan)
        except StopIteration as done:
            return done.value
        async with self._connection() as conn:
            cur = conn.cursor()
            try:
                async with conn.pipeline() as pipeline:
                    while True:
                        try:
                            await cur.execute(step.sql, step.params)
                            if step.want in ("rowcount", "done"):
                                await pipeline.sync()
                            result = await _result(cur, step.want)
                        except psycopg.Error as exc:  # thrown into the plan: it may catch it (see ``Plan``)
                            # The statements sent after the failed one were skipped; the
                            # pipeline takes new ones only after a sync, which re-reports the
                            # skipped ones (PipelineAborted): consequences of ``exc``.
                            try:
                                await pipeline.sync()
                            except psycopg.Error:  # noqa: BLE001 - exc, raised or handled below, is the cause
                                pass
                            try:
                                step = plan.throw(exc)
                            except StopIteration as done:
                                answer: _T = done.value
                                break
                            continue
                        try:
                            step = plan.send(result)
                        except StopIteration as done:
                            answer = done.value
                            break
                # Leaving the pipeline synced it: the statements sent unanswered (COMMIT) are done.
                return answer
            except BaseException:
                try:
                    await cur.execute("ROLLBACK")
                except Exception:  # noqa: BLE001 - the original error is the one to report
                    pass
                raise

    async def history(self, customer_key: str, now: datetime, lookback_days: float) -> History:
        """The customer's history, read together with every other request's of this loop
        iteration (one statement: ``DecisionStore.histories_plan``)."""
        return await self._histories.submit((customer_key, to_ts(now - timedelta(days=lookback_days))))

    async def _read_histories(self, wanted: list[tuple[str, float]]) -> list[History]:
        return await self.run(self.store.histories_plan(wanted))

    async def suspended(self) -> frozenset[str]:
        return await self.run(self.store.suspended_plan())

    async def capacity_uses(self, now: float | None = None) -> list[tuple[str, str | None, float]]:
        return await self.run(self.store.capacity_uses_plan(now))

    async def get_decision(self, event_id: str) -> DecisionRecord | None:
        return await self.run(self.store.get_decision_plan(event_id))

    async def insert_decision_rows(self, rows: list[DecisionRow]) -> list[Written]:
        if not rows:
            return []
        return await self.run(self.store.insert_plan(rows))

    async def aclose(self) -> None:
        """Close the idle connections (call when no request is in flight)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open -= 1
            await conn.close()


def request_writer(store: DecisionStore, pool_size: int,
                   timed: Callable[[float, int], None] | None = None) -> GroupCommitWriter:
    """The writer a server's request path uses: on PostgreSQL the pipelined commit with its
    asynchronous reads (at most ``pool_size`` connections), on SQLite the group commit on
    the loop thread."""
    if store.engine.dialect.name == "postgresql":
        return PipelinedCommitWriter(store, AsyncLog(store, pool_size), timed=timed, in_flight=1)
    return GroupCommitWriter(store, timed=timed)


__all__ = ["AsyncLog", "Step", "conninfo", "request_writer"]
