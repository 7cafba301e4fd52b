"""Prometheus metrics of the decision service, fed by the core's ``Observer`` hooks.

Labels are bounded (offer ids from the catalog, channels, modes, reasons, outcome
types); no customer identifier ever becomes a label. Under BentoML's workers
(``PROMETHEUS_MULTIPROC_DIR`` set) the scrape aggregates all worker processes.
"""

from __future__ import annotations

import collections
import os
import threading
import time

from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from bandit.decide.decider import Decision
from bandit.decide.guardrails import Eligibility

DECISIONS = Counter("offer_bandit_decisions", "Decisions by chosen offer, channel and mode",
                    ["offer", "channel", "mode"])
EXPLORED = Counter("offer_bandit_explored_decisions", "Decisions that took a non-greedy action", ["channel"])
EXCLUSIONS = Counter("offer_bandit_guardrail_exclusions", "Offers excluded by guardrails, by reason", ["reason"])
OUTCOMES = Counter("offer_bandit_outcomes", "Outcomes recorded, by type and the decision's offer and channel",
                   ["type", "offer", "channel"])
LOG_FAILURES = Counter("offer_bandit_log_failures", "Decisions answered no_offer because the log failed")
SCORER_FAILURES = Counter("offer_bandit_scorer_failures", "Decisions the model failed to score (served as cold "
                          "start), by the error's type", ["error"])
TEMPLATE_FAILURES = Counter("offer_bandit_template_failures", "Offers not made because their content rendered "
                            "empty (reason template_error)", ["offer"])
# Latency buckets for a service whose decisions take about a millisecond and whose health
# checks and admin routes may take a second.
SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REQUESTS = Counter("offer_bandit_http_requests", "HTTP requests answered, by route and status", ["route", "status"])
LATENCY = Histogram("offer_bandit_http_request_seconds", "Time to answer, by route", ["route"], buckets=SECONDS)
COMMIT = Histogram("offer_bandit_log_commit_seconds", "Time of one group commit of the decision log",
                   buckets=SECONDS)
# Gauges set at each scrape from the process's state (one worker: the most recent value).
MODEL = Gauge("offer_bandit_model_info", "The model serving (1), by version and source", ["version", "source"],
              multiprocess_mode="mostrecent")
MODEL_AGE = Gauge("offer_bandit_model_age_seconds", "Seconds since the serving model was loaded",
                  multiprocess_mode="mostrecent")
MODEL_FAILURES = Gauge("offer_bandit_model_load_failures", "Model versions that failed to load since start",
                       multiprocess_mode="mostrecent")
CONFIG = Gauge("offer_bandit_config_info", "The catalog and policy serving (1), by version",
               ["catalog_version", "policy_version", "policy_mode"], multiprocess_mode="mostrecent")
SUSPENDED = Gauge("offer_bandit_suspended_offers", "Offers suspended (the kill switch and the policy file)",
                  multiprocess_mode="mostrecent")
LOG_WRITABLE = Gauge("offer_bandit_log_writable", "1 while the decision log takes writes, 0 while it fails",
                     multiprocess_mode="mostrecent")

# The route label: a bounded set of templates, never a raw path (an event id in a path
# would make a series per decision).
ROUTES: tuple[tuple[str, str], ...] = (
    ("/decide", "/decide"), ("/outcome", "/outcome"), ("/activate", "/activate"), ("/offers", "/offers"),
    ("/readyz", "/readyz"), ("/livez", "/livez"), ("/healthz", "/healthz"), ("/metrics", "/metrics"),
    ("/docs", "/docs"), ("/admin/", "/admin"),
    ("/personalizer/v1.0/rank", "/personalizer/rank"), ("/personalizer/rank", "/personalizer/rank"),
    ("/personalizer/v1.0/multislot/rank", "/personalizer/multislot/rank"),
    ("/personalizer/multislot/rank", "/personalizer/multislot/rank"),
    ("/personalizer/v1.0/events/", "/personalizer/events"), ("/personalizer/events/", "/personalizer/events"),
    ("/personalizer/v1.0/multislot/events/", "/personalizer/events"),
    ("/personalizer/multislot/events/", "/personalizer/events"),
    ("/personalizer/", "/personalizer/management"),
)


def route_of(path: str) -> str:
    """The route template a path belongs to (``other`` for anything else)."""
    for prefix, route in ROUTES:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return route
    return "/" if path == "/" else "other"

CONTENT_TYPE = CONTENT_TYPE_LATEST


class PrometheusObserver:
    """Counts in a plain dict on the request path and adds them to the Prometheus counters
    at most once a second and before every scrape.

    Why: under BentoML the counters are multiprocess counters (an mmap write and a pid
    check per ``inc``); counting every decision, exclusion and exploration straight into
    them cost 7% of the worker's time in the service benchmark. A scrape of this worker
    is exact; another worker's counts are at most a second (and one decision) behind.
    """

    flush_seconds = 1.0

    def __init__(self) -> None:
        self._pending: collections.Counter[tuple[Counter, tuple[str, ...]]] = collections.Counter()
        self._timings: list[tuple[str, float]] = []
        self._commits: list[float] = []
        self._lock = threading.Lock()
        self._flushed = time.monotonic()

    def _count(self, counter: Counter, *labels: str) -> None:
        with self._lock:
            self._pending[(counter, labels)] += 1

    def decided(self, decision: Decision, channel: str, eligibility: Eligibility, explored: bool) -> None:
        with self._lock:
            pending = self._pending
            pending[(DECISIONS, (decision.offer_id, channel, decision.mode))] += 1
            if explored:
                pending[(EXPLORED, (channel,))] += 1
            for e in eligibility.excluded:
                pending[(EXCLUSIONS, (e.reason,))] += 1
        if time.monotonic() - self._flushed > self.flush_seconds:
            self.flush()

    def log_failed(self, error: Exception) -> None:
        self._count(LOG_FAILURES)
        self.flush()

    def outcome(self, type_: str, offer_id: str, channel: str | None) -> None:
        self._count(OUTCOMES, type_, offer_id, channel or "unknown")

    def scorer_failed(self, version: str, error: Exception) -> None:
        self._count(SCORER_FAILURES, type(error).__name__)

    def template_failed(self, offer_id: str) -> None:
        self._count(TEMPLATE_FAILURES, offer_id)

    def answered(self, route: str, status: int, seconds: float) -> None:
        """One HTTP answer (``TimingMiddleware``): counted now, its time observed at the flush."""
        with self._lock:
            self._pending[(REQUESTS, (route, str(status)))] += 1
            self._timings.append((route, seconds))

    def committed(self, seconds: float, rows: int) -> None:
        """One group commit's time (``GroupCommitWriter``'s ``timed``)."""
        with self._lock:
            self._commits.append(seconds)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, collections.Counter()
            timings, self._timings = self._timings, []
            commits, self._commits = self._commits, []
            self._flushed = time.monotonic()
        for (counter, labels), n in pending.items():
            (counter.labels(*labels) if labels else counter).inc(n)
        for route, seconds in timings:
            LATENCY.labels(route).observe(seconds)
        for seconds in commits:
            COMMIT.observe(seconds)


_observers: list[PrometheusObserver] = []


def observer() -> PrometheusObserver:
    """The observer for this process's decider; ``render`` flushes it before a scrape."""
    obs = PrometheusObserver()
    _observers.append(obs)
    return obs


_state: list[Callable[[], dict[str, Any]]] = []


def report_state(state: Callable[[], dict[str, Any]]) -> None:
    """``state()`` is read at each scrape to set the gauges: ``model`` (``ModelStatus.as_dict``),
    ``load_failures``, ``catalog_version``, ``policy_mode``, ``suspended`` (a count) and
    ``log_writable``."""
    _state.append(state)


_info_labels: dict[str, tuple[str, ...]] = {}


def _set_info(gauge: Gauge, *labels: str) -> None:
    """An info gauge: 1 for these labels, 0 for the ones it had before (a multiprocess gauge
    keeps every label set it has seen, so a replaced version is set to 0, not forgotten)."""
    before = _info_labels.get(gauge._name)
    if before is not None and before != labels:
        gauge.labels(*before).set(0)
    gauge.labels(*labels).set(1)
    _info_labels[gauge._name] = labels


def _set_gauges(s: dict[str, Any]) -> None:
    model = s["model"]
    _set_info(MODEL, model["version"], model["source"])
    MODEL_AGE.set(max(0.0, time.time() - model["loaded_at"]))
    MODEL_FAILURES.set(s["load_failures"])
    _set_info(CONFIG, s["catalog_version"], s["policy_version"], s["policy_mode"])
    SUSPENDED.set(s["suspended"])
    LOG_WRITABLE.set(1 if s["log_writable"] else 0)


class TimingMiddleware:
    """Outermost layer: every answer's route, status and time (``PrometheusObserver.answered``)."""

    def __init__(self, app: Any, observer: Callable[[], "PrometheusObserver | None"]):
        self.app = app
        self.observer = observer

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = [500]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            obs = self.observer()
            if obs is not None:
                obs.answered(route_of(scope["path"]), status[0], time.perf_counter() - started)


def render() -> bytes:
    for state in _state:
        _set_gauges(state())
    for obs in _observers:
        obs.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
