"""Shared fixtures: every test gets its own home, log and salt; PostgreSQL when reachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text

from bandit.config.catalog import NO_OFFER
from bandit.config.loader import LiveConfig
from bandit.domain.context import DecisionRequest
from bandit.decide.decider import Decider, ModelSlot
from bandit.config.settings import Settings, get_settings
from bandit.log.store import DecisionStore
from bandit.decide.vw import ColdStart

REPO = Path(__file__).resolve().parent.parent
# Prefect's console handler keeps the stream it was set up with: a stream pytest captured for
# an earlier test and has since closed, so a later flow run's log line raised "I/O operation
# on closed file" (running the tune-flow test, then a retrain-flow test). The flows' logs
# still reach Prefect's API; the suite has no use for their echo.
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
PG_URL = os.environ.get("OFFER_BANDIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def pg_available() -> str | None:
    """None if PostgreSQL answers, else why not."""
    try:
        eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__}); set OFFER_BANDIT_TEST_PG_URL"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return get_settings(home=tmp_path / "home", catalog=REPO / "config/offers.yaml",
                        policy=REPO / "config/policy.yaml", salt="test-salt")


@contextmanager
def pg_schema() -> Iterator[str]:
    """The URL of a fresh schema on the real PostgreSQL server (skips if unreachable),
    dropped afterwards: other engineers' tests share the server."""
    why = pg_available()
    if why:
        pytest.skip(why)
    schema = "t_" + uuid.uuid4().hex[:12]
    eng = create_engine(PG_URL)
    with eng.begin() as c:
        c.execute(text(f"create schema {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with eng.begin() as c:
            c.execute(text(f"drop schema {schema} cascade"))
        eng.dispose()


@contextmanager
def pg_database(prefix: str) -> Iterator[str]:
    """A fresh database on the real PostgreSQL server (``postgresql+psycopg://`` URL), for
    servers that want a database of their own (MLflow's, Prefect's); dropped afterwards."""
    why = pg_available()
    if why:
        pytest.skip(why)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    eng = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f"create database {name}"))
    try:
        yield str(make_url(PG_URL).set(database=name, query={}))
    finally:
        with eng.connect() as c:
            c.execute(text(f"drop database if exists {name} with (force)"))
        eng.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema on the real PostgreSQL server, dropped afterwards."""
    with pg_schema() as url:
        yield url


@pytest.fixture(scope="module")
def module_pg_url() -> Iterator[str]:
    """``pg_url`` for a module's shared served instance."""
    with pg_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, settings: Settings) -> Iterator[DecisionStore]:
    if request.param == "sqlite":
        settings.ensure_home()
        s = DecisionStore(settings.db_url)
    else:
        s = DecisionStore(request.getfixturevalue("pg_url"))
    yield s
    s.close()


@pytest.fixture
def live(settings: Settings) -> LiveConfig:
    return LiveConfig(settings)


@pytest.fixture
def decider(live: LiveConfig, store: DecisionStore) -> Decider:
    eps = live.current.policy.exploration.cold_start_epsilon
    return Decider(live, store, ModelSlot(ColdStart(eps)), "test-salt", clock=lambda: NOW)


def fill(decider: Decider, n: int = 120) -> None:
    """``n`` decisions for distinct customers (every tenth deferred), with acceptances,
    declines and complaints (the DSJSON and policy-model tests' log)."""
    for i in range(n):
        d = decider.decide(request(event_id=f"e{i}", customer__id=f"c{i}",
                                   defer_activation=(i % 10 == 0)))
        if d.offer_id != NO_OFFER:
            decider.record_outcome(d.event_id, "accepted" if i % 3 else "declined")
        if i % 7 == 0:
            decider.record_outcome(d.event_id, "complaint")


def use_test_experiment(tmp_path: Path) -> None:
    """An experiment with its artifacts under the test's directory (MLflow's default is
    ./mlruns in the working directory: the repository)."""
    import mlflow

    mlflow.set_experiment(experiment_id=mlflow.create_experiment(
        "offer-bandit-test", artifact_location=(tmp_path / "mlartifacts").as_uri()))


def request(**over: object) -> DecisionRequest:
    """A happy, resolved, advisory phone interaction, with overrides by dotted key."""
    body: dict = {
        "channel": "phone",
        "customer": {"id": "cust-1", "authenticated": True, "tier": "gold", "tenure_months": 30,
                     "products": ["mobile"], "region": "north"},
        "interaction": {"request_type": "advisory", "resolved": "true", "sentiment": 0.6},
    }
    for key, value in over.items():
        *path, last = key.split("__")
        node = body
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return DecisionRequest.model_validate(body)


# -- a real served instance, started once per test session -------------------------

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import httpx  # noqa: E402

from experiments.served import alive, free_port, kill_tree, worker_pids  # noqa: E402

CHANNEL_KEY, ADMIN_KEY = "test-channel-key", "test-admin-key"
FIGURES_FILE = "OFFER_BANDIT_TEST_FIGURES"  # where the run's workers write their figures


def pytest_configure(config: pytest.Config) -> None:
    """The controlling process (or the only one) names a file for the figures; pytest-xdist's
    workers inherit it, so every worker's figures reach the summary."""
    if not hasattr(config, "workerinput"):
        import tempfile

        fd, path = tempfile.mkstemp(prefix="offer-bandit-figures-", suffix=".txt")
        os.close(fd)
        os.environ[FIGURES_FILE] = path


def record_figure(text: str) -> None:
    """A figure the reliability suite measured (cases fuzzed, decisions checked after a
    kill, soak latency and memory): printed at the end of the run, so that what the README
    quotes can be read off ``make test``. Appended as one line (a short write to a file
    opened for appending is not interleaved with another worker's)."""
    with open(os.environ[FIGURES_FILE], "a") as f:
        f.write(text.replace("\n", " ") + "\n")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    path = os.environ.get(FIGURES_FILE)
    if hasattr(config, "workerinput") or not path or not os.path.exists(path):
        return
    lines = Path(path).read_text().splitlines()
    os.unlink(path)
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


@dataclass
class Served:
    url: str
    home: Path
    catalog: Path
    model_path: Path
    proc: subprocess.Popen
    db_url: str = ""

    def client(self, key: str | None = CHANNEL_KEY) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": key} if key else {}, timeout=30)

    def count_decisions(self) -> int:
        return self.count_rows("decisions")

    def count_rows(self, table: str) -> int:
        """Rows of a log table, on whichever database the service logs to."""
        if self.db_url.startswith("sqlite"):
            import sqlite3
            with sqlite3.connect(self.home / "decisions.db") as c:
                return c.execute(f"select count(*) from {table}").fetchone()[0]
        eng = create_engine(self.db_url)
        try:
            with eng.connect() as c:
                return c.execute(text(f"select count(*) from {table}")).scalar_one()
        finally:
            eng.dispose()

    def store(self) -> DecisionStore:
        """The service's own log (SQLite or PostgreSQL), opened from the test; close it."""
        return DecisionStore(self.db_url)

    def worker_pid(self) -> int:
        """The one BentoML worker process (``workers=1``): where decisions run."""
        pids = worker_pids(self.proc.pid)
        assert len(pids) == 1, f"expected one worker under {self.proc.pid}, found {pids}"
        return pids[0]


def start_service(tmp: Path, extra_env: dict[str, str] | None = None, registry: bool = False) -> Served:
    """A served instance on a free port; ``registry``: serve the MLflow registry's champion
    (tracking store ``<home>/mlflow.db``) instead of a model file. Starting again on the same
    ``tmp`` restarts on the same home and log (``serve.log`` keeps every run's output)."""
    home = tmp / "home"
    catalog = tmp / "offers.yaml"
    shutil.copy(REPO / "config/offers.yaml", catalog)
    port = free_port()
    env = {**os.environ, "OFFER_BANDIT_HOME": str(home), "OFFER_BANDIT_CATALOG": str(catalog),
           "OFFER_BANDIT_POLICY": str(REPO / "config/policy.yaml"), "OFFER_BANDIT_API_KEYS": f"{CHANNEL_KEY},other",
           "OFFER_BANDIT_ADMIN_KEY": ADMIN_KEY, "OFFER_BANDIT_MODEL_PATH": str(tmp / "model.vw"),
           "OFFER_BANDIT_MODEL_POLL_SECONDS": "1", "OFFER_BANDIT_SALT": "served-salt",
           "DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "True", **(extra_env or {})}
    if registry:
        del env["OFFER_BANDIT_MODEL_PATH"]
    log = open(tmp / "serve.log", "a")
    proc = subprocess.Popen([sys.executable, "-m", "bandit.cli", "serve", "--port", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited: {(tmp / 'serve.log').read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                db_url = env.get("OFFER_BANDIT_DATABASE_URL") or f"sqlite:///{home / 'decisions.db'}"
                return Served(url, home, catalog, tmp / "model.vw", proc, db_url)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_service(proc)
    raise RuntimeError(f"service not ready in 90 s: {(tmp / 'serve.log').read_text()[-3000:]}")


def start_replicas(tmp: Path, n: int, database_url: str, extra_env: dict[str, str] | None = None) -> list[Served]:
    """``n`` served instances on one decision log, started at the same moment (as a
    deployment's replicas are), each with its own home and the same salt."""
    from concurrent.futures import ThreadPoolExecutor

    env = {"OFFER_BANDIT_DATABASE_URL": database_url, **(extra_env or {})}
    dirs = [tmp / f"replica-{i}" for i in range(n)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(start_service, d, env) for d in dirs]
    started = [f.result() for f in futures if f.exception() is None]
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        stop_service(*(s.proc for s in started))
        raise failed[0]
    return started


def stop_service(*procs: subprocess.Popen) -> None:
    """Stop servers started in their own sessions (``start_new_session``): each one's
    process group is sent SIGTERM first, then each is waited for (so several stop in
    parallel), then the whole tree of any still running after 20 s is killed (``bentoml
    serve`` starts each worker in a session of its own, out of the group's reach)."""
    import signal
    for proc in procs:
        try:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 20
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait(timeout=20)


def kill_service(served: Served) -> list[int]:
    """SIGKILL the arbiter and its worker at once, as a crash would (no shutdown hook runs);
    returns the process ids killed, all gone when it returns."""
    pids = kill_tree(served.proc.pid)
    served.proc.wait(timeout=20)
    deadline = time.time() + 20
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return pids


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_service(tmp_path_factory.mktemp("served"))
    yield s
    stop_service(s.proc)


def decide_offer(served: Served, prefix: str, **over) -> dict:
    """Decide through ``served`` until an offer is made (cold start offers ~1 in 10 when one offer is eligible)."""
    c = served.client()
    for i in range(300):
        d = c.post("/decide", json=body(customer__id=f"{prefix}-{i}", candidates=["premium_bundle"], **over)).json()
        if d["offer_id"] != NO_OFFER:
            return d
    raise AssertionError("no offer in 300 tries")


def body(**over: object) -> dict:
    """A JSON decision request like ``request()`` builds, for HTTP tests."""
    return request(**over).model_dump(mode="json", exclude_none=True, exclude_defaults=False)


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow tracking database migrated once per session (a fresh one takes ~7 s);
    tests copy it."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """Prefect's ephemeral test server, once per session (it takes ~20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def production_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator["Stack"]:  # noqa: F821
    """An MLflow tracking server and a Prefect server, each on a fresh PostgreSQL database,
    once per session (about 25 s; see tests/stack.py)."""
    from stack import production_stack as start

    with start(tmp_path_factory.mktemp("stack")) as stack:
        yield stack
