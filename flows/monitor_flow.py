"""The ``monitor`` Prefect flow: ``flows.monitor`` with each step a Prefect task.

The work itself is ``flows.monitor.monitor`` (plain functions, tested without Prefect);
this module runs each step as a task, so the Prefect UI shows where a run failed, retries
the steps whose I/O can fail (the log's database, the kill switch, the MLflow store), and
publishes the routine report as a Markdown artifact under the key ``monitor-report`` and,
when an offer was suspended, the exception report under its own key ``monitor-exception``
(a routine report an hour later never replaces it).
Scheduled every few minutes, it is what "know about objectionable offers at once" means.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from bandit.config.settings import Settings, get_settings
from flows.hooks import FAILURE_HOOKS
from flows.monitor import monitor
from flows.steps import task_runner

ARTIFACT_KEY = "monitor-report"
EXCEPTION_KEY = "monitor-exception"
# Steps that read or write stores retry; assessing is pure computation (a retry would fail
# the same way). Suspending is idempotent, so a retry after a partial failure is safe.
RETRIES = {"load-window": 2, "assess": 0, "suspend": 3, "notify": 2, "record": 2}


run_as_task = task_runner(RETRIES, retry_delay_seconds=5)


@flow(name="monitor", log_prints=True, **FAILURE_HOOKS)
def monitor_flow(as_of: float | None = None, window_hours: float | None = None,
                 settings: Settings | None = None) -> dict[str, Any]:
    """Judge every offer over the last ``window_hours`` (default: the policy file's) up to
    ``as_of`` (default: now); suspend those over their complaint limit; report.

    ``settings``: the caller's (the command line passes the ones it loaded); a scheduled
    run has none and loads them from its environment, once, here."""
    logger = get_run_logger()
    result = monitor(settings or get_settings(), as_of=as_of, window_hours=window_hours, step=run_as_task)
    for b in result.breaches:
        logger.warning("suspended %s: %s", b["offer_id"], b["reason"])
    logger.info("%d decisions, %d offers in %s; MLflow run %s", result.decisions, result.offers, result.window,
                result.run_id)
    if result.exception_report is not None:
        create_markdown_artifact(key=EXCEPTION_KEY, markdown=result.exception_report,
                                 description="Exception: offers suspended for complaints")
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=result.report, description="Offer monitoring")
    return asdict(result)
