"""The window of the log a retrain or a tuning run reads, and its split by time.

Both read the learnable decisions of ``[as_of - window_days, as_of)`` and split them by
time: the older ``1 - holdout`` share to train on, the newest ``holdout`` share to judge
on, so a candidate is never judged on what it learned from, and it is judged on the
decisions most like tomorrow's. Tuning splits exactly as a retrain does, so its points
are judged as the gate will judge them.

The options are checked here, once, with one-line messages naming the option
(``InvalidRequest``: the CLI and the flows print it as it is): a window of no length, or
a holdout of 0 (nothing to judge on) or 1 (nothing to train on), is a mistake in the
request, better refused before anything is read than turned into an empty run. The
monitor's window (``bandit.deploy.monitoring.MonitorWindow``) checks its length with
the same helper.

Pure: no clock and no I/O (the flows pass ``as_of``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any, TypeVar

from bandit.domain.errors import InvalidRequest

T = TypeVar("T")

# The flows' defaults (the CLI's and the Prefect flows' options say the same).
DEFAULT_WINDOW_DAYS = 7.0
"""A week: each weekday once, so no weekday weighs more than another in a window."""
DEFAULT_HOLDOUT = 0.2
"""The newest fifth held out: most of the window to learn from, a fifth to judge on."""


def positive(field: str, value: Any, unit: str) -> float:
    """``value`` if it is a positive, finite number of ``unit``; else ``InvalidRequest``
    naming ``field``. (Finite: an infinite window has no start.)"""
    if isinstance(value, bool) or not isinstance(value, Real) or not (math.isfinite(value) and value > 0):
        raise InvalidRequest(field, f"must be a positive number of {unit}, got {value!r}")
    return float(value)


def share(field: str, value: Any) -> float:
    """``value`` if it is a share strictly between 0 and 1; else ``InvalidRequest`` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value < 1:
        raise InvalidRequest(field, f"must be between 0 and 1 (exclusive), got {value!r}")
    return float(value)


def finite_time(field: str, value: Any) -> float:
    """``value`` if it is a finite time (seconds since the epoch); else ``InvalidRequest``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InvalidRequest(field, f"must be a finite time, got {value!r}")
    return float(value)


def decided_at(pair: tuple[Any, Any]) -> float:
    """The decision time of a ``(DecisionRecord, outcomes)`` pair, as the log's readers
    (``bandit.log.reader.iter_joined``) yield them."""
    return float(pair[0].ts)


@dataclass(frozen=True)
class Window:
    """``[as_of - days, as_of)`` of the log, and the share of it held out. Checked when
    made (``split_window`` is the way to make one from a request's options)."""

    as_of: float
    days: float
    holdout: float = DEFAULT_HOLDOUT

    def __post_init__(self) -> None:
        share("holdout", self.holdout)
        positive("window_days", self.days, "days")
        finite_time("as_of", self.as_of)

    @property
    def start(self) -> float:
        return self.as_of - self.days * 86400

    @property
    def label(self) -> str:
        """``<start>-<as_of>`` in whole seconds: the idempotency key (tag ``window`` on the
        MLflow run), so it does not name the holdout."""
        return f"{self.start:.0f}-{self.as_of:.0f}"

    def split(self, items: Sequence[T], ts: Callable[[T], float] = decided_at) -> tuple[list[T], list[T]]:
        """By time (``ts`` of each item; ties keep the order given, the log's by event id):
        the older ``int(n * (1 - holdout))`` items to train on, the rest, the newest, to
        judge on. So the held-out part has ``n * holdout`` items rounded up (up to float
        rounding); with few items one part can be empty, which the caller reports."""
        ordered = sorted(items, key=ts)
        cut = self.cut(len(ordered))
        return ordered[:cut], ordered[cut:]

    def cut(self, n: int) -> int:
        """How many of ``n`` decisions, the oldest, are trained on: ``int(n * (1 - holdout))``
        (``split``'s rule, for a window streamed in time order rather than held in a list)."""
        return int(n * (1 - self.holdout))


def split_window(as_of: float, window_days: float = DEFAULT_WINDOW_DAYS,
                 holdout: float = DEFAULT_HOLDOUT) -> Window:
    """The window of a retrain or tuning request ending at ``as_of``, its options checked
    (``InvalidRequest`` naming ``holdout``, ``window_days`` or ``as_of``)."""
    return Window(as_of, window_days, holdout)
