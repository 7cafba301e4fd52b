"""The flows against the production stack: the decision log on PostgreSQL, an MLflow
tracking server on PostgreSQL (artifacts proxied to its artifact store) and a Prefect
server on PostgreSQL, as README "Running in production" starts them. `offer-bandit
retrain` and `monitor` run as an operator runs them; the flow runs are checked in the
Prefect server's API, the champion in the MLflow server's registry, and the service's
model source fetches and loads it from there."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from conftest import REPO
from simlog import simulated_log
from stack import Stack

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_retrain_and_monitor_run_on_the_prefect_and_mlflow_servers(
        tmp_path: Path, pg_url: str, production_stack: Stack) -> None:
    from bandit.config.policyfile import Exploration
    from bandit.decide.decider import ModelSlot
    from bandit.deploy.models import ModelManager
    from bandit.decide.vw import ColdStart
    from tracking.registry import Registry, RegistryModelSource

    stack = production_stack
    # the log's test data written without waiting for each commit's WAL flush (17 s -> 3 s
    # here); the flows then read it through the plain URL
    fast = make_url(pg_url)
    fast = fast.update_query_dict({"options": fast.query["options"] + " -csynchronous_commit=off"})
    policy, as_of = simulated_log(tmp_path, None, database_url=fast.render_as_string(hide_password=False))
    home = tmp_path / "home"
    env = {**os.environ, "OFFER_BANDIT_HOME": str(home), "OFFER_BANDIT_POLICY": str(policy),
           "OFFER_BANDIT_CATALOG": str(REPO / "config/offers.yaml"), "OFFER_BANDIT_SALT": "x",
           "OFFER_BANDIT_DATABASE_URL": pg_url, "OFFER_BANDIT_MLFLOW_TRACKING_URI": stack.mlflow_uri,
           "PREFECT_API_URL": stack.prefect_api, "PREFECT_HOME": str(tmp_path / "prefect-client")}
    when = datetime.fromtimestamp(as_of, UTC).isoformat()

    def cli(*args: str) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "bandit.cli", *args, "--as-of", when], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"running the flow under {stack.prefect_api}" in p.stderr
        return p

    assert "offer-policy version 1: promoted to champion" in cli("retrain", "--window-days", "7").stdout
    cli("monitor", "--window-hours", str(24 * 8))

    # the Prefect server holds both flow runs, completed, with the steps as task runs
    api = httpx.Client(base_url=stack.prefect_api, timeout=30)
    flows = {f["id"]: f["name"] for f in api.post("/flows/filter", json={}).json()}
    runs = api.post("/flow_runs/filter", json={}).json()
    states = {flows[r["flow_id"]]: r["state"]["type"] for r in runs}
    assert states == {"retrain": "COMPLETED", "monitor": "COMPLETED"}, states
    retrain_run = next(r["id"] for r in runs if flows[r["flow_id"]] == "retrain")
    tasks = api.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [retrain_run]}}}).json()
    steps = {t["name"].rsplit("-", 1)[0]: t["state"]["type"] for t in tasks}
    assert steps == dict.fromkeys(["find-earlier-run", "count-window", "fetch-champion", "train", "evaluate", "record"],
                                  "COMPLETED"), steps

    # the champion is in the tracking server's registry (not in a local store), its files in
    # the server's artifact store, and the service's model source fetches and loads it
    assert Registry(stack.mlflow_uri).version_of("champion") == "1"
    assert not (home / "mlflow.db").exists()
    assert any(stack.artifacts.rglob("MLmodel"))
    stored = sum(f.stat().st_size for f in stack.artifacts.rglob("*") if f.is_file())
    print(f"\nartifact store after one retrain and one monitor run: {stored / 1e6:.1f} MB")
    manager = ModelManager(ModelSlot(ColdStart(0.1)),
                           RegistryModelSource(stack.mlflow_uri, "offer-policy", tmp_path / "cache"),
                           tmp_path / "models", Exploration)
    status = manager.start()
    assert (status.source, status.version) == ("registry", "offer-policy/1"), status
