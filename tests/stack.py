"""The production stack's servers for tests: an MLflow tracking server and a Prefect
server, each on its own fresh PostgreSQL database, started as README "Running in
production" starts them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import make_url

from conftest import free_port, pg_database, stop_service

BIN = Path(sys.executable).parent
QUIET = {"DO_NOT_TRACK": "1", "MLFLOW_ENABLE_TELEMETRY": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
         "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


@dataclass
class Stack:
    mlflow_uri: str  # OFFER_BANDIT_MLFLOW_TRACKING_URI
    prefect_api: str  # PREFECT_API_URL
    artifacts: Path  # the tracking server's --artifacts-destination


def _spawn(argv: list[str], log: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(argv, cwd=cwd, env={**os.environ, **QUIET, **env}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait_healthy(servers: dict[str, tuple[subprocess.Popen, str, Path]], timeout: float) -> None:
    """Until every server answers 200 on its health URL (each migrates its fresh database
    first); a server that exits or is late fails with its log's tail."""
    waiting = dict(servers)
    deadline = time.time() + timeout
    while waiting:
        for name, (proc, url, log) in list(waiting.items()):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} server exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    del waiting[name]
            except httpx.HTTPError:
                pass
        if waiting and time.time() > deadline:
            name, (_, _, log) = next(iter(waiting.items()))
            raise RuntimeError(f"{name} server not healthy in {timeout:.0f} s: {log.read_text()[-3000:]}")
        time.sleep(0.5)


@contextmanager
def production_stack(tmp: Path) -> Iterator[Stack]:
    """Both servers, started together (Prefect's takes about 20 s, MLflow's about 10 s with
    one worker), each on a database created for it and dropped afterwards."""
    with ExitStack() as stack:
        mlflow_db = stack.enter_context(pg_database("ob_mlflow"))
        prefect_db = stack.enter_context(pg_database("ob_prefect"))
        ml_port, pf_port = free_port(), free_port()
        artifacts = tmp / "mlflow-artifacts"
        procs: list[subprocess.Popen] = []
        stack.callback(lambda: stop_service(*procs))  # both at once: each takes seconds to stop
        ml = _spawn([str(BIN / "mlflow"), "server", "--backend-store-uri", mlflow_db,
                     "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(ml_port),
                     "--workers", "1"], tmp / "mlflow.log", tmp, {})
        procs.append(ml)
        pf = _spawn([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(pf_port)],
                    tmp / "prefect.log", tmp,
                    {"PREFECT_HOME": str(tmp / "prefect-server"), "PREFECT_UI_ENABLED": "false",
                     # late runs and a stopped runner noticed in seconds, not 15 s and 60 s
                     # (tests/flows/test_production_stack.py, the automations' test)
                     "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": "2",
                     "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "1",
                     "PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS": "1",
                     "PREFECT_SERVER_SERVICES_FOREMAN_DEPLOYMENT_LAST_POLLED_TIMEOUT_SECONDS": "4",
                     "PREFECT_API_DATABASE_CONNECTION_URL":
                         make_url(prefect_db).set(drivername="postgresql+asyncpg").render_as_string(False)})
        procs.append(pf)
        ml_url, pf_url = f"http://127.0.0.1:{ml_port}", f"http://127.0.0.1:{pf_port}/api"
        _wait_healthy({"MLflow": (ml, ml_url + "/health", tmp / "mlflow.log"),
                       "Prefect": (pf, pf_url + "/health", tmp / "prefect.log")}, timeout=180)
        yield Stack(ml_url, pf_url, artifacts)
