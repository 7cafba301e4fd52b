"""Logging an offline evaluation (``offer-bandit evaluate``) to MLflow.

One run per evaluation in the experiment ``offer-bandit-evaluate`` (apart from the retrain
runs, which ``tracking.evaluations`` reads back for the Personalizer API): the figures of
``bandit.learn.offline.OfflineEvaluation.metrics`` as metrics, the stretch and the
policies as parameters, and the report itself as ``evaluation.json`` (the ``--json``
file's content) and ``evaluation.txt`` (the table). The core computes; this only logs.
"""

from __future__ import annotations

import re
from typing import Any

from bandit.config.settings import Settings
from tracking.runs import experiment

EVALUATE_EXPERIMENT = "offer-bandit-evaluate"
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")


def metric_name(name: str) -> str:
    """``name`` as MLflow accepts it (letters, digits, ``_ - . /`` and spaces): a policy
    spec's ``:`` (``registry:3``, ``fixed:upgrade``) becomes ``_``."""
    return _NOT_IN_A_NAME.sub("_", name)


def log_offline_evaluation(settings: Settings, metrics: dict[str, float], report: dict[str, Any], table: str,
                           params: dict[str, Any]) -> str:
    """One MLflow run holding an offline evaluation; returns its id."""
    import mlflow

    mlflow.set_experiment(experiment_id=experiment(settings, EVALUATE_EXPERIMENT))
    with mlflow.start_run(run_name=f"evaluate {report['since']} to {report['until']}") as run:
        mlflow.log_params({metric_name(k): str(v)[:6000] for k, v in params.items()})
        mlflow.log_metrics({metric_name(k): v for k, v in metrics.items()})
        mlflow.log_dict(report, "evaluation.json")
        mlflow.log_text(table + "\n", "evaluation.txt")
        mlflow.set_tags({"policies": ", ".join(report["policies"]), "interval": report["interval"]})
        return str(run.info.run_id)
