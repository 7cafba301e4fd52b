"""The MLflow model registry: the champion alias, promotion, rollback, and the model
source the service polls.

One registered model (``offer-policy`` unless configured) holds every candidate the
retraining flow registers. Two aliases say what serves: ``champion`` (the service
loads it) and ``previous`` (the champion before it, so a bad promotion can be undone
in one step). Promotion and rollback only move aliases; versions are never deleted.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bandit.domain.errors import OfferBanditError
from tracking.runs import fail_fast

# MLflow is imported where it is used: importing it takes seconds, and the service
# imports this module at start-up whether or not a registry exists yet.

CHAMPION = "champion"
PREVIOUS = "previous"
DEFAULT_NAME = "offer-policy"
# MLflow's error codes for a registered model or alias that does not exist (SQLite store:
# RESOURCE_DOES_NOT_EXIST for the model, INVALID_PARAMETER_VALUE for the alias).
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class RegistryError(OfferBanditError):
    pass


class Registry:
    def __init__(self, tracking_uri: str, name: str = DEFAULT_NAME):
        from mlflow import MlflowClient

        fail_fast()  # MLflow's HTTP retries bounded in every process that talks to a registry
        self.name = name
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def version_of(self, alias: str) -> str | None:
        """The version an alias points to, or ``None`` (no such alias, or no model yet).

        Any other failure (the registry unreachable, above all) raises: taken for "no
        champion", it made the service report "no model available yet" for a registry it
        could not reach, and would make ``promote`` skip recording ``previous``."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException as exc:
            if exc.error_code in NOT_FOUND:
                return None
            raise

    def version_tagged(self, key: str, value: str) -> str | None:
        """The newest version carrying tag ``key = value``, if any. A search that fails is
        raised, never taken for "none": a retry would register the same model twice."""
        found = self.client.search_model_versions(f"name = '{self.name}' and tags.{key} = '{value}'")
        return str(max(int(v.version) for v in found)) if found else None

    def register_once(self, model_uri: str, key: str, value: str, tags: dict[str, str] | None = None) -> str:
        """The version tagged ``key = value`` (a retrain's window): the one registered already
        (a retried step), else a new one carrying the tag. Idempotent by construction: the
        check is inside the registration step, and a failed check fails the step."""
        found = self.version_tagged(key, value)
        if found is not None:
            return found
        return self.register(model_uri, {**(tags or {}), key: value})

    def register(self, model_uri: str, tags: dict[str, str] | None = None) -> str:
        """Register a logged model as a new version; returns the version."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            self.client.create_registered_model(self.name, description="offer-bandit policies (VW, pyfunc)")
        mv = self.client.create_model_version(self.name, model_uri, run_id=_run_of(model_uri), tags=tags or {},
                                              model_id=_logged_model_of(model_uri))
        return str(mv.version)

    def promote(self, version: str) -> str | None:
        """Make ``version`` the champion; the champion it replaces becomes ``previous``.
        Returns the replaced version (``None`` if there was none or it is the same)."""
        old = self.version_of(CHAMPION)
        if old == str(version):
            return None
        if old is not None:
            self.client.set_registered_model_alias(self.name, PREVIOUS, old)
        self.client.set_registered_model_alias(self.name, CHAMPION, str(version))
        return old

    def rollback(self) -> tuple[str, str]:
        """Move ``champion`` back to ``previous`` (and ``previous`` to the version rolled
        back from, so a second rollback undoes the first). Returns (from, to)."""
        champ, prev = self.version_of(CHAMPION), self.version_of(PREVIOUS)
        if prev is None or champ is None:
            raise RegistryError(f"registered model '{self.name}' has no '{PREVIOUS}' version to roll back to")
        self.client.set_registered_model_alias(self.name, CHAMPION, prev)
        self.client.set_registered_model_alias(self.name, PREVIOUS, champ)
        return champ, prev


def _run_of(model_uri: str) -> str | None:
    # runs:/<run_id>/<path> and models:/m-<id> URIs; the registry only needs it for lineage
    if model_uri.startswith("runs:/"):
        return model_uri.split("/")[1]
    return None


def _logged_model_of(model_uri: str) -> str | None:
    # models:/m-<id> (a logged model, MLflow 3): a tracking server refuses that source
    # unless the request names the model's id too; a local store does not ask
    if model_uri.startswith("models:/m-"):
        return model_uri[len("models:/"):].split("/")[0]
    return None


class RegistryModelSource:
    """The service's model source (``bandit.deploy.models.ModelSource``): a registry alias.

    Versions are ``<name>/<version>``. ``fetch`` downloads that version once into a
    local cache and returns the VW model file inside it. While an SQLite tracking
    database does not exist yet there is nothing to serve, and MLflow is not even
    imported; the first model promoted after that is picked up by the next poll."""

    name = "registry"

    def __init__(self, tracking_uri: str, model_name: str, cache: Path, alias: str = CHAMPION):
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.alias = alias
        self.cache = Path(cache)
        self._registry: Registry | None = None

    def _reg(self) -> Registry | None:
        if self._registry is None:
            if self.tracking_uri.startswith("sqlite:///") and not Path(self.tracking_uri[len("sqlite:///"):]).is_file():
                return None
            self._registry = Registry(self.tracking_uri, self.model_name)
        return self._registry

    def current_version(self) -> str | None:
        reg = self._reg()
        v = reg.version_of(self.alias) if reg is not None else None
        return f"{self.model_name}/{v}" if v is not None else None

    def fetch(self, version: str) -> Path:
        from mlflow.artifacts import download_artifacts
        from mlflow.models import Model

        reg = self._reg()
        if reg is None:
            raise RegistryError(f"no MLflow tracking store at {self.tracking_uri}")
        name, _, number = version.rpartition("/")
        target = self.cache / name / number
        if not (target / "MLmodel").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Resolve the version to its artifact location with our own client: a
            # ``models:/`` URI would be resolved against the process-wide default registry
            # (``./mlflow.db`` in the working directory), not this one.
            where = reg.client.get_model_version_download_uri(name, number)
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                local = Path(download_artifacts(artifact_uri=where, dst_path=tmp, tracking_uri=self.tracking_uri))
                local.rename(target)
        flavor: dict[str, Any] = Model.load(str(target / "MLmodel")).flavors["python_function"]
        return target / flavor["artifacts"]["model"]["path"]
