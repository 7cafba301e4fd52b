"""The policy as an MLflow pyfunc model: the VW model, its featurizer and the catalog and
policy snapshots it was trained with, in one artifact a data scientist can load.

    load_policy_model(get_settings()).predict(frame)   # the settings' store and alias
    ...predict(frame, params={"suspended": ["premium_bundle"], "as_of": "2026-12-01T12:00:00Z"})

returns, for each context row, the offers the guardrails let through, the model's
probabilities over them and the greedy choice. It scores through the decision core's
``score_request``, the same guardrails, features and model call as ``/decide``, so for a
customer with no contact history its offers and probabilities are the service's ranking
(the model's view: ``payload.shadow`` for a control-group or apprentice decision). It does
not log and it does not decide for a channel.

Input columns: ``bandit.domain.context.CONTEXT_COLUMNS`` (every input the decider reads; all but
``channel`` and ``request_type`` optional, a missing one meaning what an omitted field means
on ``/decide``). Params: ``suspended``, the offers the kill switch holds (the live set is in
the log, which the model does not read: pass it), and ``as_of``, the time of the decision
(ISO 8601, default now: offers outside their validity window are excluded).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import pandas as pd

if TYPE_CHECKING:
    from bandit.config.settings import Settings

_REPO = Path(__file__).resolve().parent.parent


class OfferPolicy(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from bandit.config.catalog import load_catalog
        from bandit.config.policyfile import load_policy
        from bandit.decide.vw import VWModel

        self.catalog = load_catalog(Path(context.artifacts["catalog"]))
        self.policy = load_policy(Path(context.artifacts["policy"]))
        # exploring as the service serves it: with the policy file's exploration
        self.model = VWModel.load(Path(context.artifacts["model"]), exploration=self.policy.exploration)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from bandit.domain.context import as_utc, request_from_row
        from bandit.decide.decider import score_request
        from bandit.domain.context import EMPTY_HISTORY

        params = params or {}
        as_of = params.get("as_of") or ""
        now = as_utc(datetime.fromisoformat(as_of)) if as_of else datetime.now(UTC)
        suspended = frozenset(params.get("suspended") or ())
        rows = []
        for row in model_input.to_dict("records"):
            request = request_from_row(row)
            # the history a fresh customer's decision sees (the log's, empty, merged with the row's)
            elig, _, _, pmf, _ = score_request(request, self.catalog, self.policy, self.model,
                                               EMPTY_HISTORY.merged(request.history), now, suspended)
            best = max(range(len(pmf)), key=pmf.__getitem__)
            rows.append({"greedy": elig.eligible[best], "offers": list(elig.eligible),
                         "probabilities": [float(p) for p in pmf]})
        return pd.DataFrame(rows, columns=["greedy", "offers", "probabilities"])


INPUT_EXAMPLE = pd.DataFrame([
    {"channel": "phone", "request_type": "advisory", "resolved": "true", "sentiment": 0.6, "distress": False,
     "tier": "gold", "tenure_months": 48.0, "products": "mobile,broadband", "region": "north", "authenticated": True,
     "opted_out": False},
    {"channel": "chat", "request_type": "diagnostic", "resolved": "false", "sentiment": -0.4, "distress": True,
     "tier": "standard", "tenure_months": 3.0, "products": "mobile", "region": "south", "authenticated": False,
     "opted_out": False},
])


def signature(outputs: pd.DataFrame) -> Any:
    """Every input the decider reads (optional ones optional) and the two params.

    Why not inferred from ``INPUT_EXAMPLE``: MLflow drops input columns the signature does
    not name, so a signature inferred from an example without ``opted_out`` silently
    ignored an opted-out customer's flag and offered to them."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    from bandit.domain.context import CONTEXT_COLUMNS

    inputs = Schema([ColSpec(kind, name, required=required) for name, kind, required in CONTEXT_COLUMNS])
    params = ParamSchema([ParamSpec("suspended", "string", [], shape=(-1,)), ParamSpec("as_of", "string", "")])
    return ModelSignature(inputs=inputs, outputs=infer_signature(INPUT_EXAMPLE, outputs).outputs, params=params)


def _model_args(model_file: Path, catalog_file: Path, policy_file: Path) -> dict[str, Any]:
    artifacts = {"model": str(model_file), "catalog": str(catalog_file), "policy": str(policy_file)}
    from bandit.decide.vw import checksum_file

    if checksum_file(model_file).is_file():  # beside the model in the artifacts too: a fetch is checked
        artifacts["model_checksum"] = str(checksum_file(model_file))
    probe = OfferPolicy()
    probe.load_context(type("Ctx", (), {"artifacts": artifacts})())
    return {"python_model": OfferPolicy(), "artifacts": artifacts,
            "signature": signature(probe.predict(None, INPUT_EXAMPLE)), "input_example": INPUT_EXAMPLE,
            "code_paths": [str(_REPO / "bandit"), str(_REPO / "tracking")], "pip_requirements": model_requirements()}


def load_policy_model(settings: "Settings", alias: str | None = None) -> Any:
    """The registered policy model at ``alias`` (default the settings' ``model_alias``,
    ``champion``) from the settings' tracking store, as a pyfunc model. Why not
    ``mlflow.pyfunc.load_model("models:/...")`` alone: that reads MLflow's own default store
    (``MLFLOW_TRACKING_URI``, else ``./mlruns``), not ``OFFER_BANDIT_MLFLOW_TRACKING_URI``."""
    from tracking.runs import use_store

    use_store(settings)
    return mlflow.pyfunc.load_model(f"models:/{settings.registered_model}@{alias or settings.model_alias}")


def log_policy_model(model_file: Path, catalog_file: Path, policy_file: Path, name: str = "policy") -> Any:
    """Log the pyfunc model into the active MLflow run; returns MLflow's ``ModelInfo``."""
    return mlflow.pyfunc.log_model(name=name, **_model_args(model_file, catalog_file, policy_file))


def save_policy_model(path: Path, model_file: Path, catalog_file: Path, policy_file: Path) -> None:
    """The same model saved to a directory, outside any tracking store."""
    mlflow.pyfunc.save_model(str(path), **_model_args(model_file, catalog_file, policy_file))


# What the model's code (bandit/ and tracking/, shipped with it) imports when it is loaded.
MODEL_PACKAGES = ("mlflow", "vowpalwabbit", "numpy", "pandas", "pydantic", "pydantic-settings", "pyyaml", "jinja2",
                  "sqlalchemy")


def model_requirements() -> list[str]:
    """The model's environment, pinned to the versions installed here (from the lock).

    Why explicit: left to infer them, MLflow tries ``uv export`` on this uv project, fails
    without uv on the PATH, falls back to capturing imports by loading the model, and warns
    each time; that took 3-10 s of every retrain."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_PACKAGES]
