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
