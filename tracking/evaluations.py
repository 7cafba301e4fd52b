"""The offline evaluations that exist: the retrain flow's, one MLflow run per night.

Each retrain run (experiment ``offer-bandit-retrain``) evaluates, on the window's held-out
decisions, the candidate, the champion, ``no_offer``, uniform random and the rules
heuristic, and logs each estimate as ``<policy>.<estimator>`` with ``_low``/``_high``
(the 95% interval), the window as the tag ``window`` (``<start>-<end>``, epoch seconds)
and the gate's verdict as tags ``promoted`` and ``reasons``. This reads them back, for
whoever shows evaluations (the Personalizer-compatible API's): nothing here evaluates.

MLflow is imported only once a tracking store exists (a service with no store yet must
not create and migrate one to answer "no evaluations").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracking.registry import NOT_FOUND
from tracking.runs import RETRAIN_EXPERIMENT


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Evaluation:
    """One retrain run's evaluation: its window, status, verdict and estimates by policy."""

    id: str
    name: str
    created: float  # epoch seconds
    window: tuple[float, float] | None
    status: str  # MLflow's: FINISHED, FAILED, RUNNING, KILLED, SCHEDULED
    promoted: bool | None
    reasons: list[str] = field(default_factory=list)
    estimates: dict[str, Estimate] = field(default_factory=dict)


def _has_store(tracking_uri: str) -> bool:
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):]).is_file()
    return True


def _window(tag: str | None) -> tuple[float, float] | None:
    try:
        start, end = (tag or "").split("-")
        return float(start), float(end)
    except ValueError:
        return None


def _from_run(run: Any, estimator: str) -> Evaluation:
    metrics: dict[str, float] = run.data.metrics
    tags: dict[str, str] = run.data.tags
    suffix = f".{estimator}"
    estimates = {name[: -len(suffix)]: Estimate(value, metrics.get(f"{name}_low"), metrics.get(f"{name}_high"))
                 for name, value in metrics.items() if name.endswith(suffix) and "-minus-" not in name}
    try:
        reasons = list(json.loads(tags.get("reasons", "[]")))
    except ValueError:
        reasons = [tags["reasons"]]
    promoted = {"true": True, "false": False}.get(tags.get("promoted", ""))
    return Evaluation(id=run.info.run_id, name=run.info.run_name or run.info.run_id,
                      created=run.info.start_time / 1000, window=_window(tags.get("window")),
                      status=run.info.status, promoted=promoted, reasons=reasons, estimates=estimates)


def evaluations(tracking_uri: str, estimator: str, top: int | None = None) -> list[Evaluation]:
    """The retrain runs, newest first (at most ``top``), with ``estimator``'s estimates."""
    if not _has_store(tracking_uri):
        return []
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(RETRAIN_EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=top or 1000)
    return [_from_run(r, estimator) for r in runs]


def evaluation(tracking_uri: str, run_id: str, estimator: str) -> Evaluation | None:
    """One retrain run's evaluation, or ``None`` if there is no such retrain run."""
    if not _has_store(tracking_uri):
        return None
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(RETRAIN_EXPERIMENT)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND:  # an id the store does not hold (or a malformed one)
            return None
        raise
    if experiment is None or run.info.experiment_id != experiment.experiment_id:
        return None
    return _from_run(run, estimator)
