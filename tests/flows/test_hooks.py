"""A flow run that fails tells the operators at once, through the policy file's channels,
even when what failed is the policy file itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from bandit.config.settings import get_settings
from conftest import REPO
from receivers import smtp_server, webhook_receiver

pytestmark = pytest.mark.slow


def test_a_failed_flow_run_notifies_the_operators(tmp_path: Path, prefect_server: None) -> None:
    from flows.monitor_flow import monitor_flow

    with smtp_server() as box, webhook_receiver() as hook:
        policy = tmp_path / "policy.yaml"
        policy.write_text("monitoring: {min_offers: -1}\n"  # invalid: every run fails loading it
                          f"notifications: {{webhook_url: '{hook.url}', operators: [ops@example.com],\n"
                          f"  smtp: {{host: {box.host}, port: {box.port}}}}}\n")
        settings = get_settings(home=tmp_path / "home", catalog=REPO / "config/offers.yaml", policy=policy,
                                salt="x")
        state = monitor_flow(settings=settings, return_state=True)
    assert state.is_failed()
    [body] = hook.bodies
    assert body["text"].startswith("*[offer-bandit] flow monitor run ") and "Failed" in body["text"]
    assert "min_offers" in body["text"]  # the reason travels with it
    [(rcpt, msg)] = box.messages
    assert rcpt == ["ops@example.com"] and msg["Subject"].startswith("[offer-bandit] flow monitor run ")


def test_the_purge_flow_keeps_the_retention_period(tmp_path: Path, prefect_server: None) -> None:
    from datetime import timedelta

    from bandit.config.loader import LiveConfig
    from bandit.decide.decider import Decider, ModelSlot
    from bandit.decide.vw import ColdStart
    from bandit.deploy.runtime import open_store
    from conftest import NOW, request
    from flows.purge_flow import purge_flow

    policy = tmp_path / "policy.yaml"
    policy.write_text("retention: {days: 30}\n")
    settings = get_settings(home=tmp_path / "home", catalog=REPO / "config/offers.yaml", policy=policy, salt="x")
    store = open_store(settings)
    decider = Decider(LiveConfig(settings), store, ModelSlot(ColdStart(0.5)), "x")
    for i in range(10):  # one every 10 days, the last at NOW
        decider.decide(request(event_id=f"p{i}", customer__id=f"c{i}"), now=NOW - timedelta(days=10 * (9 - i)))
    store.close()
    state = purge_flow(as_of=NOW.timestamp() + 1, settings=settings, return_state=True)
    assert state.is_completed()
    result = state.result()
    assert result["days"] == 30 and result["decisions"] == 7  # 90, 80, ..., 30 days (and a second) old
    store = open_store(settings)
    assert store.count_decisions() == 3
    store.close()
