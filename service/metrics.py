"""Prometheus metrics of the decision service, fed by the core's ``Observer`` hooks.

Labels are bounded (offer ids from the catalog, channels, modes, reasons, outcome
types); no customer identifier ever becomes a label. Under BentoML's workers
(``PROMETHEUS_MULTIPROC_DIR`` set) the scrape aggregates all worker processes.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
)

from bandit.decision import Decision
from bandit.guardrails import Eligibility

DECISIONS = Counter("offer_bandit_decisions", "Decisions by chosen offer, channel and mode",
                    ["offer", "channel", "mode"])
EXPLORED = Counter("offer_bandit_explored_decisions", "Decisions that took a non-greedy action", ["channel"])
EXCLUSIONS = Counter("offer_bandit_guardrail_exclusions", "Offers excluded by guardrails, by reason", ["reason"])
OUTCOMES = Counter("offer_bandit_outcomes", "Outcomes recorded, by type", ["type"])
LOG_FAILURES = Counter("offer_bandit_log_failures", "Decisions answered no_offer because the log failed")

CONTENT_TYPE = CONTENT_TYPE_LATEST


class PrometheusObserver:
    def decided(self, decision: Decision, channel: str, eligibility: Eligibility, explored: bool) -> None:
        DECISIONS.labels(decision.offer_id, channel, decision.mode).inc()
        if explored:
            EXPLORED.labels(channel).inc()
        for e in eligibility.excluded:
            EXCLUSIONS.labels(e.reason).inc()

    def log_failed(self, error: Exception) -> None:
        LOG_FAILURES.inc()

    def outcome(self, type_: str) -> None:
        OUTCOMES.labels(type_).inc()


def render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
