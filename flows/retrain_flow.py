"""The ``retrain`` Prefect flow: ``flows.retrain`` under Prefect, with retries and a report.

The work itself is ``flows.retrain.retrain`` (plain functions, tested without Prefect);
this module gives it a flow run in the Prefect UI, retries when I/O fails (the log's
database, the MLflow store), and the evaluation summary as a Markdown artifact. It is
safe to retry or re-run: a window already retrained returns its earlier result.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from bandit.settings import get_settings
from flows.retrain import RetrainResult, retrain


@task(name="train-evaluate-register", retries=2, retry_delay_seconds=10)
def retrain_task(as_of: float | None, window_days: float, holdout: float, warm_start: bool) -> RetrainResult:
    return retrain(get_settings(), as_of=as_of, window_days=window_days, holdout=holdout, warm_start=warm_start)


@flow(name="retrain", log_prints=True)
def retrain_flow(as_of: float | None = None, window_days: float = 7.0, holdout: float = 0.2,
                 warm_start: bool = False) -> dict[str, Any]:
    """Retrain on the log's last ``window_days`` up to ``as_of`` (default: now); promote
    only through the gate."""
    logger = get_run_logger()
    result = retrain_task(as_of, window_days, holdout, warm_start)
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
