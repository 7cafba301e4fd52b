"""Monitoring, as plain functions: the Prefect flow (``flows.monitor_flow``) makes tasks of them.

One run over the window ``[as_of - window_hours, as_of)`` of the log:

1. read the window's decisions with their outcomes, reduced to what monitoring needs
   (``bandit.deploy.monitoring.observe``), and the offers suspended already (the kill switch's
   table and the policy file's ``guardrails.suspended_offers``);
2. compute per offer and channel acceptance, complaints and revenue, the offers over
   their complaint limit, and the bandit's lift over the control group
   (``bandit.deploy.monitoring.assess``: pure);
3. suspend each breaching offer through the kill switch (``DecisionStore.set_suspended``:
   the table every replica's decisions read, the same one the admin route writes), with a
   reason naming the numbers;
4. tell the owners at once (``bandit.deploy.notify``): each suspended offer's owner and the
   operators, and the operators of a lift over the control group that is significantly
   harmful; a channel that fails fails the step (retried), never silently;
5. log one MLflow run (experiment ``offer-bandit-monitor``): metrics per offer and
   channel, lift metrics, the report (``report.md``) and, when an offer was suspended,
   the exception report (``exceptions.md``); tag ``suspended`` lists the offers.

Safe to retry or re-run: suspending is idempotent, and an offer suspended already is
not judged again (an operator lifts a suspension through the admin route).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bandit.config.loader import Config, load_config
from bandit.config.policyfile import PolicyFile
from bandit.deploy.monitoring import (
    Assessment,
    Breach,
    MonitorWindow,
    Observation,
    assess,
    exception_report,
    metric_key,
    observe,
    report,
)
from bandit.deploy.notify import Delivery, lift_notice, send, suspension_notices
from bandit.deploy.runtime import open_store
from bandit.config.settings import Settings
from bandit.log.reader import iter_joined
from flows.steps import StepRunner, run_directly
from tracking.runs import experiment

EXPERIMENT = "offer-bandit-monitor"


@dataclass(frozen=True)
class MonitorResult:
    """What one monitor run did. ``suspended``: offers this run suspended; ``breaches``:
    their numbers; ``exception_report`` is set when something was suspended."""

    run_id: str
    window: str
    as_of: float
    window_hours: float
    decisions: int
    offers: int
    suspended: list[str]
    breaches: list[dict[str, Any]]
    lift: dict[str, dict[str, float]]
    lift_note: str | None
    report: str
    exception_report: str | None
    notified: list[str]


# -- the steps (each one a Prefect task in the flow) ---------------------------------------------

def load_window(settings: Settings, policy: PolicyFile, window: MonitorWindow
                ) -> tuple[list[Observation], frozenset[str]]:
    """The window's decisions as observations (outcomes recorded by ``as_of``; an offer's
    decisions before its last resume are not judged again), and the offers suspended now:
    the kill switch's table (read fresh) and the policy file's list."""
    store = open_store(settings)
    try:
        resumed = store.resumed_at()  # a resume holds until new evidence: only later offers are judged
        observations = [observe(rec, outs, window.as_of, resumed)
                        for rec, outs in iter_joined(store.engine, window.start, window.as_of)]
        suspended = store.suspended(fresh=True) | frozenset(policy.guardrails.suspended_offers)
    finally:
        store.close()
    return observations, suspended


def judge(cfg: Config, observations: list[Observation], window: MonitorWindow,
          suspended: frozenset[str]) -> Assessment:
    """``bandit.deploy.monitoring.assess`` with the catalog and the policy's monitoring section."""
    return assess(observations, window, cfg.catalog, cfg.policy.monitoring, suspended)


def suspend(settings: Settings, found: list[Breach], window: MonitorWindow) -> list[str]:
    """Suspend each breaching offer through the kill switch, with the numbers as the reason.
    Idempotent, so a retried step suspends nothing twice."""
    if not found:
        return []
    store = open_store(settings)
    try:
        for b in found:
            store.set_suspended(b.offer_id, True, b.reason(window), actor="monitor")
    finally:
        store.close()
    return [b.offer_id for b in found]


def notify(settings: Settings, cfg: Config, a: Assessment, suspended_now: list[str]) -> list[str]:
    """Send this run's notices (suspensions, a harmful lift) to every configured channel;
    returns each delivery as ``channel target``. Raises ``NotificationError`` when a channel
    fails, after trying them all."""
    n = cfg.policy.notifications
    where = f"MLflow experiment {EXPERIMENT}, run 'monitor {a.window.label}'"
    notices = suspension_notices(a, suspended_now, cfg.catalog, n.report_url, where)
    harm = lift_notice(a, n.report_url, where)
    notices += [harm] if harm is not None else []
    done: list[Delivery] = []
    for notice in notices:
        done += send(notice, n, settings.smtp_login())
    return [f"{d.channel} {d.target}" for d in done]


def metrics(a: Assessment) -> dict[str, float]:
    """The run's metrics: totals, per offer (``offer.<id>.<metric>``), per offer and channel
    (``offer.<id>.channel.<channel>.<metric>``) and lift (``lift.<metric>.<diff|low|high|...>``).
    Non-finite values (an unbounded interval) are left out: MLflow charts cannot show them."""
    out: dict[str, float] = {"decisions": float(a.decisions), "offers": float(a.offers),
                             "breaches": float(len(a.breaches)), "lift.n_bandit": float(a.lift.n_bandit),
                             "lift.n_control": float(a.lift.n_control)}
    for oid, s in a.by_offer.items():
        out.update({metric_key("offer", oid, k): v for k, v in s.as_metrics().items()})
        out[metric_key("offer", oid, "limit")] = a.limits[oid]
    for (oid, ch), s in a.by_channel.items():
        out.update({metric_key("offer", oid, "channel", ch, k): v for k, v in s.as_metrics().items()})
    for m, d in a.lift.metrics.items():
        out.update({metric_key("lift", m, k): v for k, v in d.as_metrics().items()})
    return {k: v for k, v in out.items() if v == v and abs(v) != float("inf")}


def record(settings: Settings, a: Assessment, suspended_now: list[str], params: dict[str, Any]) -> str:
    """One MLflow run: parameters, metrics, ``report.md`` (and ``exceptions.md`` when an offer
    was suspended), tags ``window`` and ``suspended`` (comma separated, ``none`` if empty)."""
    import mlflow

    mlflow.set_experiment(experiment_id=_experiment(settings))
    with mlflow.start_run(run_name=f"monitor {a.window.label}") as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics(a))
        mlflow.log_text(report(a, suspended_now), "report.md")
        if suspended_now:
            mlflow.log_text(exception_report(a, suspended_now), "exceptions.md")
        mlflow.set_tags({"window": a.window.label, "suspended": ",".join(suspended_now) or "none",
                         "breaches": ",".join(b.offer_id for b in a.breaches) or "none",
                         "lift": "measured" if a.lift.available else "not measured"})
        return str(run.info.run_id)


def _experiment(settings: Settings) -> str:
    return experiment(settings, EXPERIMENT)

# -- the composition: one monitor run, whoever runs the steps ------------------------------------

def monitor(settings: Settings, as_of: float | None = None, window_hours: float | None = None,
            step: StepRunner = run_directly) -> MonitorResult:
    """Judge every offer over the window ending at ``as_of`` (default now; length
    ``window_hours``, default the policy's ``monitoring.window_hours``), suspend those over
    their complaint limit, and record the run in MLflow."""
    cfg = load_config(settings)
    hours = cfg.policy.monitoring.window_hours if window_hours is None else window_hours
    window = MonitorWindow(time.time() if as_of is None else as_of, hours)
    observations, suspended = step("load-window", load_window, settings, cfg.policy, window)
    a = step("assess", judge, cfg, observations, window, suspended)
    suspended_now = step("suspend", suspend, settings, a.breaches, window)
    notified = step("notify", notify, settings, cfg, a, suspended_now)
    m = cfg.policy.monitoring
    params = {"as_of": window.as_of, "window_hours": window.hours, "min_offers": m.min_offers,
              "max_complaint_rate": m.max_complaint_rate, "catalog_version": cfg.catalog.version}
    run_id = step("record", record, settings, a, suspended_now, params)
    breaches = [{"offer_id": b.offer_id, "offers": b.stats.offers, "complaints": b.stats.complaints,
                 "complaint_rate": b.stats.complaint_rate, "limit": b.limit, "reason": b.reason(window)}
                for b in a.breaches]
    return MonitorResult(
        run_id=run_id, window=window.label, as_of=window.as_of, window_hours=window.hours, decisions=a.decisions,
        offers=a.offers, suspended=suspended_now, breaches=breaches,
        lift={m_: d.as_metrics() for m_, d in a.lift.metrics.items()}, lift_note=a.lift.note,
        report=report(a, suspended_now),
        exception_report=exception_report(a, suspended_now) if suspended_now else None, notified=notified,
    )
