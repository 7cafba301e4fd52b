"""Tuning, as plain functions: the Prefect flow (``flows.tune_flow``) makes tasks of them.

One tuning run over a window of the log that ends at ``as_of``:

1. load the learnable decisions once and split them by time, as a retrain does
   (``flows.retrain.load_window`` and ``bandit.learn.window``): every grid point learns from the same
   older part and is judged on the same newest part, so the points differ only in their
   settings;
2. for each grid point (``bandit.learn.tuning``: each a complete, validated policy file), train
   a fresh model (``flows.retrain.train_candidate``; never warm-started, since a warm start
   keeps the champion's VW arguments) and evaluate its exploring policy off-policy;
3. pick the best by the promotion gate's estimator, among the points the gate could
   accept, and log one parent MLflow run (experiment ``offer-bandit-tune``) with one nested
   run per point.

It recommends; it does not register, promote or change anything. Whoever owns the
policy file adopts the recommendation by pasting its YAML, and the next retrain trains
with it and goes through the gate as always.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bandit.config.catalog import Catalog
from bandit.config.loader import load_config
from bandit.learn.evaluation import (
    Comparison,
    EvalSet,
    PolicyEvaluation,
    baselines,
    eval_set,
    evaluate,
    model_policy,
)
from bandit.learn.ope import Estimate
from bandit.config.policyfile import RULES_MIN_SENTIMENT, PolicyFile
from bandit.domain.outcomes import RewardConfig
from bandit.config.settings import Settings
from tracking.runs import experiment
from bandit.learn.tuning import (
    Grid,
    Pick,
    Point,
    expand,
    improves_on_current,
    pick_best,
    report,
    settings_yaml,
)
from bandit.learn.window import DEFAULT_HOLDOUT, DEFAULT_WINDOW_DAYS, Window, split_window
from flows.retrain import Pair, StepRunner, load_window, run_directly, train_candidate

EXPERIMENT = "offer-bandit-tune"


@dataclass(frozen=True)
class PointResult:
    """One grid point's evaluation on the held-out part, and how much it learned from."""

    evaluation: PolicyEvaluation
    trained_on: int


@dataclass(frozen=True)
class TuneResult:
    run_id: str | None  # the parent MLflow run (None: nothing to tune on, nothing logged)
    estimator: str
    best: str | None  # the best point's name (``p03``), None when none is eligible or no data
    best_label: str | None
    best_policy: PolicyFile | None
    estimate: Estimate | None  # the best's value with its 95% interval
    best_yaml: str | None  # the tuned blocks to paste into the policy file
    current: str | None  # the point with the policy file's own setting
    improves_on_current: bool | None  # the best's lower bound beats the current's estimate
    report: str  # Markdown, as logged with the parent run
    trained_on: int
    evaluated_on: int
    child_runs: dict[str, str] = field(default_factory=dict)  # point name -> MLflow run id
    reasons: list[str] = field(default_factory=list)  # why there is no recommendation

    def summary(self) -> dict[str, Any]:
        """JSON-friendly, for the Prefect flow's return value."""
        e = self.estimate
        return {"run_id": self.run_id, "estimator": self.estimator, "best": self.best, "best_label": self.best_label,
                "value": e.value if e else None, "low": e.low if e else None, "high": e.high if e else None,
                "best_yaml": self.best_yaml, "current": self.current,
                "improves_on_current": self.improves_on_current, "trained_on": self.trained_on,
                "evaluated_on": self.evaluated_on, "child_runs": dict(self.child_runs), "reasons": list(self.reasons),
                "report": self.report}


class Split:
    """The window split once for every grid point: the training part and the held-out
    part ready for evaluation.

    Built once and handed to every grid point's step; the Prefect runner passes step
    arguments ``quote``d (``flows.steps``), so Prefect does not walk the decisions inside."""

    __slots__ = ("evals", "train_part")

    def __init__(self, train_part: list[Pair], evals: EvalSet):
        self.train_part = train_part
        self.evals = evals


# -- the steps (each one a Prefect task in the flow) ---------------------------------------------

def evaluate_baselines(split_: Split, catalog: Catalog, min_ess: float,
                       rules_min_sentiment: float = RULES_MIN_SENTIMENT) -> Comparison:
    """``no_offer``, uniform and the rules on the held-out part, for scale in the report."""
    return evaluate(split_.evals, baselines(catalog, rules_min_sentiment), min_ess)


def train_and_evaluate(point: Point, reward_cfg: RewardConfig, split_: Split, min_ess: float) -> PointResult:
    """One grid point: a fresh model with its settings on the training part, then its
    exploring policy (what it would serve) evaluated on the held-out decisions."""
    model, trained_on = train_candidate(point.vw_args(), reward_cfg, split_.train_part)
    comparison = evaluate(split_.evals, {point.name: model_policy(model)}, min_ess)
    return PointResult(comparison.policies[point.name], trained_on)


def record(settings: Settings, tune_id: str, window: Window, params: dict[str, Any], grid: Grid,
           points: list[Point], results: dict[str, PointResult], comparison: Comparison, pick: Pick,
           improves: bool | None, text: str) -> TuneResult:
    """The parent run (parameters, the best's estimate and interval, the baselines, the
    report, the best settings as YAML) and one nested run per point (its settings and VW
    arguments, its estimates with intervals, complaint rate and ESS).

    Safe to retry: runs are tagged with ``tune_id``, and a retry first deletes what an
    earlier, failed attempt of the same tuning logged, so one tuning leaves one parent."""
    import mlflow
    from mlflow import MlflowClient

    experiment = _experiment(settings)
    client = MlflowClient(settings.tracking_uri)
    for run in client.search_runs([experiment], filter_string=f"tags.tune_id = '{tune_id}'"):
        client.delete_run(run.info.run_id)
    by_name = {p.name: p for p in points}
    best = by_name.get(pick.best) if pick.best else None
    current = next((p for p in points if p.current), None)
    child_runs: dict[str, str] = {}
    mlflow.set_experiment(experiment_id=experiment)
    with mlflow.start_run(run_name=f"tune {window.label}", tags={"tune_id": tune_id}) as parent:
        mlflow.log_params(params)
        for point in points:
            ev, res = comparison.policies[point.name], results[point.name]
            with mlflow.start_run(run_name=f"{point.name} {point.label}", nested=True,
                                  tags={"tune_id": tune_id, "point": point.name,
                                        "current": str(point.current).lower(),
                                        "best": str(point.name == pick.best).lower(),
                                        "passed_over": pick.passed_over.get(point.name, "")}) as child:
                mlflow.log_params(point.params())
                mlflow.log_metrics({**ev.as_metrics(), "trained_on": res.trained_on})
                child_runs[point.name] = child.info.run_id
        metrics: dict[str, float] = {}
        for name, ev in comparison.policies.items():
            if name not in by_name:  # the baselines
                metrics.update({f"{name}.{k}": v for k, v in ev.as_metrics().items()})
        for role, point in (("best", best), ("current", current)):
            if point is not None:
                metrics.update({f"{role}.{k}": v for k, v in comparison.policies[point.name].as_metrics().items()})
        mlflow.log_metrics(metrics)
        mlflow.log_text(text, "report.md")
        mlflow.log_text(grid.model_dump_json(indent=2), "grid.json")
        best_yaml = settings_yaml(best.policy) if best is not None else None
        if best_yaml is not None:
            mlflow.log_text(best_yaml, "best_policy.yaml")
        mlflow.set_tags({"window": window.label, "estimator": pick.estimator, "best": pick.best or "",
                         "best_label": best.label if best else "", "best_run_id": child_runs.get(pick.best or "", ""),
                         "best_vw_args": " ".join(best.vw_args()) if best else "",
                         "current": current.name if current else "",
                         "improves_on_current": str(improves).lower(),
                         "recommendation": "only: nothing registered or promoted; adopt by editing the policy file"})
        return TuneResult(parent.info.run_id, pick.estimator, pick.best, best.label if best else None,
                          best.policy if best else None, pick.estimate, best_yaml,
                          current.name if current else None, improves, text, params["trained_on"], comparison.n,
                          child_runs,
                          [] if best else [f"no eligible setting: {json.dumps(pick.passed_over)}"])


def _experiment(settings: Settings) -> str:
    return experiment(settings, EXPERIMENT)

# -- the composition ------------------------------------------------------------------------------

def tune(settings: Settings, as_of: float | None = None, window_days: float = DEFAULT_WINDOW_DAYS,
         holdout: float = DEFAULT_HOLDOUT, grid: Grid | None = None, step: StepRunner = run_directly) -> TuneResult:
    """Evaluate every point of ``grid`` (default ``Grid()``) on the window ending at
    ``as_of`` (default now) and recommend the best by the policy file's promotion
    estimator, with its interval. Recommends only: nothing is registered or promoted.

    ``step`` runs each step; the Prefect flow passes one that makes each a task. A bad
    grid raises ``ConfigError`` naming the field, bad window options an ``InvalidRequest``
    naming the option (``bandit.learn.window``), before anything is read or trained."""
    window = split_window(time.time() if as_of is None else as_of, window_days, holdout)
    grid = grid if grid is not None else Grid()
    cfg = load_config(settings)
    policy = cfg.policy
    points = expand(grid, policy)
    estimator = policy.promotion.estimator
    pairs = step("load-window", load_window, settings, policy.reward, window)
    train_part, test_part = window.split(pairs)
    if not train_part or not test_part:
        why = f"not enough learnable decisions in the window ({len(pairs)})"
        return TuneResult(None, estimator, None, None, None, None, None, None, None,
                          f"# Tune {window.label}\n\n{why}\n", len(train_part), len(test_part), reasons=[why])
    held = Split(train_part, eval_set(test_part, policy.reward, window.as_of))
    min_ess = policy.promotion.min_ess
    base = step("baselines", evaluate_baselines, held, cfg.catalog, min_ess, cfg.policy.control.rules_min_sentiment)
    results = {p.name: step(f"train-evaluate-{p.name}", train_and_evaluate, p, policy.reward, held, min_ess)
               for p in points}
    comparison = Comparison(base.n, {**{n: r.evaluation for n, r in results.items()}, **base.policies})
    pick = pick_best(comparison, [p.name for p in points], estimator, min_ess, policy.promotion.max_complaint_rate)
    trained_on = max(r.trained_on for r in results.values())
    current = next((p.name for p in points if p.current), None)
    improves = improves_on_current(pick, comparison, current)
    text = report(comparison, points, pick, window.label, trained_on)
    params = {"window_days": window_days, "as_of": window.as_of, "holdout": holdout, "decisions": len(pairs),
              "trained_on": trained_on, "evaluated_on": comparison.n, "estimator": estimator,
              "points": len(points), "catalog_version": cfg.catalog.version,
              "current_vw_args": " ".join(policy.vw_args()), "min_ess": min_ess,
              "max_complaint_rate": policy.promotion.max_complaint_rate,
              **{f"reward.{k}": v for k, v in policy.reward.model_dump().items()}}
    return step("record", record, settings, uuid.uuid4().hex, window, params, grid, points, results, comparison,
                pick, improves, text)
