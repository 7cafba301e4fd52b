"""The whole loop for real: decisions and outcomes over HTTP into a served instance, the
retrain flow under Prefect on that log, the gate promoting through the MLflow registry,
the running service picking the new champion up by itself; then complaints about one
offer, the monitor flow suspending it, and the service no longer offering it."""

import shutil
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path

import pytest

from conftest import start_service, stop_service

pytestmark = pytest.mark.slow


def test_decisions_over_http_retrain_under_prefect_and_the_promoted_model_is_served(
        tmp_path: Path, migrated_db: Path, prefect_server: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from bandit.config.catalog import NO_OFFER
    from bandit.domain.outcomes import OutcomeType
    from experiments.simulator.traffic import interactions, requests, simulator
    from tracking.registry import Registry
    from flows.retrain_flow import retrain_flow

    policy = tmp_path / "policy.yaml"  # explore widely at cold start; a gate sized for a test
    policy.write_text("exploration: {cold_start_epsilon: 0.5}\npromotion: {min_events: 100, min_ess: 10}\n")
    (tmp_path / "home").mkdir()
    shutil.copy(migrated_db, tmp_path / "home" / "mlflow.db")
    served = start_service(tmp_path, {"OFFER_BANDIT_POLICY": str(policy)}, registry=True)
    try:
        sim = simulator(seed=11)
        state = sim.new_state()
        later = requests(simulator(seed=12), 1000)  # for the decisions after training
        made: dict[str, list[str]] = {}  # offer -> event ids of the decisions that made it
        with served.client() as http:
            assert http.get("/readyz").json()["model"]["source"] == "cold_start"
            for inter in interactions(sim, 3000):
                d = http.post("/decide", json=inter.request.model_dump(mode="json", exclude_none=True)).json()
                assert d["model_version"] == "cold-start", d
                if d["offer_id"] != NO_OFFER:
                    made.setdefault(d["offer_id"], []).append(d["event_id"])
                    # acceptances and declines only: the complaints below are the test's own
                    for kind, value in sim.outcomes(sim.respond(inter, d["offer_id"], state)):
                        if kind is not OutcomeType.COMPLAINT:
                            r = http.post("/outcome", json={"event_id": d["event_id"], "type": kind, "value": value})
                            assert r.status_code in (200, 201, 204), r.text
        assert served.count_decisions() == 3000

        for name, value in {"OFFER_BANDIT_HOME": served.home, "OFFER_BANDIT_POLICY": policy,
                            "OFFER_BANDIT_CATALOG": served.catalog, "OFFER_BANDIT_SALT": "served-salt",
                            "MLFLOW_DISABLE_TELEMETRY": "true"}.items():
            monkeypatch.setenv(name, str(value))
        as_of = (datetime.now(UTC) + timedelta(days=4)).timestamp()  # every reward window closed
        state = retrain_flow(as_of=as_of, window_days=7, return_state=True)
        assert state.is_completed(), state
        result = state.result()
        assert result["promoted"] and result["version"] == "1", result
        assert Registry(f"sqlite:///{served.home / 'mlflow.db'}").version_of("champion") == "1"

        deadline = time.time() + 60  # the service polls the alias every second
        with served.client() as http:
            while time.time() < deadline:
                d = http.post("/decide", json=next(later).model_dump(mode="json", exclude_none=True))
                if d.json()["model_version"] == "offer-policy/1":
                    break
                time.sleep(0.5)
            assert d.json()["model_version"] == "offer-policy/1", d.json()
            ready = http.get("/readyz").json()
            assert ready["model"] == {**ready["model"], "source": "registry", "version": "offer-policy/1"}, ready

            # complaints about the offer made most often, over HTTP; the monitor flow suspends it
            worst = max(made, key=lambda o: len(made[o]))
            for event_id in made[worst]:
                assert http.post("/outcome", json={"event_id": event_id, "type": "complaint"}).status_code < 300
        from flows.monitor_flow import monitor_flow

        report = monitor_flow()
        assert report["suspended"] == [worst], report["breaches"]
        time.sleep(1.5)  # the service's view of the kill switch is at most 1 s old
        with served.client() as http:
            offers = {o["id"]: o["status"] for o in http.get("/offers").json()["offers"]}
            assert offers[worst] == "suspended"
            for _ in range(300):
                d = http.post("/decide", json=next(later).model_dump(mode="json", exclude_none=True))
                assert d.json()["offer_id"] != worst
                assert worst not in {r["id"] for r in d.json()["ranking"]}
    finally:
        stop_service(served.proc)
