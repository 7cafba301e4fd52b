"""The ``working-well`` Prefect flow: ``flows.working_well`` with each step a Prefect task.

Scheduled weekly by ``flows serve`` (``OFFER_BANDIT_WORKING_WELL_CRON``, Mondays 08:00 by
default). The note is published as a Markdown artifact under its own key,
``working-well-note``, so neither the hourly monitor report nor an exception report
replaces it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from bandit.config.settings import Settings, get_settings
from bandit.deploy.working_well import DEFAULT_DAYS
from flows.hooks import FAILURE_HOOKS
from flows.steps import task_runner
from flows.working_well import working_well

ARTIFACT_KEY = "working-well-note"
RETRIES = {"load-window": 2, "value": 0, "notify": 2, "record": 2}

run_as_task = task_runner(RETRIES, retry_delay_seconds=5)


@flow(name="working-well", log_prints=True, **FAILURE_HOOKS)
def working_well_flow(as_of: float | None = None, days: float = DEFAULT_DAYS,
                      settings: Settings | None = None) -> dict[str, Any]:
    """Value every offer made over the last ``days`` up to ``as_of`` (default now) and tell
    the owners of those working well."""
    logger = get_run_logger()
    result = working_well(settings or get_settings(), as_of=as_of, days=days, step=run_as_task)
    logger.info("%d offers made in %s; working well: %s; MLflow run %s", len(result.offers), result.window,
                ", ".join(result.working_well) or "none", result.run_id)
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=result.note, description="Offers working well (weekly)")
    return asdict(result)
