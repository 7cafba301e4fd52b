"""`offer-bandit flows serve`: the three flows as scheduled Prefect deployments, served for real."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bandit.domain.errors import OfferBanditError
from bandit.config.settings import get_settings
from conftest import REPO


def test_deployments_carry_their_schedules_and_a_bad_one_names_the_setting(tmp_path: Path) -> None:
    from flows.deployments import deployments

    s = get_settings(home=tmp_path, monitor_cron="*/5 * * * *", schedule_timezone="Europe/Madrid")
    deps = {d.flow_name: d for d in deployments(s)}
    assert sorted(deps) == ["monitor", "purge", "retrain", "tune", "working-well"]
    crons = {name: (d.schedules[0].schedule.cron, d.schedules[0].schedule.timezone) for name, d in deps.items()}
    assert crons == {"retrain": ("0 2 * * *", "Europe/Madrid"), "monitor": ("*/5 * * * *", "Europe/Madrid"),
                     "tune": ("0 3 * * 0", "Europe/Madrid"), "purge": ("30 4 * * *", "Europe/Madrid"),
                     "working-well": ("0 8 * * 1", "Europe/Madrid")}
    assert deps["monitor"].entrypoint == "flows.monitor_flow.monitor_flow"  # importable from anywhere

    with pytest.raises(OfferBanditError, match="OFFER_BANDIT_RETRAIN_CRON='every night'"):
        deployments(get_settings(home=tmp_path, retrain_cron="every night"))
    with pytest.raises(OfferBanditError, match="OFFER_BANDIT_SCHEDULE_TIMEZONE='Mars/Olympus'.*Invalid timezone"):
        deployments(get_settings(home=tmp_path, schedule_timezone="Mars/Olympus"))


@pytest.mark.slow
def test_flows_serve_registers_the_deployments_and_runs_one(tmp_path: Path, migrated_db: Path,
                                                            prefect_server: None) -> None:
    """The real command, against the session's Prefect server: the deployments appear with
    their schedules, and a run of the monitor deployment is picked up and completes."""
    import shutil

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(migrated_db, home / "mlflow.db")
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "OFFER_BANDIT_SALT": "x",
           "MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}  # pick the run up at once, not within 10 s
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "bandit.cli", "flows", "serve", "--home", str(home),
                             "--catalog", str(REPO / "config/offers.yaml"), "--policy", str(REPO / "config/policy.yaml"),
                             "--monitor-cron", "0 0 1 1 *"], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 90
        ours: list = []
        with get_client(sync_client=True) as client:
            while time.time() < deadline and len(ours) < 5:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                ours = [d for d in client.read_deployments() if "offer-bandit" in (d.tags or [])]
                time.sleep(0.5)
            assert {d.name for d in ours} == {"offer-bandit"} and len(ours) == 5, (tmp_path / "serve.log").read_text()[-3000:]
            monitor = client.read_deployment_by_name("monitor/offer-bandit")
            assert monitor.schedules[0].schedule.cron == "0 0 1 1 *"
        run = run_deployment("monitor/offer-bandit", timeout=180, poll_interval=1)
        assert run.state is not None and run.state.is_completed(), (tmp_path / "serve.log").read_text()[-3000:]
        assert run.parameters == {} and (home / "mlartifacts" / "offer-bandit-monitor").is_dir()  # ran in <home>
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_the_command_line_runs_a_flow_under_prefect_on_a_fresh_home(tmp_path: Path, prefect_server: None) -> None:
    """`offer-bandit monitor` (no --no-prefect) as an operator runs it: a home that does not
    exist yet, the flow run on the Prefect server, Prefect's state under the home."""
    from prefect.settings import PREFECT_API_URL

    home = tmp_path / "new" / "home"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "OFFER_BANDIT_SALT": "x"}
    env.pop("PREFECT_HOME", None)
    env.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", None)  # the suite's (conftest); a user's command echoes
    p = subprocess.run([sys.executable, "-m", "bandit.cli", "monitor", "--home", str(home)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "no offer over its complaint limit" in p.stdout and "Flow run" in p.stderr
    assert "Failed to create the Prefect home" not in p.stderr and (home / "prefect").is_dir()
