"""The metrics people expect, and the alert rules and dashboard shipped for them: every
series the rules and the dashboard name is one the service exports; the rules pass
``promtool check rules`` and their own unit tests (``promtool test rules``); a served
instance answers the request, latency, log, model and configuration series."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from conftest import REPO, Served, body
from service import metrics

OPS = REPO / "service" / "ops"
RULES, RULE_TESTS = OPS / "prometheus-alerts.yml", OPS / "prometheus-alerts.test.yml"
DASHBOARD = OPS / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: apt-get install "
                                                             "prometheus); the alert rules are not checked")


def exported() -> set[str]:
    """Every series name the service's metrics can export (a counter's ``_total``, a
    histogram's ``_bucket``/``_sum``/``_count``, a gauge's own name)."""
    names = set()
    for m in vars(metrics).values():
        if isinstance(m, MetricWrapperBase):
            base = m._name
            names |= {f"{base}_total"} if m._type == "counter" else (
                {f"{base}_bucket", f"{base}_sum", f"{base}_count"} if m._type == "histogram" else {base})
    return names


def named(text: str) -> set[str]:
    return set(re.findall(r"\boffer_bandit_[a-z_]+", text))


@pytest.mark.parametrize("path", [RULES, DASHBOARD], ids=["alert rules", "dashboard"])
def test_every_series_the_rules_and_the_dashboard_name_is_exported(path: Path) -> None:
    missing = named(path.read_text()) - exported()
    assert not missing, f"{path.name} names series the service does not export: {sorted(missing)}"


def test_the_dashboard_is_grafana_json_with_a_query_per_panel() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "offer-bandit" and len(dash["panels"]) >= 10
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in dash["panels"])


@needs_promtool
def test_the_alert_rules_pass_promtool() -> None:
    check = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run([PROMTOOL, "test", "rules", RULE_TESTS.name], capture_output=True, text=True, cwd=OPS)
    assert unit.returncode == 0, unit.stdout + unit.stderr


@pytest.mark.parametrize("path, route", [("/decide", "/decide"), ("/personalizer/v1.0/events/e-1/reward",
                                                                   "/personalizer/events"),
                                         ("/personalizer/v1.0/configurations/service", "/personalizer/management"),
                                         ("/admin/offers/x/suspend", "/admin"), ("/no/such/thing", "other")])
def test_a_route_label_is_a_template_never_a_raw_path(path: str, route: str) -> None:
    assert metrics.route_of(path) == route


def test_a_served_instance_exports_requests_latency_log_model_and_configuration(served: Served) -> None:
    client = served.client()
    for i in range(5):
        assert client.post("/decide", json=body(customer__id=f"metrics-{i}")).status_code == 200
    assert client.post("/outcome", json={"event_id": "no-such-event", "type": "accepted"}).status_code == 404
    text = served.client(None).get("/metrics").text
    assert re.search(r'offer_bandit_http_requests_total\{route="/decide",status="200"\} [1-9]', text)
    assert re.search(r'offer_bandit_http_requests_total\{route="/outcome",status="404"\} [1-9]', text)
    assert re.search(r'offer_bandit_http_request_seconds_bucket\{le="0.1",route="/decide"\} [1-9]', text)
    assert re.search(r"offer_bandit_log_commit_seconds_count [1-9]", text)
    assert re.search(r'offer_bandit_model_info\{source="[a-z_]+",version="[^"]+"\} 1.0', text)
    info = [line for line in text.splitlines() if line.startswith("offer_bandit_config_info{")]
    assert any(re.fullmatch(r'offer_bandit_config_info\{catalog_version="[0-9a-f]{12}",policy_mode="[a-z]+",'
                            r'policy_version="[0-9a-f]{12}"\} 1.0', line) for line in info), info
    assert "offer_bandit_log_writable 1.0" in text and "offer_bandit_model_age_seconds " in text
    assert re.search(r"^offer_bandit_suspended_offers \d", text, re.M)
    assert re.search(r"^offer_bandit_model_load_failures \d", text, re.M)  # other tests' broken models count
