"""Where MLflow runs go: one tracking store, experiments created in one place.

Every flow logs to ``settings.tracking_uri`` (default ``sqlite:///<home>/mlflow.db``).
With a local store the experiments' artifacts (models, reports, plots) go under
``<home>/mlartifacts``, next to the database: MLflow's own default is ``./mlruns`` in
whatever directory the process happened to start in, which scatters state and lets
unrelated stores write into one folder. A tracking server keeps its own artifact root.
"""

from __future__ import annotations

import os

from bandit.config.settings import Settings, hide_password
from bandit.domain.errors import Unreachable

RETRAIN_EXPERIMENT = "offer-bandit-retrain"
"""The retrain flow's experiment: one run per night, holding its offline evaluation
(``tracking.evaluations`` reads them back)."""


# MLflow retries a failed HTTP request 7 times with exponential backoff (about 4 minutes
# before it gives up), with a 120 s timeout each. Measured with the tracking server down: the
# service took 250 s to start, and a retrain took 12.7 minutes to fail (its steps' own
# retries, each through MLflow's). Every process of ours that talks to MLflow asks it to fail
# fast instead (the steps and the service's poller retry on their own schedule); an operator's
# own MLFLOW_HTTP_REQUEST_* settings win.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def fail_fast() -> None:
    """``MLFLOW_HTTP_DEFAULTS`` for this process, where not set already. MLflow reads them
    from the environment only, at each request."""
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


class TrackingUnavailable(Unreachable):
    """The MLflow tracking store does not answer (after ``MLFLOW_HTTP_DEFAULTS``' retries)."""


def unavailable(exc: BaseException, settings: Settings) -> TrackingUnavailable | None:
    """``exc`` as ``TrackingUnavailable`` when it is MLflow failing to reach its store (a
    connection refused or timed out under its HTTP client), else ``None``: any other
    MLflow error is a bug to see whole."""
    import requests
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return None
    cause = exc.__cause__ or exc.__context__
    if not isinstance(cause, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return None
    return TrackingUnavailable(f"the MLflow tracking store {hide_password(settings.tracking_uri)} does not answer "
                               f"({type(cause).__name__}); nothing was recorded")


def artifact_root(settings: Settings) -> str | None:
    """``file://`` URI under the home for local stores; ``None`` (the server decides) otherwise."""
    uri = settings.tracking_uri
    if uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri:
        return (settings.home / "mlartifacts").resolve().as_uri()
    return None


def use_store(settings: Settings) -> None:
    """Point this process's MLflow (tracking and registry) at the settings' store
    (``OFFER_BANDIT_MLFLOW_TRACKING_URI``, default ``sqlite:///<home>/mlflow.db``): every
    path that logs or loads a model through MLflow's module-level API calls this first,
    so none needs ``MLFLOW_TRACKING_URI`` set by hand."""
    import mlflow

    fail_fast()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)


def experiment(settings: Settings, name: str) -> str:
    """Point MLflow at the settings' store (``use_store``) and return the id of experiment
    ``name``, creating it (with its artifacts under the home) if needed."""
    import mlflow

    use_store(settings)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    root = artifact_root(settings)
    return mlflow.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
