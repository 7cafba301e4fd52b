"""Tuning: the grid and its expansion into policy files, choosing the best, the report,
and one tune flow run under Prefect on the simulated log."""

import itertools
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import vowpalwabbit
from pydantic import ValidationError

from bandit.domain.errors import ConfigError
from bandit.learn.evaluation import Comparison, PolicyEvaluation
from bandit.learn.ope import Estimate
from bandit.config.policyfile import Exploration, Learner, PolicyFile, parse_policy, vw_accepts
from bandit.learn.tuning import (
    DEFAULT_INTERACTIONS,
    Grid,
    Point,
    expand,
    improves_on_current,
    legal,
    pick_best,
    report,
    settings_yaml,
)
from simlog import simulated_log

REPO = Path(__file__).resolve().parents[2]
SMALL = Grid(explorers=({"algorithm": "epsilon", "epsilon": 0.2}, {"algorithm": "squarecb", "gamma_scale": 50}), cb_types=("ips", "mtr"),
             interactions=(DEFAULT_INTERACTIONS,), learning_rates=(Learner().learning_rate,))


def _pairs(combo: tuple[int, ...]) -> set[tuple[int, int, int, int]]:
    return {(a, combo[a], b, combo[b]) for a, b in itertools.combinations(range(len(combo)), 2)}


# -- the grid ---------------------------------------------------------------------------------------

def test_the_default_grid_is_modest_and_every_point_is_a_legal_policy_file() -> None:
    base, grid = PolicyFile(), Grid()
    points = expand(grid, base)
    assert 10 <= len(points) <= 24
    for p in points:
        assert PolicyFile.model_validate(p.policy.model_dump()) == p.policy  # validates as a file would
        assert vw_accepts(p.policy.exploration.algorithm, p.policy.learner.cb_type)
        assert (p.policy.guardrails, p.policy.reward, p.policy.promotion) == (base.guardrails, base.reward,
                                                                             base.promotion)
        pasted = parse_policy(settings_yaml(p.policy))  # the YAML a person pastes gives the same setting
        assert (pasted.exploration, pasted.learner) == (p.policy.exploration, p.policy.learner)
    assert len({tuple(p.vw_args()) for p in points}) == len(points)
    current = [p for p in points if p.current]  # the policy file's own setting, once (in the grid or added first)
    assert len(current) == 1 and current[0].vw_args() == base.vw_args()
    assert expand(grid, base) == points  # the same grid gives the same points


def test_the_default_grid_covers_every_pair_of_settings_vw_accepts_together() -> None:
    base, grid = PolicyFile(), Grid()

    def combo(p: Point) -> tuple[int, ...]:
        e, lr = p.policy.exploration, p.policy.learner
        explorer = next(i for i, x in enumerate(grid.explorers) if all(getattr(e, k) == v for k, v in x.items()))
        return (explorer, grid.cb_types.index(lr.cb_type), grid.interactions.index(lr.interactions),
                grid.learning_rates.index(lr.learning_rate))

    product = itertools.product(*(range(len(axis)) for axis in (grid.explorers, grid.cb_types, grid.interactions,
                                                                grid.learning_rates)))
    accepted = [c for c in product if legal(base, grid.explorers[c[0]], grid.cb_types[c[1]])]
    assert len(accepted) == 171  # what trying everything would cost
    covered = set().union(*(_pairs(combo(p)) for p in expand(grid, base)))
    assert set().union(*(_pairs(c) for c in accepted)) <= covered


def test_a_small_grid_is_tried_in_full_with_the_current_setting_and_without_what_vw_refuses() -> None:
    points = expand(SMALL, PolicyFile())
    assert [(p.current, p.policy.exploration.algorithm, p.policy.exploration.epsilon, p.policy.learner.cb_type)
            for p in points] == [(True, "squarecb", 0.1, "mtr"), (False, "epsilon", 0.2, "ips"),
                                 (False, "epsilon", 0.2, "mtr"), (False, "squarecb", 0.1, "mtr")]
    without = expand(SMALL.model_copy(update={"include_current": False}), PolicyFile())
    assert [p.vw_args() for p in without] == [p.vw_args() for p in points[1:]]
    # the current setting already in the grid is marked, not added twice
    same = expand(SMALL.model_copy(update={"explorers": ({"algorithm": "epsilon"}, {"algorithm": "squarecb"})}),
                  PolicyFile())
    assert [(p.current, p.policy.exploration.algorithm, p.policy.learner.cb_type) for p in same] == [
        (False, "epsilon", "ips"), (False, "epsilon", "mtr"), (True, "squarecb", "mtr")]


@pytest.mark.parametrize("algorithm", ["epsilon", "softmax", "bag", "cover", "squarecb", "regcb", "regcbopt"])
def test_which_explorers_and_cb_types_go_together_is_what_vw_itself_accepts(algorithm: str) -> None:
    for cb_type in ("ips", "dr", "mtr", "dm"):
        args = ["--cb_explore_adf", *Exploration(algorithm=algorithm).vw_args(), *Learner(cb_type=cb_type).vw_args()]
        try:
            vowpalwabbit.Workspace(" ".join([*args, "--quiet"])).finish()
            accepted = True
        except RuntimeError:
            accepted = False
        assert accepted == vw_accepts(algorithm, cb_type), (algorithm, cb_type)
        if not accepted:  # and the policy file refuses what VW refuses, naming both fields
            with pytest.raises(ValidationError, match="learner.cb_type .* does not go with exploration.algorithm"):
                PolicyFile.model_validate({"exploration": {"algorithm": algorithm}, "learner": {"cb_type": cb_type}})


def test_bad_grid_values_are_all_reported_naming_the_grid_and_policy_file_fields() -> None:
    grid = Grid(explorers=({"algorithm": "greedy"}, {"algorithm": "epsilon", "epsilon": 1.5}, {"epsilonn": 0.1}),
                cb_types=("mtr", "ipss"), interactions=(("co", "zo"),), learning_rates=(0.5, -1.0))
    with pytest.raises(ConfigError) as e:
        expand(grid, PolicyFile())
    problems = e.value.problems
    assert len(problems) == 6, problems
    for expected in ("explorers[0] = {'algorithm': 'greedy'}: field 'exploration.algorithm'",
                     "explorers[1] = {'algorithm': 'epsilon', 'epsilon': 1.5}: field 'exploration.epsilon'",
                     "explorers[2] = {'epsilonn': 0.1}: field 'exploration.epsilonn'",
                     "cb_types[1] = 'ipss': field 'learner.cb_type'",
                     "interactions[0] = ['co', 'zo']: field 'learner.interactions'",
                     "learning_rates[1] = -1.0: field 'learner.learning_rate'"):
        assert any(expected in p for p in problems), (expected, problems)
    with pytest.raises(ValidationError, match="max_pointz"):
        Grid(max_pointz=3)
    with pytest.raises(ValidationError, match="learning_rates"):
        Grid(learning_rates=())


# -- choosing the best -----------------------------------------------------------------------------

def _estimate(name: str, value: float, half: float, ess: float) -> Estimate:
    return Estimate(name, value, value - half, value + half, half / 1.96, 800, ess, 100.0)


def _evaluation(name: str, value: float, half: float = 1.0, ess: float = 500.0, complaints: float = 0.0,
                dr: float | None = None) -> PolicyEvaluation:
    reward = {"ips": _estimate("ips", value, half, ess), "snips": _estimate("snips", value, half, ess),
              "dr": _estimate("dr", value if dr is None else dr, half, ess)}
    return PolicyEvaluation(name, reward, _estimate("snips", complaints, 0.001, ess), 0.3, ess)


def test_the_best_is_the_highest_eligible_estimate_and_a_tie_goes_to_the_higher_lower_bound() -> None:
    comparison = Comparison(800, {
        "p00": _evaluation("p00", 2.0, half=1.5),
        "p01": _evaluation("p01", 2.5, half=2.0, dr=5.0),  # ties p02, lower bound 0.5
        "p02": _evaluation("p02", 2.5, half=1.0),  # lower bound 1.5
        "p03": _evaluation("p03", 9.0, ess=20.0),  # the highest, on 20 effective samples
        "p04": _evaluation("p04", 8.0, complaints=0.05),  # over the complaint cap
        "p05": _evaluation("p05", math.nan),
        "no_offer": _evaluation("no_offer", 99.0),  # a baseline, not a candidate
    })
    names = [f"p0{i}" for i in range(6)]
    pick = pick_best(comparison, names, "snips", min_ess=100, max_complaint_rate=0.02)
    assert pick.best == "p02" and pick.estimate is not None and pick.estimate.low == pytest.approx(1.5)
    assert pick.ranking == ["p03", "p04", "p02", "p01", "p00", "p05"]
    assert sorted(pick.passed_over) == ["p03", "p04", "p05"]
    assert "effective sample size 20 is below 100" in pick.passed_over["p03"]
    assert "complaint rate 0.0500 is above the cap 0.02" in pick.passed_over["p04"]
    assert improves_on_current(pick, comparison, "p00") is False  # 1.5 is not above 2.0

    assert pick_best(comparison, names, "dr", min_ess=100, max_complaint_rate=0.02).best == "p01"  # its estimator
    tie = Comparison(800, {"p00": _evaluation("p00", 1.0), "p01": _evaluation("p01", 1.0)})
    assert pick_best(tie, ["p00", "p01"], "snips").best == "p00"  # a full tie keeps the current setting
    none = pick_best(comparison, ["p03", "p05"], "snips", min_ess=100)
    assert none.best is None and none.estimate is None and none.ranking == ["p03", "p05"]

    clear = Comparison(800, {"p00": _evaluation("p00", 1.0), "p01": _evaluation("p01", 3.0)})
    clear_pick = pick_best(clear, ["p00", "p01"], "snips")
    assert improves_on_current(clear_pick, clear, "p00") is True  # lower bound 2.0 > 1.0
    assert improves_on_current(clear_pick, clear, "p00", margin=1.5) is False
    assert improves_on_current(clear_pick, clear, None) is None


def test_the_report_ranks_every_point_and_gives_the_best_as_policy_file_yaml() -> None:
    epsilon_file = PolicyFile.model_validate({"exploration": {"algorithm": "epsilon"}, "learner": {
        "interactions": ["co", "uo", "eo", "ho"], "learning_rate": 0.1}})  # the former default, served now
    points = expand(Grid(explorers=({"algorithm": "epsilon"}, {"algorithm": "softmax"}), cb_types=("mtr",),
                         interactions=(("co", "uo", "eo", "ho"),), learning_rates=(0.1,)), epsilon_file)
    assert [p.current for p in points] == [True, False]
    comparison = Comparison(800, {"p00": _evaluation("p00", 1.0), "p01": _evaluation("p01", 2.0),
                                  "no_offer": _evaluation("no_offer", 0.0)})
    pick = pick_best(comparison, ["p00", "p01"], "snips")
    text = report(comparison, points, pick, "w", 3200)
    assert "**Best: p01** (softmax lambda=10 / mtr / co,uo,eo,ho / l=0.1): 2.000 [1.000, 3.000]" in text
    assert "| 1 | p01 | softmax lambda=10 | mtr |" in text and "| 2 | p00 | epsilon 0.1 | mtr |" in text
    assert "| no_offer | 0.000 |" in text and "the difference may be noise" in text
    pasted = parse_policy(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    assert pasted.exploration.algorithm == "softmax" and pasted.learner == points[1].policy.learner


# -- the flow -------------------------------------------------------------------------------------

def test_the_tune_flow_logs_a_child_run_per_point_and_names_the_best(
        tmp_path: Path, migrated_db: Path, monkeypatch: pytest.MonkeyPatch, prefect_server: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from bandit.cli import main
    from flows.tune import EXPERIMENT
    from flows.tune_flow import tune_flow

    from bandit.config.settings import get_settings

    policy, as_of = simulated_log(tmp_path, migrated_db)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    # the settings as the command line passes them: a parameter, not the environment
    settings = get_settings(home=tmp_path / "home", policy=policy, catalog=REPO / "config/offers.yaml",
                            salt="tune-test-salt", admin_key="tune-test-admin-key")
    state = tune_flow(as_of=as_of, grid=SMALL, settings=settings, return_state=True)
    assert state.is_completed(), state
    result = state.result()
    assert result["trained_on"] + result["evaluated_on"] == 4000 and result["current"] == "p00"
    assert result["best"] in {"p00", "p01", "p02", "p03"} and result["low"] <= result["value"] <= result["high"]

    client = MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    parent = client.get_run(result["run_id"])
    assert client.get_experiment(parent.info.experiment_id).name == EXPERIMENT
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_point = {r.data.tags["point"]: r for r in children}
    assert sorted(by_point) == ["p00", "p01", "p02", "p03"] == sorted(result["child_runs"])
    for run in children:
        assert {"snips", "snips_low", "snips_high", "dr", "ips", "complaint_rate", "ess", "trained_on"} <= set(
            run.data.metrics)
        assert run.data.params["vw_args"].startswith("--cb_explore_adf") and "learner.cb_type" in run.data.params
    best = by_point[result["best"]]
    assert parent.data.tags["best"] == result["best"] and parent.data.tags["best_run_id"] == best.info.run_id
    assert best.data.tags["best"] == "true" and sum(r.data.tags["best"] == "true" for r in children) == 1
    assert parent.data.metrics["best.snips"] == pytest.approx(best.data.metrics["snips"])
    est = result["estimator"]  # the promotion gate's (dr by default)
    assert parent.data.metrics[f"best.{est}_low"] == pytest.approx(result["low"])
    assert "no_offer.snips" in parent.data.metrics
    text = Path(client.download_artifacts(parent.info.run_id, "report.md", str(tmp_path))).read_text()
    assert f"**Best: {result['best']}**" in text and "| p03 |" in text
    pasted = parse_policy(Path(client.download_artifacts(parent.info.run_id, "best_policy.yaml",
                                                         str(tmp_path))).read_text())
    assert pasted.vw_args() == best.data.params["vw_args"].split()
    assert client.search_registered_models() == []  # it recommends; nothing registered

    with get_client(sync_client=True) as prefect:  # each step ran as its own task, and completed
        runs = prefect.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
        recorded = prefect.read_flow_run(state.state_details.flow_run_id).parameters
    done = {r.name.rsplit("-", 1)[0] for r in runs if r.state is not None and r.state.is_completed()}
    assert {"load-window", "baselines", "train-evaluate-p00", "train-evaluate-p03", "record"} <= done, done
    # the flow run's parameters, kept by Prefect and shown in its UI, name the settings but no secret
    assert recorded["settings"]["home"] == str(tmp_path / "home")
    assert "tune-test-salt" not in str(recorded) and "tune-test-admin-key" not in str(recorded)

    # the command line: the same steps without Prefect (with the small grid), printing the report
    monkeypatch.setattr("flows.tune.Grid", lambda: SMALL)
    capsys.readouterr()
    assert main(["tune", "--as-of", datetime.fromtimestamp(as_of, UTC).isoformat(), "--no-prefect",
                 "--home", str(tmp_path / "home"), "--policy", str(policy)]) == 0
    out = capsys.readouterr().out
    assert f"**Best: {result['best']}**" in out and "```yaml\nexploration:\n" in out
    assert "| 4 |" in out and "(experiment offer-bandit-tune)" in out


def test_a_retried_record_step_replaces_what_its_failed_attempt_logged(tmp_path: Path, migrated_db: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from mlflow import MlflowClient

    from bandit.config.settings import get_settings
    from flows.retrain import Window
    from flows.tune import PointResult, record

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    (tmp_path / "home").mkdir()
    shutil.copy(migrated_db, tmp_path / "home" / "mlflow.db")
    settings = get_settings(home=tmp_path / "home", salt="x")
    points = expand(SMALL, PolicyFile())[:2]
    comparison = Comparison(800, {"p00": _evaluation("p00", 1.0), "p01": _evaluation("p01", 2.0),
                                  "no_offer": _evaluation("no_offer", 0.0)})
    pick = pick_best(comparison, ["p00", "p01"], "snips")
    results = {n: PointResult(comparison.policies[n], 3200) for n in ("p00", "p01")}
    args = (settings, "tune-1", Window(1e9, 7), {"trained_on": 3200}, SMALL, points, results, comparison, pick,
            False, "report")
    first, again = record(*args), record(*args)  # as a Prefect retry would call it again
    client = MlflowClient(settings.tracking_uri)
    live = client.search_runs([client.get_run(again.run_id).info.experiment_id])
    assert sorted(r.info.run_id for r in live) == sorted([again.run_id, *again.child_runs.values()])
    assert client.get_run(first.run_id).info.lifecycle_stage == "deleted"
    assert again.best == "p01" and again.estimate is not None and again.estimate.low == pytest.approx(1.0)


def test_tune_on_an_empty_log_recommends_nothing_and_says_why(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from bandit.cli import main

    common = ["--home", str(tmp_path / "home"), "--policy", str(REPO / "config/policy.yaml"),
              "--catalog", str(REPO / "config/offers.yaml")]
    assert main(["tune", *common, "--no-prefect"]) == 1
    assert "no recommendation: not enough learnable decisions in the window (0)" in capsys.readouterr().out
    assert not (tmp_path / "home" / "mlflow.db").exists()  # nothing to log, MLflow not touched
