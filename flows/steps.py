"""Steps of a flow, run directly or as Prefect tasks.

Each flow's work is plain functions composed by one function (``flows.retrain.retrain``,
``flows.monitor.monitor``, ``flows.tune.tune``) that calls every step through a
``StepRunner``: ``run_directly`` for the command line's ``--no-prefect`` and the tests,
or a runner from ``task_runner`` in the Prefect flows, which makes each step a task (so
the UI shows where time went and where a run failed, and I/O steps retry). One
composition either way: the flow cannot drift from what the tests exercise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol


class StepRunner(Protocol):
    """Runs one named step of a flow."""

    def __call__(self, name: str, fn: Callable[..., Any], *args: Any) -> Any: ...


def run_directly(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def task_runner(retries: Mapping[str, int], retry_delay_seconds: float = 10) -> StepRunner:
    """A runner making each step a Prefect task, retried ``retries[name]`` times (0 when
    absent: computation fails the same way twice; steps doing I/O retry).

    No result cache and no result persistence: the inputs are a window of the log, every
    run must look afresh, and hashing them for a cache key would cost more than the step.
    Arguments are passed ``quote``d: Prefect otherwise walks every list, dict and
    dataclass in a task's arguments looking for futures, which on a window of the log
    cost more than the step itself (62 of 72 s of a tune run before this)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE
    from prefect.utilities.annotations import quote

    def run(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        t = task(fn, name=name, retries=retries.get(name, 0), retry_delay_seconds=retry_delay_seconds,
                 cache_policy=NO_CACHE, persist_result=False)
        return t(*(quote(a) for a in args))

    return run
