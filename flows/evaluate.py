"""``offer-bandit evaluate`` above the core: the registry's models and the MLflow run.

The core (``bandit.learn.offline``) evaluates; it cannot reach the registry (``tracking/``),
so the ``champion`` and ``registry:<version>`` specs are resolved here, and the result is
logged to MLflow here (``tracking.offline``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bandit.config.loader import load_config
from bandit.config.policyfile import Exploration
from bandit.config.settings import Settings
from bandit.decide.vw import Scorer, VWModel
from bandit.deploy.runtime import open_store
from bandit.domain.errors import InvalidRequest
from bandit.learn.offline import (DEFAULT_INTERVAL, ModelResolver, OfflineEvaluation, PolicySpec, Progress,
                                  offline_evaluation)
from bandit.learn.reward_model import DEFAULT_FOLDS
from bandit.learn.window import DEFAULT_HOLDOUT
from bandit.log.reader import iter_joined


def registry_resolver(settings: Settings, exploration: Exploration) -> ModelResolver:
    """The models of ``champion`` and ``registry:<version>``, exploring as the service would
    serve them (``exploration``, the policy file's)."""

    def resolve(spec: PolicySpec) -> Scorer:
        from mlflow.exceptions import MlflowException

        from tracking.registry import NOT_FOUND, RegistryModelSource

        source = RegistryModelSource(settings.tracking_uri, settings.registered_model,
                                     settings.home / "models" / "registry")
        champion = source.current_version() if spec.kind == "champion" else None  # "<name>/<version>"
        version = spec.argument if spec.kind == "registry" else champion.rpartition("/")[2] if champion else None
        if version is None:
            raise InvalidRequest("policy", f"{spec.text}: the registry ({settings.tracking_uri}) has no champion "
                                           "yet (a retrain promotes one)")
        try:
            path = source.fetch(f"{settings.registered_model}/{version}")
        except MlflowException as exc:
            if exc.error_code in NOT_FOUND:
                raise InvalidRequest("policy", f"{spec.text}: no version {version} of "
                                               f"{settings.registered_model} in the registry") from None
            raise
        return VWModel.load(path, version=f"{settings.registered_model}/{version}", exploration=exploration)

    return resolve


def run_evaluation(settings: Settings, specs: Sequence[PolicySpec], since: float, until: float, as_of: float,
                   holdout: float = DEFAULT_HOLDOUT, folds: int = DEFAULT_FOLDS, interval: str = DEFAULT_INTERVAL,
                   progress: Progress | None = None, json_path: Path | None = None,
                   mlflow: bool = True, importance: bool = False) -> tuple[OfflineEvaluation, str | None]:
    """Evaluate ``specs`` on the log of ``[since, until)``; write ``json_path``; log the MLflow
    run (unless ``mlflow`` is false). Returns the evaluation and the run id."""
    cfg = load_config(settings)
    store = open_store(settings)
    try:
        kwargs: dict = {"progress": progress} if progress is not None else {}
        result = offline_evaluation(iter_joined(store.engine, since, until), cfg, specs, since, until, as_of,
                                    registry_resolver(settings, cfg.policy.exploration), holdout, folds, interval,
                                    importance=importance, **kwargs)
    finally:
        store.close()
    report = result.as_json()
    if json_path is not None:
        result.write_json(json_path)
    run_id = None
    if mlflow:
        from tracking.offline import log_offline_evaluation

        run_id = log_offline_evaluation(settings, result.metrics(), report, result.table(),
                                        {"policies": [s.text for s in specs], "since": report["since"],
                                         "until": report["until"], "as_of": report["as_of"], "holdout": holdout,
                                         "folds": folds, "interval": interval, "n": result.n})
    return result, run_id
