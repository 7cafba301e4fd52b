"""The policy as an MLflow pyfunc model: the VW model, its featurizer and the catalog and
policy snapshots it was trained with, in one artifact a data scientist can load.

    mlflow.pyfunc.load_model("models:/offer-policy@champion").predict(frame)

returns, for each context row, the offers the guardrails let through, the model's
probabilities over them and the greedy choice. It scores through the decision core's
``score_request`` (guardrails, features, model), with no contact history (a row is a
context, not a customer) and without logging: it explains the policy, it does not
decide for a channel.

Input columns (one row per interaction): ``channel``, ``request_type``, and any of
``resolved`` (true/false/unknown), ``sentiment``, ``distress``, ``intent``, ``tier``,
``tenure_months``, ``products`` (a list or comma-separated), ``region``,
``authenticated``, ``opted_out``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

_REPO = Path(__file__).resolve().parent.parent
CUSTOMER_COLUMNS = ("tier", "tenure_months", "products", "region", "authenticated", "opted_out")
INTERACTION_COLUMNS = ("request_type", "intent", "resolved", "sentiment", "distress")


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return True


def request_from_row(row: dict[str, Any]) -> Any:
    """A context row as the core's ``DecisionRequest`` (validated: a bad row names its field)."""
    from bandit.context import DecisionRequest

    customer: dict[str, Any] = {"id": str(row.get("customer_id") or "pyfunc")}
    for col in CUSTOMER_COLUMNS:
        if _present(row.get(col)):
            customer[col] = row[col]
    if isinstance(customer.get("products"), str):
        customer["products"] = [p for p in customer["products"].split(",") if p]
    elif "products" in customer:
        customer["products"] = list(customer["products"])
    interaction = {col: row[col] for col in INTERACTION_COLUMNS if _present(row.get(col))}
    if isinstance(interaction.get("resolved"), bool):
        interaction["resolved"] = "true" if interaction["resolved"] else "false"
    return DecisionRequest.model_validate({"channel": row.get("channel"), "customer": customer,
                                           "interaction": interaction})


class OfferPolicy(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from bandit.catalog import load_catalog
        from bandit.policyfile import load_policy
        from bandit.vw import VWModel

        self.model = VWModel.load(Path(context.artifacts["model"]))
        self.catalog = load_catalog(Path(context.artifacts["catalog"]))
        self.policy = load_policy(Path(context.artifacts["policy"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from bandit.decision import score_request
        from bandit.store import EMPTY_HISTORY

        now = datetime.now(UTC)
        rows = []
        for row in model_input.to_dict("records"):
            request = request_from_row(row)
            elig, _, _, pmf, _ = score_request(request, self.catalog, self.policy, self.model, EMPTY_HISTORY, now)
            best = max(range(len(pmf)), key=pmf.__getitem__)
            rows.append({"greedy": elig.eligible[best], "offers": list(elig.eligible),
                         "probabilities": [float(p) for p in pmf]})
        return pd.DataFrame(rows, columns=["greedy", "offers", "probabilities"])


INPUT_EXAMPLE = pd.DataFrame([
    {"channel": "phone", "request_type": "advisory", "resolved": "true", "sentiment": 0.6, "distress": False,
     "tier": "gold", "tenure_months": 48.0, "products": "mobile,broadband", "region": "north", "authenticated": True},
    {"channel": "chat", "request_type": "diagnostic", "resolved": "false", "sentiment": -0.4, "distress": True,
     "tier": "standard", "tenure_months": 3.0, "products": "mobile", "region": "south", "authenticated": False},
])


def log_policy_model(model_file: Path, catalog_file: Path, policy_file: Path, name: str = "policy") -> Any:
    """Log the pyfunc model into the active MLflow run, with its signature and input
    example; returns MLflow's ``ModelInfo``."""
    from mlflow.models import infer_signature

    artifacts = {"model": str(model_file), "catalog": str(catalog_file), "policy": str(policy_file)}
    ctx = type("Ctx", (), {"artifacts": artifacts})()
    probe = OfferPolicy()
    probe.load_context(ctx)
    signature = infer_signature(INPUT_EXAMPLE, probe.predict(ctx, INPUT_EXAMPLE))
    return mlflow.pyfunc.log_model(name=name, python_model=OfferPolicy(), artifacts=artifacts, signature=signature,
                                   input_example=INPUT_EXAMPLE, code_paths=[str(_REPO / "bandit"), str(_REPO / "flows")],
                                   pip_requirements=model_requirements())


# What the model's code (bandit/ and flows/, shipped with it) imports when it is loaded.
MODEL_PACKAGES = ("mlflow", "vowpalwabbit", "numpy", "pandas", "pydantic", "pydantic-settings", "pyyaml", "jinja2",
                  "sqlalchemy")


def model_requirements() -> list[str]:
    """The model's environment, pinned to the versions installed here (from the lock).

    Why explicit: left to infer them, MLflow tries ``uv export`` on this uv project, fails
    without uv on the PATH, falls back to capturing imports by loading the model, and warns
    each time; that took 3-10 s of every retrain."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_PACKAGES]
