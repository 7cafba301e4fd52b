"""Requests to the log that arrive together, answered by one statement or transaction.

A server's requests are coroutines on one event loop; the ones that become ready in the
same loop iteration each want a round trip to the database (a history read, a decision
commit). ``Batcher`` queues each with a future and runs them as one batch: the first
submitted schedules a task, which runs in the next iteration, after every request ready in
this one, so they share one round trip. While a batch waits on the database the next one
gathers, and it is run as soon as the one before it is done (at most ``in_flight`` at once,
each on a connection of its own). Each caller still awaits its own answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
_In = TypeVar("_In")
_Out = TypeVar("_Out")


class Batcher(Generic[_In, _Out]):
    def __init__(self, run: Callable[[list[_In]], Awaitable[list[_Out]]], what: str, max_batch: int = 512,
                 in_flight: int = 1):
        """``run`` answers a batch, one answer per item in order; ``what`` names it in the
        log when it fails."""
        self.run = run
        self.what = what
        self.max_batch = max_batch
        self.in_flight = in_flight
        self._pending: list[tuple[_In, asyncio.Future[_Out]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: _In) -> _Out:
        """``item``'s answer, once its batch has run; raises the batch's error if it failed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[_Out] = loop.create_future()
        self._pending.append((item, fut))
        if self._running < self.in_flight:
            self._running += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                try:
                    results = await self.run([item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every waiter gets the error, and it is logged
                    log.error("%s of %d failed: %s", self.what, len(batch), exc)
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._running -= 1
