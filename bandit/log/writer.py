"""Group commit for the decision log, on the server's event loop.

Every decision must be committed before it is answered, and a commit costs an
fsync. A server request queues its decision and awaits a future; the first one
queued in an event-loop iteration schedules a flush with ``call_soon``, which runs
after every request that became ready in the same iteration, commits all pending
decisions in one transaction and resolves their futures. Each caller still waits
for its own row to be durable, but N concurrent decisions share one fsync.

It runs on the loop thread on purpose. Two writer threads were measured and both were
worse: one going through SQLAlchemy per row (far slower: it contended with the loop
for the GIL, and a waiting thread can sit out the whole 5 ms switch interval), and
one doing a single ``executemany`` and commit per batch on a raw connection (higher
throughput in some runs, but p50 at 500 requests/s doubled and p99 went from 13 to
78 ms). So was a thread doing passive WAL checkpoints beside the loop: under
``synchronous=FULL`` its fsync of the database held up the commits' fsyncs and p99
at 500 requests/s reached 150-780 ms; SQLite's own checkpoint in the commit measured
better. And so was committing on the loop without fsync (synchronous=NORMAL on this
connection) with one fsync of the WAL per round on a thread, resolving the futures of
every batch committed before it: throughput ratio 0.48 instead of about 0.55 and p99
at 500 requests/s of 190 ms; with a 0.5 ms GIL switch interval, 0.58 (no gain) and
p99 at 500 requests/s of 63 ms instead of 13-15. And, measured again on 2026-12-01, a
thread committing each batch as multi-row statements (a few GIL hand-offs per batch, not
one per row) while the next batch gathered on the loop: 0.50-0.55 of the reference against
0.55-0.63 on the loop, the same with a 0.2 ms switch interval or with the contact rows
written by a trigger (one statement per batch). On this 2-core machine the load generator
holds the other core, so the commit has no idle core to move to, and every GIL release on
the loop (a history read, a socket write) let the thread in while the loop waited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bandit.log.batching import Batcher
from bandit.log.records import CapacityLimit, DecisionRecord, DecisionRow, OfferLimit, Written
from bandit.log.store import DecisionStore

if TYPE_CHECKING:
    from bandit.log.async_pg import AsyncLog

log = logging.getLogger(__name__)


class GroupCommitWriter:
    """Group commit on the loop thread (SQLite's): see the module's docstring."""

    log: "AsyncLog | None" = None
    """The asynchronous reads that go with this writer (``PipelinedCommitWriter``'s), or
    ``None``: the request path reads through the store, on the loop thread."""

    def __init__(self, store: DecisionStore, max_batch: int = 512,
                 timed: Callable[[float, int], None] | None = None):
        """``timed(seconds, rows)`` is told how long each commit took (the log's latency, a metric)."""
        self.store = store
        self.max_batch = max_batch
        self.timed = timed
        self._pending: list[tuple[DecisionRow, asyncio.Future[Written]]] = []
        self._scheduled = False

    async def write(self, rec: DecisionRecord, limit: OfferLimit | None = None,
                    capacity: CapacityLimit | None = None) -> Written:
        """Commit ``rec`` (checking its ``limit`` and ``capacity`` inside the commit) and say
        what was written once it is durable; raises the storage error if the commit failed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Written] = loop.create_future()
        self._pending.append((self.store.decision_row(rec, limit, capacity), fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._scheduled = False
        started = time.perf_counter()
        try:
            results = self.store.insert_decision_rows([row for row, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiter learns its row is not logged
            log.error("decision log commit of %d rows failed: %s", len(batch), exc)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        if self.timed is not None:
            self.timed(time.perf_counter() - started, len(batch))
        for (_, fut), written in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(written)


class PipelinedCommitWriter(GroupCommitWriter):
    """Group commit that awaits the database instead of blocking the loop (PostgreSQL's,
    over ``bandit.log.async_pg``): a ``Batcher`` of decision rows, so while one batch
    commits the next one gathers, and is committed as soon as the one before it is (up to
    ``in_flight`` batches at once, each on a connection of the log's bounded pool).
    Requests keep being decided while the commit waits on the server; on SQLite there is
    no server to wait on (see the module's docstring), so it is not used there."""

    def __init__(self, store: DecisionStore, log_: "AsyncLog", max_batch: int = 512,
                 timed: Callable[[float, int], None] | None = None, in_flight: int = 1):
        super().__init__(store, max_batch, timed)
        self.log = log_
        self._batcher: Batcher[DecisionRow, Written] = Batcher(self._commit, "decision log commit", max_batch,
                                                               in_flight)

    async def write(self, rec: DecisionRecord, limit: OfferLimit | None = None,
                    capacity: CapacityLimit | None = None) -> Written:
        return await self._batcher.submit(self.store.decision_row(rec, limit, capacity))

    async def _commit(self, rows: list[DecisionRow]) -> list[Written]:
        started = time.perf_counter()
        results = await self.log.insert_decision_rows(rows)
        if self.timed is not None:
            self.timed(time.perf_counter() - started, len(rows))
        return results
