"""Shared fixtures: every test gets its own home, log and salt; PostgreSQL when reachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bandit.config import LiveConfig
from bandit.context import DecisionRequest
from bandit.decision import Decider, ModelSlot
from bandit.settings import Settings, get_settings
from bandit.store import DecisionStore
from bandit.vw import ColdStart

REPO = Path(__file__).resolve().parent.parent
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


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema on the real PostgreSQL server, dropped afterwards."""
    why = pg_available()
    if why:
        pytest.skip(why)
    schema = "t_" + uuid.uuid4().hex[:12]
    eng = create_engine(PG_URL)
    with eng.begin() as c:
        c.execute(text(f"create schema {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with eng.begin() as c:
        c.execute(text(f"drop schema {schema} cascade"))
    eng.dispose()


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
