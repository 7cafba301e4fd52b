"""Where MLflow runs go: one tracking store, experiments created in one place.

Every flow logs to ``settings.tracking_uri`` (default ``sqlite:///<home>/mlflow.db``).
With a local store the experiments' artifacts (models, reports, plots) go under
``<home>/mlartifacts``, next to the database: MLflow's own default is ``./mlruns`` in
whatever directory the process happened to start in, which scatters state and lets
unrelated stores write into one folder. A tracking server keeps its own artifact root.
"""

from __future__ import annotations

from bandit.config.settings import Settings

RETRAIN_EXPERIMENT = "offer-bandit-retrain"
"""The retrain flow's experiment: one run per night, holding its offline evaluation
(``tracking.evaluations`` reads them back)."""


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
