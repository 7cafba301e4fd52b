"""Retraining, as plain functions: the Prefect flow (to come) makes tasks of these.

One retrain over a window of the log that ends at ``as_of``:

1. keep the learnable decisions (activated, reward window closed by ``as_of``) and
   split them by time: the older ``1 - holdout`` to train on, the newest ``holdout``
   to evaluate on (a candidate is never judged on what it learned from);
2. train a candidate on the training part (fresh, or warm-started from the champion);
3. evaluate candidate, champion and the baselines off-policy on the held-out part
   (``bandit.evaluation``) and ask the gate (``bandit.gate``);
4. log everything to one MLflow run (parameters, metrics per policy, the evaluation
   report, the pyfunc model), register the candidate, and promote it only if the gate
   says so; the verdict and its reasons are tags on the run and the model version.

Re-running the same window finds the run it made before (tagged with the window) and
returns its result: same window, same result, no second registration.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bandit.config import load_config
from bandit.dsjson import to_dsjson
from bandit.evaluation import Comparison, baselines, eval_set, evaluate, model_policy
from bandit.gate import Verdict, gate
from bandit.reward import window_closed
from bandit.runtime import open_store
from bandit.settings import Settings
from bandit.training import train_dsjson
from bandit.vw import VWModel

EXPERIMENT = "offer-bandit-retrain"


@dataclass(frozen=True)
class RetrainResult:
    run_id: str
    version: str | None  # registered model version (None: nothing to train on)
    promoted: bool
    reasons: list[str]
    trained_on: int
    evaluated_on: int
    reused: bool = False  # an earlier run of the same window


def report(comparison: Comparison, verdict: Verdict, window: str) -> str:
    """The evaluation report, in Markdown, as logged with the run."""
    lines = [f"# Retrain {window}", "", f"**{'Promoted' if verdict.promote else 'Not promoted'}**: "
             + "; ".join(verdict.reasons), "", f"Held-out decisions: {comparison.n}", "",
             "| policy | reward/decision (SNIPS) | 95% interval | complaint rate | offer rate | ESS |",
             "|---|---|---|---|---|---|"]
    for row in comparison.table():
        lines.append(f"| {row['policy']} | {row['value']:.3f} | [{row['low']:.3f}, {row['high']:.3f}] | "
                     f"{row['complaint_rate']:.4f} | {row['offer_rate']:.2f} | {row['ess']:.0f} |")
    warnings = [w for ev in comparison.policies.values() for w in ev.warnings()]
    if warnings:
        lines += ["", "Warnings:", *[f"- {w}" for w in warnings]]
    return "\n".join(lines) + "\n"


def retrain(settings: Settings, as_of: float | None = None, window_days: float = 7.0, holdout: float = 0.2,
            warm_start: bool = False) -> RetrainResult:
    import mlflow

    from flows.policy_model import log_policy_model
    from flows.registry import CHAMPION, Registry, RegistryModelSource

    if not 0 < holdout < 1:
        raise ValueError(f"holdout: must be between 0 and 1, got {holdout}")
    as_of = time.time() if as_of is None else as_of
    window = f"{as_of - window_days * 86400:.0f}-{as_of:.0f}"
    cfg = load_config(settings)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    experiment = mlflow.set_experiment(EXPERIMENT)
    earlier = mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.window = '{window}'",
                                 output_format="list")
    if earlier:
        t = earlier[0].data.tags
        return RetrainResult(earlier[0].info.run_id, t.get("model_version"), t.get("promoted") == "true",
                             json.loads(t.get("reasons", "[]")), int(t.get("trained_on", 0)),
                             int(t.get("evaluated_on", 0)), reused=True)

    store = open_store(settings)
    try:
        pairs = [(rec, outs) for rec, outs in store.iter_joined(as_of - window_days * 86400, as_of)
                 if rec.activated and window_closed(rec.ts, as_of, cfg.policy.reward)]
    finally:
        store.close()
    cut = int(len(pairs) * (1 - holdout))
    train_part, test_part = pairs[:cut], pairs[cut:]

    registry = Registry(settings.tracking_uri, settings.registered_model)
    champion_version = registry.version_of(CHAMPION)
    with tempfile.TemporaryDirectory() as d, mlflow.start_run(run_name=f"retrain {window}") as run:
        mlflow.set_tags({"window": window, "trained_on": str(len(train_part)), "evaluated_on": str(len(test_part))})
        mlflow.log_params({"vw_args": " ".join(cfg.policy.vw_args()), "window_days": window_days, "as_of": as_of,
                           "holdout": holdout, "warm_start": warm_start, "catalog_version": cfg.catalog.version,
                           **{f"reward.{k}": v for k, v in cfg.policy.reward.model_dump().items()}})
        if not train_part or not test_part:
            reasons = [f"not enough learnable decisions in the window ({len(pairs)})"]
            mlflow.set_tags({"promoted": "false", "reasons": json.dumps(reasons)})
            return RetrainResult(run.info.run_id, None, False, reasons, len(train_part), len(test_part))

        champion = None
        if champion_version is not None:
            source = RegistryModelSource(settings.tracking_uri, settings.registered_model,
                                         settings.home / "models" / "registry")
            champion = VWModel.load(source.fetch(f"{settings.registered_model}/{champion_version}"))
        lines = (json.dumps(to_dsjson(rec, outs, cfg.policy.reward), separators=(",", ":"))
                 for rec, outs in train_part)
        warm = None
        if warm_start and champion is not None:
            warm = Path(d) / "champion.vw"
            champion.save(warm)
        candidate, n = train_dsjson(cfg.policy.vw_args(), lines, warm_start=warm)
        model_file = Path(d) / "model.vw"
        candidate.save(model_file)

        policies = {"candidate": model_policy(candidate)}
        if champion is not None:
            policies["champion"] = model_policy(champion)
        policies.update(baselines(cfg.catalog))
        comparison = evaluate(eval_set(test_part, cfg.policy.reward, as_of), policies, cfg.policy.promotion.min_ess)
        verdict = gate(comparison, cfg.policy.promotion, champion="champion" if champion is not None else None)
        for name, ev in comparison.policies.items():
            mlflow.log_metrics({f"{name}.{k}": v for k, v in ev.as_metrics().items()})
        mlflow.log_text(report(comparison, verdict, window), "evaluation.md")
        info = log_policy_model(model_file, settings.catalog, settings.policy)
        version = registry.register(info.model_uri, {"window": window, "promoted": str(verdict.promote).lower()})
        if verdict.promote:
            registry.promote(version)
        mlflow.set_tags({"model_version": version, "promoted": str(verdict.promote).lower(),
                         "reasons": json.dumps(verdict.reasons)})
        return RetrainResult(run.info.run_id, version, verdict.promote, verdict.reasons, n, comparison.n)
