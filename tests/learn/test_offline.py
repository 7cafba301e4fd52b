"""``offer-bandit evaluate``: offline evaluation of any policies on a log made by the decision
path and on an imported Personalizer history; the --json shape, the MLflow run and the
command line's errors."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bandit.cli import main
from bandit.config.loader import LiveConfig, load_config
from bandit.config.policyfile import PolicyFile
from bandit.config.settings import Settings, get_settings
from bandit.decide.decider import Decider
from bandit.deploy.runtime import open_store
from bandit.domain.errors import InvalidRequest
from bandit.learn.offline import NothingToEvaluate, OfflineEvaluation, offline_evaluation
from bandit.learn.specs import POLICY_FORMS, parse_spec
from bandit.learn.training import train_dsjson, train_from_log
from bandit.log.dsjson import dsjson_lines, import_dsjson
from bandit.log.reader import iter_joined
from bandit.log.store import DecisionStore
from conftest import NOW, REPO, fill
from personalizer import personalizer_history

SINCE, UNTIL = (NOW - timedelta(days=1)).timestamp(), (NOW + timedelta(days=1)).timestamp()
AS_OF = (NOW + timedelta(days=5)).timestamp()  # every reward window closed
ESTIMATES = ("ips", "snips", "dr")


def check_shape(report: dict[str, Any], names: list[str], n: int) -> None:
    """The --json document: every policy with its three estimates and rates, the count, and
    every other policy's paired difference from the first."""
    assert list(report["policies"]) == names and report["n"] == n
    for name, p in report["policies"].items():
        assert set(p) >= {"ips", "snips", "dr", "ess", "complaint_rate", "offer_rate"}, name
        for e in ESTIMATES:
            assert set(p[e]) == {"value", "low", "high"}
            assert p[e]["low"] <= p[e]["value"] <= p[e]["high"], (name, e, p[e])
        assert 0 < p["ess"] <= n + 1e-9 and 0 <= p["offer_rate"] <= 1 and 0 <= p["complaint_rate"] <= 1
    assert list(report["differences"]) == names[1:]
    for d in report["differences"].values():
        assert d["against"] == names[0] and all(d[e]["low"] <= d[e]["value"] <= d[e]["high"] for e in ESTIMATES)


def _most_offered(store: DecisionStore) -> str:
    ids = [a for rec, _ in iter_joined(store.engine) for a in rec.action_ids if a != "no_offer"]
    return max(set(ids), key=ids.count)


def test_evaluate_a_log_made_by_the_decision_path(decider: Decider, store: DecisionStore, live: LiveConfig,
                                                  tmp_path: Path) -> None:
    fill(decider, 200)  # every tenth deferred, never activated: 180 count
    model, _ = train_from_log(store, live.current.policy)
    model.save(tmp_path / "m.vw")
    offer = _most_offered(store)
    names = ["uniform", "no_offer", "rules", f"fixed:{offer}", f"model:{tmp_path / 'm.vw'}"]
    stages: list[str] = []
    result = offline_evaluation(iter_joined(store.engine, SINCE, UNTIL), live.current, [parse_spec(n) for n in names],
                                SINCE, UNTIL, AS_OF, progress=lambda stage, done, total: stages.append(stage))
    report = result.as_json()
    check_shape(report, names, 180)
    assert json.loads(json.dumps(report)) == report  # plain JSON: no NaN, no numpy types
    assert report["decisions_read"] == 200 and report["interval"] == "el_wmax"
    p = report["policies"]
    assert p["no_offer"]["offer_rate"] == 0 and p["no_offer"]["ips"]["value"] <= 0  # complaints only (fill)
    assert p[f"fixed:{offer}"]["offer_rate"] > 0.5
    # the policy is the logging one, nearly: cold start explored with the policy file's epsilon
    assert {"reading the log", "fitting DR's reward model", f"scoring model:{tmp_path / 'm.vw'}"} <= set(stages)
    assert "uniform" in result.table() and "minus uniform, paired on the same decisions:" in result.table()


def test_nothing_to_evaluate_and_unknown_offers_are_errors(decider: Decider, store: DecisionStore,
                                                           live: LiveConfig) -> None:
    fill(decider, 30)
    with pytest.raises(NothingToEvaluate, match="no learnable decisions"):  # reward windows still open
        offline_evaluation(iter_joined(store.engine), live.current, [parse_spec("uniform")], SINCE, UNTIL,
                           NOW.timestamp())
    with pytest.raises(InvalidRequest, match="fixed:nope: offer 'nope' was eligible in none"):
        offline_evaluation(iter_joined(store.engine), live.current, [parse_spec("uniform"), parse_spec("fixed:nope")],
                           SINCE, UNTIL, AS_OF)
    with pytest.raises(InvalidRequest, match="champion: no model registry"):
        offline_evaluation(iter_joined(store.engine), live.current, [parse_spec("champion")], SINCE, UNTIL, AS_OF)


@pytest.mark.parametrize("text", ["", "champions", "registry:", "model", "fixed:", "best:1", "no_offer:x"])
def test_unknown_specs_list_the_valid_forms(text: str) -> None:
    with pytest.raises(InvalidRequest, match="valid forms: champion, registry:<version>, model:<path>"):
        parse_spec(text)


def test_specs() -> None:
    assert parse_spec("registry:3").argument == "3" and parse_spec("registry:3").needs_registry
    assert parse_spec("fixed:upgrade").kind == "fixed" and parse_spec("uniform").argument is None
    assert parse_spec("model:C:/m.vw").argument == "C:/m.vw"  # only the first colon separates
    assert len(POLICY_FORMS) == 8


# -- an imported Personalizer history: strings, booleans, nested objects, arrays, namespaces ----

START = datetime(2026, 11, 10, tzinfo=UTC)


def _imported(tmp_path: Path) -> Settings:
    policy = tmp_path / "policy.yaml"
    policy.write_text("promotion: {min_events: 100, min_ess: 10}\n")
    settings = get_settings(home=tmp_path / "home", salt="x", policy=policy, catalog=REPO / "config/offers.yaml")
    settings.ensure_home()
    store = open_store(settings)
    try:
        import_dsjson(store, personalizer_history(1000, START), PolicyFile().reward)
    finally:
        store.close()
    return settings


def test_evaluate_an_imported_history(tmp_path: Path) -> None:
    """A model crossing the history's own namespaces learned which action pays at each time of
    day: it beats uniform on the paired difference by every estimator; a policy file's learner
    is trained on the older 80% and every policy judged on the newest 20%."""
    settings = _imported(tmp_path)
    store = open_store(settings)
    policy = PolicyFile()
    crossed, _ = train_dsjson(["--cb_explore_adf", "--epsilon", "0.1", "--cb_type", "ips", "-q", "GO", "-q", "GA"],
                              dsjson_lines(store, policy.reward))
    crossed.save(tmp_path / "crossed.vw")
    since, until, as_of = START.timestamp(), (START + timedelta(days=1)).timestamp(), (START + timedelta(days=6))
    names = ["uniform", f"model:{tmp_path / 'crossed.vw'}", "fixed:news"]
    cfg = load_config(settings)
    try:
        whole = offline_evaluation(iter_joined(store.engine, since, until), cfg, [parse_spec(n) for n in names],
                                   since, until, as_of.timestamp())
        split = offline_evaluation(iter_joined(store.engine, since, until), cfg,
                                   [parse_spec(n) for n in ("uniform", f"policyfile:{settings.policy}")],
                                   since, until, as_of.timestamp())
    finally:
        store.close()
    check_shape(whole.as_json(), names, 900)  # 100 of the 1,000 were never shown (_skipLearn)
    for e, d in whole.differences()[names[1]].items():
        assert d.low > 0, (e, d)
    p = whole.as_json()["policies"]
    # one action of 4 pays at each time of day: uniform earns a quarter of the reward, the model nearly all
    assert p[names[1]]["snips"]["value"] > 2.5 * p["uniform"]["snips"]["value"] > 0
    assert (split.n, split.trained_on) == (180, 720) and "newest 180 decisions" in split.notes[0]
    check_shape(split.as_json(), ["uniform", f"policyfile:{settings.policy}"], 180)


# -- the command line ------------------------------------------------------------------------------

def test_a_malformed_since_is_one_line_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--home", str(tmp_path), "--since", "last tuesday", "champion"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("offer-bandit evaluate: error: argument --since: "
                                            "not an ISO 8601 time: 'last tuesday'")


def test_an_unknown_policy_lists_the_valid_forms(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--home", str(tmp_path), "champion", "greedy"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "offer-bandit evaluate: error: argument POLICY: unknown policy 'greedy'; valid forms: champion, "
        "registry:<version>, model:<path>, policyfile:<path>, no_offer, uniform, rules, fixed:<offer id>")


def test_policy_is_the_policy_file_option_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "--home", str(tmp_path), "--policy", "champion", "uniform"]) == 2
    assert "--policy names the policy file (YAML)" in capsys.readouterr().err


def _registered_champion(settings: Settings, tmp_path: Path, migrated_db: Path) -> str:
    import mlflow

    from bandit.decide.vw import VWModel
    from tracking.policy_model import log_policy_model
    from tracking.registry import Registry
    from tracking.runs import use_store

    settings.ensure_home()
    shutil.copy(migrated_db, settings.home / "mlflow.db")
    use_store(settings)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(
        "offer-bandit-test", artifact_location=(tmp_path / "mlartifacts").as_uri()))
    VWModel(PolicyFile().vw_args(), "x").save(tmp_path / "champion.vw")
    with mlflow.start_run():
        info = log_policy_model(tmp_path / "champion.vw", settings.catalog, settings.policy)
    reg = Registry(settings.tracking_uri)
    version = reg.register(info.model_uri)
    reg.promote(version)
    return version


def test_the_command_prints_writes_json_and_logs_an_mlflow_run(decider: Decider, store: DecisionStore,
                                                              settings: Settings,
                                                              tmp_path: Path, migrated_db: Path,
                                                              capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    fill(decider, 150)
    version = _registered_champion(settings, tmp_path, migrated_db)
    out = tmp_path / "eval.json"
    args = ["evaluate", "--home", str(settings.home), "--catalog", str(settings.catalog), "--policy",
            str(settings.policy), "--database-url",
            store.engine.url.render_as_string(hide_password=False), "--since", (NOW - timedelta(days=1)).isoformat(),
            "--until", (NOW + timedelta(days=1)).isoformat(), "--as-of", (NOW + timedelta(days=5)).isoformat()]
    assert main([*args, "champion", f"registry:{version}", "uniform", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    report = json.loads(out.read_text())
    check_shape(report, ["champion", f"registry:{version}", "uniform"], 135)
    same = report["differences"][f"registry:{version}"]["snips"]
    assert same == {"value": 0.0, "low": 0.0, "high": 0.0}  # the champion is that version
    assert "champion" in captured.out and "MLflow run" in captured.out
    assert "reading the log" in captured.err and "[######" in captured.err  # the progress bar, on stderr
    run_id = captured.out.split("MLflow run ")[1].split()[0]
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(run_id)
    assert run.data.metrics["champion.snips"] == pytest.approx(report["policies"]["champion"]["snips"]["value"])
    assert run.data.metrics["uniform-minus-champion.dr_low"] == pytest.approx(
        report["differences"]["uniform"]["dr"]["low"])
    assert f"registry_{version}.ess" in run.data.metrics  # ':' is no character of a metric name
    logged = json.loads(Path(client.download_artifacts(run_id, "evaluation.json", str(tmp_path))).read_text())
    assert logged == report

    assert main([*args, "--no-mlflow", "registry:99", "uniform"]) == 2
    assert "policy: registry:99: no version 99 of offer-policy in the registry" in capsys.readouterr().err


def test_policy_values_follow_the_log(tmp_path: Path) -> None:
    """Paired differences agree in sign with the values themselves (a sanity check on the
    report's bookkeeping: each difference is a - first, not first - a)."""
    from bandit.learn.evaluation import Comparison, PolicyEvaluation
    from bandit.learn.ope import Estimate

    def est(v: float) -> Estimate:
        return Estimate("snips", v, v - 0.1, v + 0.1, 0.05, 100, 100.0)

    ev = {n: PolicyEvaluation(n, {e: est(v) for e in ESTIMATES}, est(0.0), 0.5, 100.0)
          for n, v in (("a", 1.0), ("b", 2.0))}
    cmp = Comparison(100, ev, {("b", "a"): {e: est(1.0) for e in ESTIMATES}, ("a", "b"): {"snips": est(-1.0)}})
    r = OfflineEvaluation(cmp, "a", 0.0, 86400.0, 86400.0, "el", 3, 100, 0)
    assert list(r.differences()) == ["b"] and r.as_json()["differences"]["b"]["snips"]["value"] == 1.0
    assert np.isfinite(list(r.metrics().values())).all() and r.metrics()["b-minus-a.snips"] == 1.0


# -- feature importance (--importance) ---------------------------------------------------------------

def test_importance_leaves_each_namespace_out_of_the_policy_file(decider: Decider, store: DecisionStore,
                                                                 live: LiveConfig, settings: Settings) -> None:
    fill(decider, 200)
    names = ["uniform", f"policyfile:{settings.policy}"]
    result = offline_evaluation(iter_joined(store.engine, SINCE, UNTIL), live.current, [parse_spec(n) for n in names],
                                SINCE, UNTIL, AS_OF, importance=True)
    report = result.as_json()
    drops = report["importance"]["drop"]
    assert report["importance"]["policy"] == names[1]
    assert set(drops) == {"shared:context", "shared:emotion", "shared:user", "shared:history", "action:offer"}
    for ns, by in drops.items():
        assert set(by) == set(ESTIMATES) and all(by[e]["low"] <= by[e]["value"] <= by[e]["high"] for e in ESTIMATES)
    # without the offer's features every action looks alike: the learner can only spread its choices
    assert drops["action:offer"]["snips"]["value"] != 0
    assert "importance: policyfile:" in result.table() and report["suspicious_features"] == []
    with pytest.raises(InvalidRequest, match="importance: needs a policyfile"):
        offline_evaluation(iter_joined(store.engine), live.current, [parse_spec("uniform")], SINCE, UNTIL, AS_OF,
                           importance=True)


def test_features_that_look_like_ids_or_timestamps_are_warned_of() -> None:
    from bandit.learn.importance import suspicious_features
    from bandit.log.records import DecisionRecord

    def rec(i: int) -> DecisionRecord:
        shared = {"GUser": {"userId": f"u{i}", "tier": "gold" if i % 2 else "silver", "createdTime": 1.79e9 + i,
                            "visits": i % 7}, "sessionStart": 1_790_000_000_000 + i, "channel=chat": 1.0}
        return DecisionRecord(f"e{i}", 0.0, "online", "m", ["no_offer", "a"], [0.5, 0.5], 0, True,
                              customer_key="k", payload={"shared": shared, "actions": [{}, {}]})

    warnings = suspicious_features([rec(i) for i in range(100)])
    flagged = sorted(w.split(" looks like ")[0] for w in warnings)
    assert flagged == ["shared:GUser.createdTime", "shared:GUser.userId", "shared:sessionStart"], warnings
    assert any("shared:GUser.userId looks like an identifier (100 distinct values" in w for w in warnings)
