"""The weekly "working well" note, as plain functions (``flows.working_well_flow`` makes tasks of them).

One run over the last ``days`` (default 7) of the log: read the window as the monitor does
(``flows.monitor.load_window``), value every offer made (``bandit.deploy.working_well``:
pure), send the note to the owners of the offers working well and the operators when
there is at least one (``bandit.deploy.notify``; a channel that fails fails the step), and
log one MLflow run (experiment ``offer-bandit-monitor``, run ``working well <window>``)
with the note (``working-well.md``) and each offer's lift as metrics.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from bandit.config.loader import Config, load_config
from bandit.config.settings import Settings
from bandit.deploy.monitoring import MonitorWindow, Observation, metric_key
from bandit.deploy.notify import offer_owner, send, working_well_notice
from bandit.deploy.working_well import DEFAULT_DAYS, OfferValue, min_offers, note, offer_values
from flows.monitor import EXPERIMENT, _experiment, load_window
from flows.steps import StepRunner, run_directly


@dataclass(frozen=True)
class WorkingWellResult:
    run_id: str
    window: str
    offers: list[dict[str, Any]]  # every offer made: id, offers, value, low, high, working_well
    working_well: list[str]
    note: str
    notified: list[str]


def value(cfg: Config, observations: list[Observation]) -> list[OfferValue]:
    """``bandit.deploy.working_well.offer_values`` with the catalog, the monitoring section and the reward's penalty."""
    return offer_values(observations, cfg.catalog, cfg.policy.monitoring, cfg.policy.reward.complaint_penalty)


def notify(settings: Settings, cfg: Config, values: list[OfferValue], text: str, window: MonitorWindow) -> list[str]:
    """Send the note when an offer works well (nothing to say otherwise); each delivery as
    ``channel target``. Raises ``NotificationError`` when a channel fails, after trying them all."""
    n = cfg.policy.notifications
    where = f"MLflow experiment {EXPERIMENT}, run 'working well {window.label}'"
    notice = working_well_notice(values, text, cfg.catalog, n.report_url, where)
    if notice is None:
        return []
    return [f"{d.channel} {d.target}" for d in send(notice, n, settings.smtp_login())]


def record(settings: Settings, values: list[OfferValue], window: MonitorWindow, text: str) -> str:
    """One MLflow run: the note, each offer's lift (``offer.<id>.lift``, ``.lift_low``, ``.lift_high``)
    and tag ``working_well`` (the offers, comma separated, ``none`` if empty)."""
    import mlflow

    mlflow.set_experiment(experiment_id=_experiment(settings))
    metrics: dict[str, float] = {}
    for v in values:
        metrics.update({metric_key("offer", v.offer_id, k): x
                        for k, x in (("lift", v.value), ("lift_low", v.low), ("lift_high", v.high))})
    with mlflow.start_run(run_name=f"working well {window.label}") as run:
        mlflow.log_params({"as_of": window.as_of, "days": window.hours / 24})
        mlflow.log_metrics({k: x for k, x in metrics.items() if math.isfinite(x)})
        mlflow.log_text(text, "working-well.md")
        mlflow.set_tags({"kind": "working-well", "window": window.label,
                         "working_well": ",".join(v.offer_id for v in values if v.working_well) or "none"})
        return str(run.info.run_id)


def working_well(settings: Settings, as_of: float | None = None, days: float = DEFAULT_DAYS,
                 step: StepRunner = run_directly) -> WorkingWellResult:
    """Value every offer made in the ``days`` to ``as_of`` (default now), tell the owners of
    those working well, and record the note in MLflow."""
    cfg = load_config(settings)
    window = MonitorWindow(time.time() if as_of is None else as_of, days * 24)
    observations, _ = step("load-window", load_window, settings, cfg.policy, window)
    values = step("value", value, cfg, observations)
    text = note(values, window, cfg.policy.reward.complaint_penalty,
                {v.offer_id: offer_owner(cfg.catalog, v.offer_id) for v in values}, min_offers(cfg.policy.monitoring))
    notified = step("notify", notify, settings, cfg, values, text, window)
    run_id = step("record", record, settings, values, window, text)
    return WorkingWellResult(
        run_id=run_id, window=window.label,
        offers=[{"offer_id": v.offer_id, "offers": v.stats.offers, "value": v.value, "low": v.low, "high": v.high,
                 "working_well": v.working_well} for v in values],
        working_well=[v.offer_id for v in values if v.working_well], note=text, notified=notified)
