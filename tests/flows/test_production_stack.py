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


def test_a_late_run_and_a_stopped_flows_serve_reach_the_operators_webhook_from_the_prefect_server(
        tmp_path: Path, production_stack: Stack) -> None:
    """`flows serve` creates the automations (flows/automations.py); then it dies (SIGKILL, as
    a crash or an evicted pod): a run due now is marked Late by the server and the deployments
    go not ready, and the server itself posts both to the policy file's webhook. The stack's
    server runs its late-runs and foreman services on short timings (tests/stack.py)."""
    import signal
    import time

    from flows.automations import LATE, NOT_POLLING
    from receivers import webhook_receiver

    stack = production_stack
    with webhook_receiver() as hook:
        policy = tmp_path / "policy.yaml"
        policy.write_text(f"notifications: {{webhook_url: '{hook.url}'}}\n")
        env = {**os.environ, "PREFECT_API_URL": stack.prefect_api, "PREFECT_HOME": str(tmp_path / "prefect"),
               "OFFER_BANDIT_SALT": "x", "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
        never = "0 0 1 1 *"
        with open(tmp_path / "serve.log", "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bandit.cli", "flows", "serve", "--home", str(tmp_path / "home"),
                 "--catalog", str(REPO / "config/offers.yaml"), "--policy", str(policy), "--retrain-cron", never,
                 "--monitor-cron", never, "--tune-cron", never, "--purge-cron", never, "--working-well-cron", never],
                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        said = lambda: (tmp_path / "serve.log").read_text()[-3000:]  # noqa: E731
        try:
            deadline = time.time() + 120
            while "automations on the Prefect server" not in said():
                assert proc.poll() is None and time.time() < deadline, said()
                time.sleep(0.5)
            assert f"{LATE}, {NOT_POLLING}" in said()
            api = httpx.Client(base_url=stack.prefect_api, timeout=30)
            purge = api.get("/deployments/name/purge/offer-bandit").json()
            deadline = time.time() + 30
            while api.get(f"/deployments/{purge['id']}").json()["status"] != "READY":
                assert time.time() < deadline, "the served deployments never became ready"
                time.sleep(0.5)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        run = api.post(f"/deployments/{purge['id']}/create_flow_run", json={}).json()  # due now, nobody to run it
        deadline = time.time() + 90
        texts: list[str] = []
        while time.time() < deadline:
            texts = [b["text"] for b in hook.bodies]
            if any("is late" in t for t in texts) and any("is not ready" in t for t in texts):
                break
            time.sleep(0.5)
    assert any(f"flow run {run['name']} is late" in t for t in texts), texts
    assert any("deployment" in t and "is not ready" in t for t in texts), texts
