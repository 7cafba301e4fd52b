"""The ``tune`` Prefect flow: ``flows.tune`` with each step a Prefect task.

The work itself is ``flows.tune.tune`` (plain functions, tested without Prefect); this
module runs its steps as tasks: ``load-window``, ``baselines``, one
``train-evaluate-pNN`` per grid point (so the UI shows which setting is slow or failed)
and ``record``. Tasks are made by ``flows.retrain_flow.run_as_task``, so they behave as
the retrain's do: no result cache, and the steps that do I/O (``load-window`` and
``record``, named as in the retrain) retry, the computation does not. A retried
``record`` replaces what its failed attempt logged. The report is published as a
Markdown artifact (key ``tune-report``).

It recommends only: nothing is registered or promoted.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from bandit.config.settings import Settings, get_settings
from bandit.learn.window import DEFAULT_HOLDOUT, DEFAULT_WINDOW_DAYS
from bandit.learn.tuning import Grid
from flows.hooks import FAILURE_HOOKS
from flows.retrain_flow import run_as_task
from flows.tune import tune


@flow(name="tune", log_prints=True, **FAILURE_HOOKS)
def tune_flow(as_of: float | None = None, window_days: float = DEFAULT_WINDOW_DAYS, holdout: float = DEFAULT_HOLDOUT,
              grid: Grid | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Evaluate a grid of VW settings (default ``bandit.learn.tuning.Grid()``) on the log's last
    ``window_days`` up to ``as_of`` (default: now) and report the best with its interval.

    ``settings``: the caller's (the command line passes the ones it loaded); a scheduled
    run has none and loads them from its environment, once, here."""
    logger = get_run_logger()
    result = tune(settings or get_settings(), as_of=as_of, window_days=window_days, holdout=holdout, grid=grid,
                  step=run_as_task)
    if result.best is not None and result.estimate is not None:
        e = result.estimate
        logger.info("best %s (%s): %s %.3f [%.3f, %.3f]", result.best, result.best_label, result.estimator,
                    e.value, e.low, e.high)
    else:
        logger.info("no recommendation: %s", "; ".join(result.reasons))
    create_markdown_artifact(key="tune-report", markdown=result.report
                             + (f"\nMLflow run `{result.run_id}`\n" if result.run_id else ""),
                             description="Tuning report")
    return result.summary()
