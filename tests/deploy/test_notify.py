"""Notices reach the right owners: composed from a monitor assessment, delivered to a real
local SMTP server and a real local webhook endpoint, and a channel that fails is an error
naming it, never silence."""

from __future__ import annotations

import socket

import pytest

from bandit.config.catalog import parse_catalog
from bandit.config.notifications import Notifications, is_address, notifications_of
from bandit.deploy.notify import NotificationError, Notice, flow_failure_notice, send
from receivers import smtp_server, webhook_receiver

CATALOG = """
owner: marketing@example.com
offers:
  - id: a
    title: A
    family: upgrade
    value: 10
    channels: [phone]
    owner: broadband-team@example.com
    templates: {phone: "A"}
  - id: b
    title: B
    family: upgrade
    value: 10
    channels: [phone]
    templates: {phone: "B"}
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_an_offer_names_its_owner_else_the_catalogs() -> None:
    from bandit.deploy.notify import offer_owner

    cat = parse_catalog(CATALOG)
    assert offer_owner(cat, "a") == "broadband-team@example.com"
    assert offer_owner(cat, "b") == "marketing@example.com"


def test_a_notice_goes_by_email_to_its_owners_and_the_operators_and_to_the_webhook() -> None:
    notice = Notice("suspension", "[offer-bandit] a suspended", "figures", ("broadband-team@example.com", "sales"))
    with smtp_server() as box, webhook_receiver() as hook:
        cfg = Notifications.model_validate({"webhook_url": hook.url, "operators": ["ops@example.com"],
                                            "smtp": {"host": box.host, "port": box.port}})
        done = send(notice, cfg)
    assert [d.channel for d in done] == ["webhook", "email"] and all(d.ok for d in done)
    [(rcpt, msg)] = box.messages
    assert rcpt == ["broadband-team@example.com", "ops@example.com"]  # "sales" is a name: no address
    assert msg["Subject"] == "[offer-bandit] a suspended" and msg.get_payload().strip() == "figures"
    assert hook.bodies == [{"text": "*[offer-bandit] a suspended*\nfigures"}]


def test_a_channel_that_fails_raises_naming_it_after_the_others_were_tried() -> None:
    notice = flow_failure_notice("retrain", "nimble-fox", "FAILED", "ConfigError: policy.yaml: ...")
    with webhook_receiver(status=500) as hook:
        cfg = Notifications.model_validate({"webhook_url": hook.url, "operators": ["ops@example.com"],
                                            "smtp": {"host": "127.0.0.1", "port": closed_port(),
                                                     "timeout_seconds": 2}})
        with pytest.raises(NotificationError) as err:
            send(notice, cfg)
    assert hook.bodies and "retrain" in hook.bodies[0]["text"]  # tried, and answered 500
    said = str(err.value)
    assert "webhook" in said and "HTTP 500" in said and "email 127.0.0.1" in said


def test_nothing_configured_sends_nothing() -> None:
    assert send(Notice("x", "s", "t", ("a@example.com",)), Notifications()) == []


def test_the_section_is_read_even_when_the_rest_of_the_policy_file_is_broken() -> None:
    text = "monitoring: {min_offers: -1}\nnotifications: {webhook_url: 'http://127.0.0.1:9/h'}\n"
    n = notifications_of(text)
    assert n is not None and n.webhook_url == "http://127.0.0.1:9/h"
    assert notifications_of("notifications: {webhook_url: 'ftp://x'}") is None
    assert notifications_of("{not yaml") is None
    assert notifications_of("mode: online") == Notifications()


@pytest.mark.parametrize("value, ok", [("a@b.c", True), ("ops@example.com", True), ("marketing", False),
                                       ("a@", False), ("@b", False), ("a b@c.d", False), ("a@b@c", False)])
def test_what_counts_as_an_address(value: str, ok: bool) -> None:
    assert is_address(value) is ok
