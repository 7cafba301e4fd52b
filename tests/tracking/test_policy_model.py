"""The policy as an MLflow pyfunc model, registered and loaded back by alias."""

import shutil
from pathlib import Path

import pytest
from typing import Any

mlflow = pytest.importorskip("mlflow")

from bandit.config.settings import get_settings  # noqa: E402
from bandit.decide.decider import Decider  # noqa: E402
from bandit.config.policyfile import Exploration, PolicyFile  # noqa: E402
from bandit.learn.training import train_from_log  # noqa: E402
from simlog import simulated_log  # noqa: E402
from conftest import fill, use_test_experiment  # noqa: E402

REPO = Path(__file__).resolve().parents[2]




@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_db: Path) -> str:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_pyfunc_model_scores_contexts_with_the_guardrails_and_loads_by_alias(
        decider: Decider, tracking: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from tracking.policy_model import INPUT_EXAMPLE, log_policy_model

    fill(decider, 40)
    model, _ = train_from_log(decider.store, PolicyFile())
    model.save(tmp_path / "model.vw")
    use_test_experiment(tmp_path)
    with mlflow.start_run():
        info = log_policy_model(tmp_path / "model.vw", REPO / "config/offers.yaml", REPO / "config/policy.yaml")
    version = mlflow.register_model(info.model_uri, "offer-policy").version
    MlflowClient().set_registered_model_alias("offer-policy", "champion", version)

    loaded = mlflow.pyfunc.load_model("models:/offer-policy@champion")
    out = loaded.predict(INPUT_EXAMPLE)
    # loading by the settings finds the store whatever MLflow's process-wide default says
    from tracking.policy_model import load_policy_model

    mlflow.set_tracking_uri((tmp_path / "elsewhere").as_uri())
    by_settings = load_policy_model(get_settings(home=tmp_path / "h", mlflow_tracking_uri=tracking))
    assert by_settings.predict(INPUT_EXAMPLE).equals(out)
    assert list(out.columns) == ["greedy", "offers", "probabilities"]
    happy, distressed = out.iloc[0], out.iloc[1]
    assert len(happy["offers"]) > 1 and happy["greedy"] in happy["offers"]
    assert sum(happy["probabilities"]) == pytest.approx(1.0)
    assert list(distressed["offers"]) == ["no_offer"] and distressed["greedy"] == "no_offer"
    assert loaded.metadata.signature is not None
    # its environment is the lock's, named rather than inferred
    from importlib.metadata import version

    reqs = Path(mlflow.pyfunc.get_model_dependencies("models:/offer-policy@champion"))
    assert f"vowpalwabbit=={version('vowpalwabbit')}" in reqs.read_text().split()


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_pyfunc_ranks_every_context_as_the_service_does_opted_out_and_suspended_included(
        decider: Decider, tmp_path: Path) -> None:
    """The MLflow model is not a second decision path: for 300 random contexts (opted-out,
    distressed and suspended-offer cases among them) its offers and probabilities are the
    decision's ranking (the model's view for a control-group decision) under the same model."""
    import random

    import pandas as pd

    from bandit.config.catalog import NO_OFFER
    from bandit.domain.context import CONTEXT_COLUMNS, request_from_row
    from bandit.decide.vw import VWModel
    from conftest import NOW
    from tracking.policy_model import save_policy_model

    fill(decider, 60)
    model, _ = train_from_log(decider.store, PolicyFile())
    model.save(tmp_path / "model.vw")
    save_policy_model(tmp_path / "pyfunc", tmp_path / "model.vw", REPO / "config/offers.yaml",
                      REPO / "config/policy.yaml")
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    assert {c.name for c in loaded.metadata.signature.inputs.inputs} == {name for name, _, _ in CONTEXT_COLUMNS}
    decider.models.swap(VWModel.load(tmp_path / "model.vw", "v1"))
    suspended = "premium_bundle"
    decider.store.set_suspended(suspended, True, "test")

    rng = random.Random(5)
    catalog = decider.config.current.catalog
    rows = []
    for i in range(300):
        row: dict = {"channel": rng.choice(["phone", "chat", "email", "sms", "web"]),
                     "request_type": rng.choice(["informational", "diagnostic", "transactional", "advisory",
                                                 "feedback"]),
                     "customer_id": f"pyf-{i}", "resolved": rng.choice(["true", "true", "false", "unknown"]),
                     "sentiment": round(rng.uniform(-0.3, 1.0), 2), "distress": rng.random() < 0.15,
                     "opted_out": rng.random() < 0.15, "authenticated": rng.random() < 0.7,
                     "tier": rng.choice(["standard", "gold", "platinum"]), "tenure_months": float(rng.randint(0, 90)),
                     "products": ",".join(rng.sample(["mobile", "broadband", "card", "tv", "insurance"],
                                                     rng.randint(0, 3))),
                     "region": rng.choice(["north", "south", "east"])}
        if rng.random() < 0.2:
            row["candidates"] = ",".join(rng.sample(sorted(catalog.offers), 3))
        rows.append(row)
    frame = pd.DataFrame(rows)
    out = loaded.predict(frame, params={"suspended": [suspended], "as_of": NOW.isoformat()})

    seen = {"opted_out": 0, "distress": 0, "offers": 0}
    for row, (_, got) in zip(rows, out.iterrows(), strict=True):
        d = decider.decide(request_from_row(row))
        if d.mode == "control":
            view = decider.store.get_decision(d.event_id)
            expected = dict(zip(view.action_ids, view.payload["shadow"]["pmf"], strict=True))
        else:
            expected = {r.id: r.probability for r in d.ranking}
        actual = dict(zip(got["offers"], got["probabilities"], strict=True))
        assert actual.keys() == expected.keys(), row
        assert all(actual[k] == pytest.approx(expected[k], abs=1e-6) for k in actual), row
        assert suspended not in actual
        if row["opted_out"] or row["distress"]:
            assert list(actual) == [NO_OFFER], row
            seen["opted_out" if row["opted_out"] else "distress"] += 1
        seen["offers"] += len(actual) > 1
    assert seen["opted_out"] > 20 and seen["distress"] > 20 and seen["offers"] > 30, seen


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_promotion_rollback_and_the_service_model_source(decider: Decider, tracking: str, tmp_path: Path) -> None:
    from bandit.deploy.models import load_checked
    from tracking.policy_model import log_policy_model
    from tracking.registry import Registry, RegistryError, RegistryModelSource

    fill(decider, 40)
    model, _ = train_from_log(decider.store, PolicyFile())
    model.save(tmp_path / "model.vw")
    reg = Registry(tracking, "offer-policy")
    assert reg.version_of("champion") is None
    with pytest.raises(RegistryError, match="no 'previous' version"):
        reg.rollback()
    use_test_experiment(tmp_path)
    versions = []
    for _ in range(2):
        with mlflow.start_run():
            info = log_policy_model(tmp_path / "model.vw", REPO / "config/offers.yaml", REPO / "config/policy.yaml")
        versions.append(reg.register(info.model_uri, {"gate": "test"}))
    assert reg.promote(versions[0]) is None and reg.version_of("champion") == versions[0]
    assert reg.promote(versions[1]) == versions[0]
    assert (reg.version_of("champion"), reg.version_of("previous")) == (versions[1], versions[0])
    assert reg.rollback() == (versions[1], versions[0])
    assert (reg.version_of("champion"), reg.version_of("previous")) == (versions[0], versions[1])

    assert RegistryModelSource(f"sqlite:///{tmp_path}/none.db", "offer-policy", tmp_path).current_version() is None
    source = RegistryModelSource(tracking, "offer-policy", tmp_path / "cache")
    current = source.current_version()
    assert current == f"offer-policy/{versions[0]}"
    path = source.fetch(current)
    assert path.read_bytes() == (tmp_path / "model.vw").read_bytes()
    assert source.fetch(current) == path  # cached
    from bandit.decide.vw import checksum_file
    assert checksum_file(path).read_text() == checksum_file(tmp_path / "model.vw").read_text()  # checked at load
    assert load_checked(path, current).version == current

    # registering a retrain's window is idempotent: a retried step finds the version it made
    once = reg.register_once(info.model_uri, "window", "2026-11-01..2026-11-08")
    assert reg.register_once(info.model_uri, "window", "2026-11-01..2026-11-08") == once
    assert once not in versions and len({*versions, once}) == 3
    # a registry that does not answer fails the step instead of registering again
    down = Registry("http://127.0.0.1:1", "offer-policy")
    with pytest.raises(Exception) as err:
        down.register_once(info.model_uri, "window", "2026-11-01..2026-11-08")
    assert "127.0.0.1:1" in str(err.value)


def test_the_service_serves_the_registry_champion_once_there_is_one(tmp_path: Path, migrated_db: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a model file the service's source is the registry; before any tracking store
    exists it runs cold start, and a later promotion is picked up by the next refresh."""
    from bandit.deploy.models import ModelManager
    from bandit.decide.decider import ModelSlot
    from bandit.config.settings import get_settings
    from bandit.decide.vw import ColdStart, VWModel
    from tracking.policy_model import log_policy_model
    from tracking.registry import Registry
    from service.service import _model_source

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    settings = get_settings(home=tmp_path / "home", salt="x")
    source = _model_source(settings)
    manager = ModelManager(ModelSlot(ColdStart(0.1)), source, tmp_path / "models", Exploration)
    assert manager.start().source == "cold_start"
    assert not (tmp_path / "home" / "mlflow.db").exists()  # nothing created, MLflow not needed yet

    (tmp_path / "home").mkdir()
    shutil.copy(migrated_db, tmp_path / "home" / "mlflow.db")
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    model = VWModel(PolicyFile().vw_args(), "v")
    model.save(tmp_path / "model.vw")
    use_test_experiment(tmp_path)
    with mlflow.start_run():
        info = log_policy_model(tmp_path / "model.vw", REPO / "config/offers.yaml", REPO / "config/policy.yaml")
    reg = Registry(settings.tracking_uri)
    reg.promote(reg.register(info.model_uri))
    assert manager.refresh() and manager.status.source == "registry"
    assert manager.status.version == "offer-policy/1" and manager.slot.current.version == "offer-policy/1"


def test_retrain_logs_registers_gates_and_is_safe_to_rerun(tmp_path: Path, migrated_db: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    from datetime import UTC, datetime

    from bandit.config.settings import get_settings
    from tracking.registry import Registry
    from flows.retrain import retrain

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    policy, as_of = simulated_log(tmp_path, migrated_db)
    settings = get_settings(home=tmp_path / "home", salt="x", policy=policy, catalog=REPO / "config/offers.yaml")

    first = retrain(settings, as_of=as_of)
    # a first model: trained on the whole window and judged over it by progressive validation
    assert first.version == "1" and first.trained_on == first.evaluated_on == 4000 and not first.reused
    assert mlflow.get_run(first.run_id).data.params["evaluation"] == "progressive"
    run = mlflow.get_run(first.run_id)
    assert "candidate.snips" in run.data.metrics and "no_offer.snips" in run.data.metrics
    assert run.data.tags["promoted"] == str(first.promoted).lower() and first.reasons
    assert "| candidate |" in mlflow.artifacts.load_text(f"runs:/{first.run_id}/evaluation.md")
    plots = {a.path for a in mlflow.MlflowClient().list_artifacts(first.run_id, "plots")}
    assert plots == {"plots/offer_mix_by_request_type.png", "plots/reward_over_time.png", "plots/segment_lift.png"}
    for mix in ("candidate", "logged"):  # each policy's shares of all held-out decisions
        assert sum(v for k, v in run.data.metrics.items() if k.startswith(f"{mix}.mix.")) == pytest.approx(1.0)
    inputs = {d.dataset.name: ({t.key: t.value for t in d.tags}["mlflow.data.context"],
                               json.loads(d.dataset.profile)["num_rows"]) for d in run.inputs.dataset_inputs}
    assert sorted(inputs.values()) == [("evaluation", first.evaluated_on), ("training", first.trained_on)]
    assert all(run.data.tags["window"] in name for name in inputs)
    reg = Registry(settings.tracking_uri)
    assert reg.version_of("champion") == ("1" if first.promoted else None)
    # the run reads back as an offline evaluation (Personalizer's evaluations operations)
    from tracking.evaluations import evaluation, evaluations

    assert [e.id for e in evaluations(settings.tracking_uri, "snips")] == [first.run_id]
    ev = evaluation(settings.tracking_uri, first.run_id, "snips")
    assert ev is not None and ev.status == "FINISHED" and ev.promoted == first.promoted and ev.reasons == first.reasons
    assert ev.estimates["candidate"].value == run.data.metrics["candidate.snips"]
    assert ev.estimates["no_offer"].high == run.data.metrics["no_offer.snips_high"]
    assert ev.window == tuple(float(t) for t in run.data.tags["window"].split("-"))
    assert evaluation(settings.tracking_uri, "0" * 32, "snips") is None
    assert evaluations(f"sqlite:///{tmp_path / 'none.db'}", "snips") == [] and not (tmp_path / "none.db").exists()

    again = retrain(settings, as_of=as_of)
    assert again.reused and (again.run_id, again.version, again.promoted) == (first.run_id, "1", first.promoted)
    assert len(reg.client.search_model_versions("name='offer-policy'")) == 1

    from bandit.cli import main

    common = ["--home", str(tmp_path / "home"), "--policy", str(policy), "--catalog", str(REPO / "config/offers.yaml")]
    iso = datetime.fromtimestamp(as_of, UTC).isoformat()
    assert main(["retrain", *common, "--as-of", iso, "--no-prefect"]) == 0  # the same window: reused, nothing new
    assert len(reg.client.search_model_versions("name='offer-policy'")) == 1
    assert main(["rollback", *common]) == 2  # one version only: nothing to roll back to


def test_the_retrain_flow_runs_under_prefect(tmp_path: Path, migrated_db: Path, monkeypatch: pytest.MonkeyPatch,
                                             prefect_server: None) -> None:
    from tracking.registry import Registry
    from flows.retrain_flow import retrain_flow

    policy, as_of = simulated_log(tmp_path, migrated_db)
    for name, value in {"OFFER_BANDIT_HOME": tmp_path / "home", "OFFER_BANDIT_POLICY": policy,
                        "OFFER_BANDIT_CATALOG": REPO / "config/offers.yaml", "OFFER_BANDIT_SALT": "x",
                        "MLFLOW_DISABLE_TELEMETRY": "true"}.items():
        monkeypatch.setenv(name, str(value))
    state = retrain_flow(as_of=as_of, return_state=True)
    assert state.is_completed(), state
    result = state.result()
    assert result["version"] == "1" and result["promoted"]
    assert Registry(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}").version_of("champion") == "1"
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:  # each step ran as its own task, and completed
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    done = {r.name.rsplit("-", 1)[0] for r in runs if r.state is not None and r.state.is_completed()}
    assert {"find-earlier-run", "count-window", "fetch-champion", "train", "evaluate", "record"} <= done, done


def test_one_retrain_run_reads_its_configuration_once(tmp_path: Path, migrated_db: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy file edited while a run is under way (here: a gate no candidate can pass,
    written right after the window is read) changes the next run, not this one: a run
    has one configuration, loaded at its start and passed to every step."""
    from bandit.config.settings import get_settings
    from flows.retrain import retrain
    from flows.steps import run_directly

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    policy, as_of = simulated_log(tmp_path, migrated_db, day=1)
    settings = get_settings(home=tmp_path / "home", salt="x", policy=policy, catalog=REPO / "config/offers.yaml")
    original = policy.read_text()

    def editing_mid_run(name: str, fn: Any, *args: Any) -> Any:
        out = run_directly(name, fn, *args)
        if name == "count-window":
            policy.write_text("promotion: {min_events: 1000000, min_ess: 10}\n")
        return out

    result = retrain(settings, as_of=as_of, step=editing_mid_run)
    assert result.promoted and not any("1000000" in r for r in result.reasons), result.reasons
    assert policy.read_text() != original  # the edit happened, and the next run sees it:
    later = retrain(settings, as_of=as_of + 3600)
    assert not later.promoted and any("1000000" in r for r in later.reasons), later.reasons


def test_a_candidate_trained_on_shuffled_rewards_is_refused_and_mlflow_says_why(
        tmp_path: Path, migrated_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    from sqlalchemy import text

    from bandit.deploy.runtime import open_store
    from bandit.config.settings import get_settings
    from tracking.registry import Registry
    from flows.retrain import retrain

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    policy, as_of = simulated_log(tmp_path, migrated_db, day=1)
    settings = get_settings(home=tmp_path / "home", salt="x", policy=policy, catalog=REPO / "config/offers.yaml")
    assert retrain(settings, as_of=as_of).promoted  # the champion: trained on the real rewards

    _, as_of2 = simulated_log(tmp_path, migrated_db, day=8)
    store = open_store(settings)
    with store.engine.begin() as c:  # shuffle which decision each outcome belongs to, in the training part
        ids = [r[0] for r in c.execute(text("select event_id from decisions where ts >= :t order by ts"),
                                       {"t": as_of}).all()]
        train_ids = ids[: int(len(ids) * 0.8)]
        expanding = __import__("sqlalchemy").bindparam("ids", expanding=True)
        cols = "event_id, type, value, score, ts, dedupe"
        rows = [dict(r._mapping) for r in c.execute(
            text(f"select {cols} from outcomes where event_id in :ids").bindparams(expanding), {"ids": train_ids})]
        c.execute(text("delete from outcomes where event_id in :ids").bindparams(expanding), {"ids": train_ids})
        # a permutation of the decisions that have outcomes: each one's outcomes move together
        # to another, so no decision gets two outcomes of one kind
        having = sorted({r["event_id"] for r in rows})
        owners = list(having)
        random.Random(5).shuffle(owners)
        owner_of = dict(zip(having, owners, strict=True))
        for r in rows:
            c.execute(text(f"insert into outcomes ({cols}) values (:event_id, :type, :value, :score, :ts, :dedupe)"),
                      {**r, "event_id": owner_of[r["event_id"]]})
    store.close()

    worse = retrain(settings, as_of=as_of2)
    assert not worse.promoted and worse.version == "2"
    assert Registry(settings.tracking_uri).version_of("champion") == "1"
    tags = mlflow.get_run(worse.run_id).data.tags
    assert tags["promoted"] == "false" and "candidate minus champion" in tags["reasons"]
    assert "Not promoted" in mlflow.artifacts.load_text(f"runs:/{worse.run_id}/evaluation.md")
