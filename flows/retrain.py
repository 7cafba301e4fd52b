"""Retraining, as plain functions: the Prefect flow (``flows.retrain_flow``) makes tasks of them.

One retrain over a window of the log that ends at ``as_of``:

1. count the learnable decisions (activated, reward window closed by ``as_of``) and
   split them by time: the older ``1 - holdout`` to train on, the newest ``holdout``
   to evaluate on (a candidate is never judged on what it learned from);
2. train a candidate on the training part (fresh, or warm-started from the champion) with the
   learner's arguments plus the policy file's ``retrain`` ones (coin betting where the explorer
   allows), streamed from the log into VW's driver as DSJSON lines (``train_window``);
3. evaluate candidate, champion and the baselines off-policy on the held-out part
   (``bandit.learn.evaluation``), scored as it streams from the log (``evaluate_window``),
   with the candidate's difference from the champion (or, for a first model, from
   ``no_offer``) on the same decisions, and ask the gate (``bandit.deploy.gate``).
   A first model (no champion), with ``promotion.first_model: progressive`` (the default), is
   trained on the whole window instead and judged by progressive validation over it
   (``bandit.learn.progressive``): night 1's 2,000 decisions all count, where a held-out fifth
   (400) was under any sensible ``min_events``. Its progressive rows are what VW's driver
   predicted for each decision while training on it, and the baselines are scored in the same
   pass: the window is read once;
4. log everything to one MLflow run (parameters, metrics per policy, the evaluation
   report, the window's decisions as input datasets, the plots of ``flows.plots``, the
   pyfunc model), register the candidate, and promote it only if the gate
   says so; the verdict and its reasons are tags on the run and the model version.

Re-running the same window finds the run it made before (tagged with the window) and
returns its result: same window, same result, no second registration.

Why streamed: a window of a contact center's week is millions of decisions; held as
records (``load_window``, which tuning still uses) a million took 11.5 GB. Streamed, the
retrain keeps per decision only columns (``bandit.learn.evaluation.Columns``), and the
log is read in SQL order (the training part, then the held-out part after the last key
trained on; a first model's window once), so the same log gives the same candidate and
estimates.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bandit.config.loader import Config, load_config
from bandit.config.policyfile import Exploration
from bandit.log.dsjson import dsjson_fields, dsjson_line, dsjson_text
from bandit.learn.evaluation import (ByDecision, Columns, Comparison, EvalSet, Policy, baselines, eval_set, evaluate, judged,
                                     model_policy)
from bandit.deploy.gate import Verdict, gate
from bandit.deploy.runtime import open_store
from bandit.domain.outcomes import RewardConfig
from bandit.learn.segments import RunBreakdown, breakdown, decision_frame, mix_metrics
from bandit.config.settings import Settings
from flows.steps import StepRunner, run_directly
from tracking.runs import RETRAIN_EXPERIMENT, experiment
from bandit.log.records import DecisionRecord
from bandit.domain.outcomes import Outcome
from bandit.learn.ope import Ragged
from bandit.learn.progressive import driver_rows, progressive_policy
from bandit.learn.training import train_dsjson, train_dsjson_stream
from bandit.learn.window import DEFAULT_HOLDOUT, DEFAULT_WINDOW_DAYS, Window, split_window
from bandit.decide.vw import VWModel
from bandit.log.reader import Key, count_learnable, iter_learnable, iter_learnable_features
from bandit.log.vwjson import context_text

EXPERIMENT = RETRAIN_EXPERIMENT
log = logging.getLogger(__name__)


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
    for (a, b), by_estimator in comparison.differences.items():
        d = by_estimator["snips"]
        lines += ["", f"{a} minus {b} on the same decisions (SNIPS, paired 95% interval): {d.value:+.3f} "
                  f"[{d.low:+.3f}, {d.high:+.3f}]"]
    warnings = [w for ev in comparison.policies.values() for w in ev.warnings()]
    if warnings:
        lines += ["", "Warnings:", *[f"- {w}" for w in warnings]]
    return "\n".join(lines) + "\n"


Pair = tuple[DecisionRecord, list[Outcome]]


# -- the steps (each one a Prefect task in the flow) ---------------------------------------------

def find_earlier(settings: Settings, window: Window) -> RetrainResult | None:
    """The result of an earlier retrain of the same window, if MLflow has one."""
    import mlflow

    earlier = mlflow.search_runs([_experiment(settings)], filter_string=f"tags.window = '{window.label}'",
                                 output_format="list")
    if not earlier:
        return None
    t = earlier[0].data.tags
    return RetrainResult(earlier[0].info.run_id, t.get("model_version"), t.get("promoted") == "true",
                         json.loads(t.get("reasons", "[]")), int(t.get("trained_on", 0)),
                         int(t.get("evaluated_on", 0)), reused=True)


def load_window(settings: Settings, reward_cfg: RewardConfig, window: Window) -> list[Pair]:
    """The learnable decisions of the window (``bandit.log.records.learnable``: activated, reward
    window closed by ``as_of``), oldest first, with their outcomes."""
    store = open_store(settings)
    try:
        return list(iter_learnable(store.engine, reward_cfg, window.start, window.as_of, window.as_of))
    finally:
        store.close()


def count_window(settings: Settings, reward_cfg: RewardConfig, window: Window) -> int:
    """How many learnable decisions the window holds (``load_window``'s length, counted by
    the database): the split by count is known before the window is streamed."""
    store = open_store(settings)
    try:
        return count_learnable(store.engine, reward_cfg, window.start, window.as_of, window.as_of)
    finally:
        store.close()


@dataclass(frozen=True)
class Trained:
    """What the train step hands on: the candidate, how many decisions it learned from, the
    log key of the last one (the held-out part starts after it) and the training part as
    columns (for the run's breakdowns). For a first model judged progressively, also the
    candidate's progressive rows (``progressive``: ``bandit.learn.progressive.driver_rows``)
    and, in ``columns``, the baselines' probabilities: the window is read once."""

    model: VWModel
    trained_on: int
    last: Key | None
    columns: Columns
    progressive: np.ndarray | None = None


def train_window(settings: Settings, vw_args: list[str], reward_cfg: RewardConfig, window: Window, cut: int,
                 warm_from: VWModel | None = None, progressive: Mapping[str, ByDecision] | None = None) -> Trained:
    """VW on the window's ``cut`` oldest learnable decisions, streamed from the log into VW's
    driver as DSJSON lines (``bandit.learn.training.train_dsjson_stream``), fresh or from
    ``warm_from``: the candidate ``train_candidate`` makes from ``load_window``'s first ``cut``.

    With ``progressive`` (a first model's evaluation: the policies it is compared with, the
    baselines), each decision is also scored by those policies as it streams, and VW's
    driver writes what it predicted for each decision before learning it: the candidate's
    progressive validation (``bandit.learn.progressive.driver_rows``), taken from the
    training pass itself instead of a second replay of the window through VW from Python."""
    columns = Columns(progressive)
    last: list[Key] = []
    store = open_store(settings)

    def lines() -> Iterator[str]:
        with closing(iter_learnable_features(store.engine, reward_cfg, window.start, window.as_of,
                                             window.as_of)) as rows:
            for i, (rec, outs, shared, actions) in enumerate(rows):
                if i == cut:
                    return
                columns.add(rec, judged(rec, outs, reward_cfg))
                last[:] = [(rec.ts, rec.event_id)]
                yield dsjson_text(dsjson_fields(rec, outs, reward_cfg), context_text(shared, actions))

    rows = None
    try:
        with tempfile.TemporaryDirectory() as d:
            predictions = Path(d) / "predictions.txt" if progressive is not None else None
            warm = None
            if warm_from is not None:
                warm = Path(d) / "champion.vw"
                warm_from.save(warm)
            model, n = train_dsjson_stream(vw_args, lines(), warm_start=warm, predictions=predictions)
            if predictions is not None:
                rows = driver_rows(predictions, columns.n_actions())
    finally:
        store.close()
    return Trained(model, n, last[0] if last else None, columns, rows)


def evaluate_window(settings: Settings, cfg: Config, trained: Trained, champion: VWModel | None,
                    window: Window) -> tuple[Comparison, Verdict, RunBreakdown | None]:
    """``compare_in_detail`` on the window's held-out part (the learnable decisions after
    ``trained.last``), each decision scored by every policy as it streams from the log and
    kept as columns (``bandit.learn.evaluation.Columns``). For a first model trained with
    ``progressive`` (``train_window``) the whole window, without reading it again: the
    candidate's progressive rows and the baselines' probabilities were kept as it trained."""
    if trained.progressive is not None:
        evals = trained.columns.eval_set()
        matrices = {"candidate": Ragged(trained.progressive, evals.rewards.n_actions),
                    **trained.columns.matrices()}
        return _judge(cfg, evals, matrices, champion is not None, trained.columns.frame("train"))
    held = Columns(_policies(cfg, trained.model, champion), like=trained.columns)
    store = open_store(settings)
    try:
        with closing(iter_learnable_features(store.engine, cfg.policy.reward, window.start, window.as_of,
                                             window.as_of, after=trained.last)) as rows:
            for rec, outs, shared, actions in rows:
                # the features the models score, parsed; the rest of the payload never is
                rec.payload.update(shared=json.loads(shared), actions=json.loads(actions))
                held.add(rec, judged(rec, outs, cfg.policy.reward))
    finally:
        store.close()
    evals = held.eval_set()
    matrices = held.matrices()
    held.policies.clear()
    return _judge(cfg, evals, matrices, champion is not None, trained.columns.frame("train"))


def fetch_champion(settings: Settings, exploration: Exploration) -> tuple[str | None, VWModel | None]:
    """The registry's champion version and its VW model, exploring as the service serves it
    (``exploration``, the policy file's); ``(None, None)`` before the first."""
    from tracking.registry import CHAMPION, Registry, RegistryModelSource

    version = Registry(settings.tracking_uri, settings.registered_model).version_of(CHAMPION)
    if version is None:
        return None, None
    source = RegistryModelSource(settings.tracking_uri, settings.registered_model,
                                 settings.home / "models" / "registry")
    return version, VWModel.load(source.fetch(f"{settings.registered_model}/{version}"), exploration=exploration)


def train_candidate(vw_args: list[str], reward_cfg: RewardConfig, train_part: list[Pair],
                    warm_from: VWModel | None = None) -> tuple[VWModel, int]:
    """VW on the training part as DSJSON (``bandit.learn.training``), fresh or from ``warm_from``."""
    lines = (dsjson_line(rec, outs, reward_cfg) for rec, outs in train_part)
    if warm_from is None:
        return train_dsjson(vw_args, lines)
    with tempfile.TemporaryDirectory() as d:
        warm = Path(d) / "champion.vw"
        warm_from.save(warm)
        return train_dsjson(vw_args, lines, warm_start=warm)


def compare_in_detail(cfg: Config, candidate: VWModel, champion: VWModel | None, test_part: list[Pair],
                      as_of: float, train_part: list[Pair] | None = None, progressive_args: list[str] | None = None
                      ) -> tuple[Comparison, Verdict, RunBreakdown | None]:
    """Candidate, champion and the baselines off-policy on the held-out part, and the gate's
    verdict; with ``train_part`` also the run's breakdowns (``bandit.learn.segments``): the
    window as a frame, the offer mix per policy, the candidate's lift per segment. Each
    policy is scored once, for the estimates and the breakdowns alike.

    With ``progressive_args`` (a first model, ``promotion.first_model: progressive``) the
    "held-out part" is the whole window the candidate learned from, and the candidate is
    scored by progressive validation (``bandit.learn.progressive``: each decision by the learner
    with these arguments trained on the decisions before it), never by itself on what it saw."""
    held_out = eval_set(test_part, cfg.policy.reward, as_of)
    policies = _policies(cfg, candidate, champion)
    if progressive_args is not None:
        policies["candidate"] = progressive_policy(progressive_args, cfg.policy.reward)
    matrices = {name: policy(held_out) for name, policy in policies.items()}
    train_rows = None if train_part is None else decision_frame(eval_set(train_part, cfg.policy.reward, as_of), "train")
    return _judge(cfg, held_out, matrices, champion is not None, train_rows)


def _policies(cfg: Config, candidate: VWModel, champion: VWModel | None) -> dict[str, Any]:
    """The policies a candidate is compared with: itself, the champion (if any), the baselines."""
    policies: dict[str, Any] = {"candidate": model_policy(candidate)}
    if champion is not None:
        policies["champion"] = model_policy(champion)
    policies.update(_baselines(cfg))
    return policies


def _baselines(cfg: Config) -> dict[str, Any]:
    """The baselines every candidate is compared with (``bandit.learn.evaluation.baselines``)."""
    return baselines(cfg.catalog, cfg.policy.control.rules_min_sentiment)


def _judge(cfg: Config, held_out: EvalSet, matrices: dict[str, np.ndarray | Ragged], has_champion: bool,
           train_rows: Any | None) -> tuple[Comparison, Verdict, RunBreakdown | None]:
    """The estimates from the policies' matrices on the held-out part, the gate's verdict and,
    with ``train_rows`` (the training part's ``decision_frame``), the run's breakdowns."""
    base = "champion" if has_champion else "no_offer"  # what the gate holds the candidate against
    comparison = evaluate(held_out, {name: _fixed(pi) for name, pi in matrices.items()}, cfg.policy.promotion.min_ess,
                          paired=[("candidate", base)])
    verdict = gate(comparison, cfg.policy.promotion, champion="champion" if has_champion else None)
    if train_rows is None or not len(held_out):
        return comparison, verdict, None
    return comparison, verdict, breakdown(train_rows, held_out, matrices, min_ess=cfg.policy.promotion.min_ess)


def _fixed(pi: np.ndarray) -> Policy:
    """A policy whose matrix is already computed."""
    return lambda _evals: pi


def record(settings: Settings, window: Window, params: dict[str, Any], candidate: VWModel | None,
           trained_on: int, comparison: Comparison | None, verdict: Verdict,
           details: RunBreakdown | None = None) -> RetrainResult:
    """One MLflow run with everything a reviewer needs; register the candidate; move the
    champion alias only if the verdict says so. Tagged with the window, so a re-run finds it.

    With ``details`` (``compare_in_detail``) the run also has the window's decisions as its
    input datasets (the training and the held-out rows), the offer mix of every policy as
    metrics (``<policy>.mix.<offer>``, ``logged`` for the log itself) and the plots of
    ``flows.plots``."""
    import mlflow

    from tracking.policy_model import log_policy_model
    from tracking.registry import Registry

    evaluated_on = comparison.n if comparison is not None else 0
    mlflow.set_experiment(experiment_id=_experiment(settings))
    with tempfile.TemporaryDirectory() as d, mlflow.start_run(run_name=f"retrain {window.label}") as run:
        mlflow.log_params(params)
        if candidate is None or comparison is None:
            mlflow.set_tags({"window": window.label, "trained_on": str(trained_on), "evaluated_on": "0",
                             "promoted": "false", "reasons": json.dumps(verdict.reasons)})
            return RetrainResult(run.info.run_id, None, False, verdict.reasons, trained_on, 0)
        for name, ev in comparison.policies.items():
            mlflow.log_metrics({f"{name}.{k}": v for k, v in ev.as_metrics().items()})
        for (a, b), by_estimator in comparison.differences.items():  # what the gate judged by
            for est, diff in by_estimator.items():
                mlflow.log_metrics({f"{a}-minus-{b}.{est}": diff.value, f"{a}-minus-{b}.{est}_low": diff.low,
                                    f"{a}-minus-{b}.{est}_high": diff.high})
        mlflow.log_text(report(comparison, verdict, window.label), "evaluation.md")
        if details is not None:
            _log_details(details, window)
        model_file = Path(d) / "model.vw"
        candidate.save(model_file)
        info = log_policy_model(model_file, settings.catalog, settings.policy)
        registry = Registry(settings.tracking_uri, settings.registered_model)
        # a retry after a failure between registering and tagging the run must not register twice
        version = registry.register_once(info.model_uri, "window", window.label,
                                         {"promoted": str(verdict.promote).lower()})
        if verdict.promote:
            registry.promote(version)
        # the window tag last: a run that failed half-way is not taken for a finished one
        mlflow.set_tags({"model_version": version, "promoted": str(verdict.promote).lower(),
                         "reasons": json.dumps(verdict.reasons), "trained_on": str(trained_on),
                         "evaluated_on": str(evaluated_on), "window": window.label})
        return RetrainResult(run.info.run_id, version, verdict.promote, verdict.reasons, trained_on, evaluated_on)


def _log_details(details: RunBreakdown, window: Window) -> None:
    """The input datasets, the offer-mix metrics and the plots of one run (inside it)."""
    import mlflow
    import mlflow.data
    from mlflow.data.digest_utils import MAX_ROWS, compute_pandas_digest
    from mlflow.models import infer_signature

    from flows.plots import figures

    for split, context in (("train", "training"), ("holdout", "evaluation")):
        rows = details.decisions[details.decisions["split"] == split].reset_index(drop=True)
        # MLflow's own digest reads every value's type (``df.map(type)``: minutes and
        # gigabytes for a window of millions); its digest of the first rows, with the count,
        # says the same of a window that is in time order
        head = compute_pandas_digest(rows.head(MAX_ROWS))
        digest = hashlib.md5(f"{head}:{len(rows)}".encode()).hexdigest()[:8]
        dataset = mlflow.data.from_pandas(rows, name=f"window {window.label} {split}", targets="reward",
                                          digest=digest)
        # MLflow infers a frame's schema value by value (~7 s per 160,000 rows); every column
        # here has one type and no gaps, so the first rows give the same schema
        dataset.schema = infer_signature(rows.head(1000)).inputs
        mlflow.log_input(dataset, context=context)
    mlflow.log_metrics(mix_metrics(details.mix))
    try:
        plots = figures(details)
    except Exception as exc:  # noqa: BLE001 - a plot that cannot be drawn must not block the model
        log.warning("retrain %s: plots not drawn: %s", window.label, exc, exc_info=True)
        mlflow.set_tag("plots_error", f"{type(exc).__name__}: {exc}"[:500])
        return
    for path, fig in plots.items():
        mlflow.log_figure(fig, path)


def _experiment(settings: Settings) -> str:
    return experiment(settings, EXPERIMENT)

# -- the composition: one retrain, whoever runs the steps ----------------------------------------

def retrain(settings: Settings, as_of: float | None = None, window_days: float = DEFAULT_WINDOW_DAYS,
            holdout: float = DEFAULT_HOLDOUT, warm_start: bool = False,
            step: StepRunner = run_directly) -> RetrainResult:
    """Train, evaluate, record and maybe promote, for the window ending at ``as_of`` (default
    now). ``step`` runs each step; the Prefect flow passes one that makes each a task. Bad
    options are an ``InvalidRequest`` naming the option (``bandit.learn.window``)."""
    window = split_window(time.time() if as_of is None else as_of, window_days, holdout)
    earlier = step("find-earlier-run", find_earlier, settings, window)
    if earlier is not None:
        return earlier
    cfg = load_config(settings)
    n = step("count-window", count_window, settings, cfg.policy.reward, window)
    vw_args = cfg.policy.retrain_args()  # the learner, trained as a batch allows
    params = {"vw_args": " ".join(vw_args), "window_days": window_days, "as_of": window.as_of,
              "holdout": holdout, "warm_start": warm_start, "catalog_version": cfg.catalog.version,
              "decisions": n, **{f"reward.{k}": v for k, v in cfg.policy.reward.model_dump().items()}}
    champion: VWModel | None = None
    if n:
        _, champion = step("fetch-champion", fetch_champion, settings, cfg.policy.exploration)
    progressive = champion is None and cfg.policy.promotion.first_model == "progressive"
    params["evaluation"] = "progressive" if progressive else "holdout"
    # a first model, progressively: trained on the whole window, judged by progressive validation over it
    cut = n if progressive else window.cut(n)
    if cut == 0 or (cut == n and not progressive):
        verdict = Verdict(False, [f"not enough learnable decisions in the window ({n})"])
        return step("record", record, settings, window, params, None, cut, None, verdict)
    trained = step("train", train_window, settings, vw_args, cfg.policy.reward, window, cut,
                   champion if warm_start else None, _baselines(cfg) if progressive else None)
    comparison, verdict, details = step("evaluate", evaluate_window, settings, cfg, trained, champion, window)
    return step("record", record, settings, window, params, trained.model, trained.trained_on, comparison, verdict,
                details)
