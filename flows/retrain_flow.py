"""The ``retrain`` Prefect flow: ``flows.retrain`` with each step a Prefect task.

The work itself is ``flows.retrain.retrain`` (plain functions, tested without Prefect);
this module runs each of its steps as a task, so the Prefect UI shows where time goes
and where a run failed, retries the steps whose I/O can fail (the log's database, the
MLflow store and registry), and publishes the verdict as a Markdown artifact. It is safe
to retry or re-run: a window already retrained returns its earlier result, and a
version registered for a window is never registered twice.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from bandit.config.settings import Settings, get_settings
from bandit.learn.window import DEFAULT_HOLDOUT, DEFAULT_WINDOW_DAYS
from flows.hooks import FAILURE_HOOKS
from flows.retrain import retrain
from flows.steps import task_runner

# Steps that read or write stores retry; training and evaluation are pure computation
# (a retry would fail the same way).
RETRIES = {"find-earlier-run": 2, "load-window": 2, "fetch-champion": 2, "record": 2, "train": 0, "evaluate": 0}


run_as_task = task_runner(RETRIES)


@flow(name="retrain", log_prints=True, **FAILURE_HOOKS)
def retrain_flow(as_of: float | None = None, window_days: float = DEFAULT_WINDOW_DAYS, holdout: float = DEFAULT_HOLDOUT,
                 warm_start: bool = False, settings: Settings | None = None) -> dict[str, Any]:
    """Retrain on the log's last ``window_days`` up to ``as_of`` (default: now); promote
    only through the gate.

    ``settings``: the caller's (the command line passes the ones it loaded); a scheduled
    run has none and loads them from its environment, once, here."""
    logger = get_run_logger()
    result = retrain(settings or get_settings(), as_of=as_of, window_days=window_days, holdout=holdout,
                     warm_start=warm_start, step=run_as_task)
    verdict = "promoted" if result.promoted else "not promoted"
    logger.info("version %s %s: %s", result.version, verdict, "; ".join(result.reasons))
    create_markdown_artifact(
        key="retrain-verdict",
        markdown=(f"# Retrain: version {result.version} {verdict}\n\n" + "\n".join(f"- {r}" for r in result.reasons)
                  + f"\n\nTrained on {result.trained_on}, evaluated on {result.evaluated_on} decisions; "
                  f"MLflow run `{result.run_id}`" + (" (an earlier run of this window)" if result.reused else "")),
        description="Retrain verdict",
    )
    return asdict(result)
