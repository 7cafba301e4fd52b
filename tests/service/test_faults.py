"""Faults around a served instance: models that do not load, a registry that cannot be reached,
and outcomes that are unknown, repeated, late, malformed or for decisions never shown.

Model faults: the service keeps serving the last good model (or the cold-start policy when
there never was one), ``/readyz`` says which and why, and decisions still answer. Outcome
faults: each is answered through HTTP as it should be, and the log changes only where it
should (a late outcome, or one for a decision never activated, is stored but not learned from).

Already covered elsewhere, not repeated here: a corrupt file replacing a good model while
serving (``test_service_http``), the registry source before any tracking store exists
(``test_policy_model``), nps score 11, an unknown outcome type and an unknown event id (``test_service_http``).
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest

from bandit.config.catalog import NO_OFFER
from bandit.config.loader import LiveConfig
from bandit.decide.decider import Decider, ModelSlot
from bandit.log.dsjson import ExportStats, dsjson_lines, to_dsjson
from bandit.config.policyfile import PolicyFile
from bandit.config.settings import get_settings
from bandit.decide.vw import ColdStart, VWModel, checksum_file, file_digest
from conftest import ADMIN_KEY, REPO, Served, body, free_port, request, start_service, stop_service
from conftest import decide_offer

pytestmark = pytest.mark.slow


def ready(served: Served) -> dict:
    r = served.client(None).get("/readyz")
    assert r.status_code == 200, r.text
    return r.json()


def decides(served: Served, customer: str) -> dict:
    """A decision still answers, and is logged."""
    r = served.client().post("/decide", json=body(customer__id=customer))
    assert r.status_code == 200 and r.json()["logged"] is True, r.text
    return r.json()


def garbage(n: int = 4096) -> bytes:
    return random.Random(n).randbytes(n)


# -- model faults ----------------------------------------------------------------------

def test_a_corrupt_model_file_and_an_unreachable_registry_fall_back_to_cold_start_or_the_last_good_model(
        tmp_path: Path) -> None:
    model = tmp_path / "model.vw"
    model.write_bytes(garbage())
    served = start_service(tmp_path)  # a corrupt file and no model before it: cold start
    try:
        r = ready(served)
        assert r["model"]["source"] == "cold_start" and "Bad model format" in r["model"]["last_error"]
        assert r["detail"].startswith("cold start") and "last model error: file version file:" in r["detail"]
        assert decides(served, "corrupt-at-start")["mode"] == "cold_start"
        version = VWModel(PolicyFile().vw_args(), "good").save(model)  # a good one lands (atomically)
        deadline = time.time() + 30
        while time.time() < deadline and ready(served)["model"]["version"] != version:
            time.sleep(0.3)
        assert ready(served)["model"] | {"loaded_at": 0} == {"source": "file", "version": version, "loaded_at": 0,
                                                             "last_error": None, "exploration": None}
    finally:
        stop_service(served.proc)

    # Restarted on the same home with the registry as source, unreachable: the model kept is served.
    port = free_port()  # nothing listens there
    served = start_service(tmp_path, {"OFFER_BANDIT_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}, registry=True)
    try:
        r = ready(served)
        assert r["detail"].startswith(f"serving {version} from last_known_good; last model error: registry: ")
        for r in (r, {"model": served.client(ADMIN_KEY).post("/admin/model/reload").json()["model"]}):
            assert (r["model"]["source"], r["model"]["version"]) == ("last_known_good", version)
            # the registry's own failure, not "no model available yet" (a registry it never reached)
            assert r["model"]["last_error"].startswith("registry: ") and f"127.0.0.1:{port}" in r["model"]["last_error"]
        assert decides(served, "registry-down")["model_version"] == version
    finally:
        stop_service(served.proc)


def test_a_champion_whose_vw_file_is_garbage_never_replaces_the_serving_model(
        tmp_path: Path, migrated_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from tracking.policy_model import log_policy_model
    from tracking.registry import Registry
    from conftest import use_test_experiment

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    (tmp_path / "home").mkdir()
    shutil.copy(migrated_db, tmp_path / "home" / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    use_test_experiment(tmp_path)
    reg = Registry(uri)

    def register(name: str) -> tuple[str, list[Path]]:
        """A new version from a good model; returns it and its VW file as the artifact store holds it."""
        VWModel(PolicyFile().vw_args(), name).save(tmp_path / f"{name}.vw")
        with mlflow.start_run():
            info = log_policy_model(tmp_path / f"{name}.vw", REPO / "config/offers.yaml", REPO / "config/policy.yaml")
        return reg.register(info.model_uri), list((tmp_path / "mlartifacts").rglob(f"{name}.vw"))

    v1, _ = register("good")
    reg.promote(v1)
    served = start_service(tmp_path, registry=True)
    try:
        assert ready(served)["model"]["version"] == f"offer-policy/{v1}"
        v2, stored = register("broken")
        assert stored
        for f in stored:  # garbage with a matching checksum: VW itself must refuse it
            f.write_bytes(garbage())
            checksum_file(f).write_text(file_digest(f) + "\n")
        reg.promote(v2)
        admin = served.client(ADMIN_KEY)
        m = admin.post("/admin/model/reload").json()["model"]
        assert (m["source"], m["version"]) == ("registry", f"offer-policy/{v1}")
        assert m["last_error"].startswith(f"registry version offer-policy/{v2}: RuntimeError")
        assert ready(served)["detail"].startswith(f"serving offer-policy/{v1} from registry; last model error")
        assert decides(served, "broken-champion")["model_version"] == f"offer-policy/{v1}"
        reg.rollback()  # champion back to the version serving: nothing to load, the error is history
        m = admin.post("/admin/model/reload").json()["model"]
        assert (m["source"], m["version"], m["last_error"]) == ("registry", f"offer-policy/{v1}", None)
        assert ready(served)["detail"] == f"serving offer-policy/{v1} from registry"
    finally:
        stop_service(served.proc)


# -- outcome faults ----------------------------------------------------------------------

def stored(served: Served, event_id: str) -> list[tuple]:
    """The outcomes the log holds for one event: (type, value, score)."""
    store = served.store()
    try:
        return [(o.type, o.value, o.score) for o in store.outcomes_for(event_id)]
    finally:
        store.close()


@pytest.fixture(scope="module")
def decided(served: Served) -> dict[str, str]:
    """Event ids of a decision that made an offer and of one that made none (a distressed customer)."""
    none = served.client().post("/decide", json=body(customer__id="faults-none", interaction__distress=True)).json()
    assert none["offer_id"] == NO_OFFER
    return {"offer": decide_offer(served, "faults-offer")["event_id"], "none": none["event_id"]}


def test_unknown_events_and_repeated_outcomes_store_nothing_new(served: Served, decided: dict[str, str]) -> None:
    c = served.client()
    outcomes = served.count_rows("outcomes")
    assert c.post("/outcome", json={"event_id": "faults-never-decided", "type": "complaint"}).status_code == 404
    r = c.post("/personalizer/events/faults-never-decided/reward", json={"value": 1})
    assert r.status_code == 404 and r.json()["error"]["code"] == "EventNotFound"
    assert served.count_rows("outcomes") == outcomes and stored(served, "faults-never-decided") == []
    eid = decided["offer"]
    first = {"event_id": eid, "type": "accepted", "value": 99.0}
    assert c.post("/outcome", json=first).json()["recorded"] is True
    for _ in range(3):
        assert c.post("/outcome", json=first).json() == {"event_id": eid, "recorded": False, "counts": True}
    assert c.post("/outcome", json={**first, "value": 99}).json()["recorded"] is False  # 99 is 99.0
    assert stored(served, eid).count(("accepted", 99.0, None)) == 1
    assert served.count_rows("outcomes") == outcomes + 1


@pytest.mark.parametrize("payload,status,field", [
    ({"event_id": "OFFER", "type": "accepted", "value": "lots"}, 422, "value"),
    ({"event_id": "OFFER", "type": "nps", "score": "high"}, 422, "score"),
    ({"event_id": "OFFER", "type": "nps", "score": -1}, 422, "score"),
    ({"event_id": 5, "type": "complaint"}, 422, "event_id"),
    ({"event_id": "has spaces", "type": "complaint"}, 422, "event_id"),
    ({"type": "complaint"}, 422, "event_id"),
    ({"event_id": "OFFER", "type": 3}, 422, "type"),
    ({"event_id": "OFFER", "type": "refund"}, 422, "type"),
    ({"event_id": "OFFER", "type": "accepted", "value": 10, "currency": "EUR"}, 422, "currency"),
    ({"event_id": "OFFER", "type": "complaint", "value": 10}, 400, "value"),
    ({"event_id": "OFFER", "type": "declined", "value": 1}, 400, "value"),
    ({"event_id": "OFFER", "type": "nps"}, 400, "score"),
    ({"event_id": "OFFER", "type": "converted", "score": 5}, 400, "score"),
    ({"event_id": "NONE", "type": "accepted"}, 400, "type"),  # no offer was made: nothing to accept
    ({"event_id": "NONE", "type": "converted", "value": 5}, 400, "type"),
])
def test_malformed_outcomes_are_rejected_naming_the_field_and_store_nothing(
        served: Served, decided: dict[str, str], payload: dict, status: int, field: str) -> None:
    ids = {"OFFER": decided["offer"], "NONE": decided["none"]}
    payload = {k: ids.get(v, v) if k == "event_id" and isinstance(v, str) else v for k, v in payload.items()}
    before = {eid: stored(served, eid) for eid in decided.values()}, served.count_rows("outcomes")
    r = served.client().post("/outcome", json=payload)
    assert r.status_code == status, r.text
    assert field in [d["field"] for d in r.json()["detail"]] and field in r.json()["error"]
    assert ({eid: stored(served, eid) for eid in decided.values()}, served.count_rows("outcomes")) == before


@pytest.mark.parametrize("payload,field", [({"value": "x"}, "value"), ({}, "value"), ({"value": None}, "value")])
def test_malformed_personalizer_rewards_are_400s_naming_the_field(served: Served, decided: dict[str, str],
                                                                   payload: dict, field: str) -> None:
    before = stored(served, decided["offer"])
    r = served.client().post(f"/personalizer/events/{decided['offer']}/reward", json=payload)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith(f"{field}:"), r.text
    assert stored(served, decided["offer"]) == before


def test_an_outcome_after_the_reward_window_is_stored_and_not_learned_from(served: Served) -> None:
    from datetime import UTC, datetime, timedelta

    settings = get_settings(home=served.home, catalog=served.catalog, policy=REPO / "config/policy.yaml",
                            salt="served-salt")
    live = LiveConfig(settings)
    reward = live.current.policy.reward
    past = datetime.now(UTC) - timedelta(hours=reward.window_hours + 24)
    store = served.store()
    try:  # a decision made (into the served log) a day longer ago than the reward window
        old = Decider(live, store, ModelSlot(ColdStart(0.1)), "served-salt", clock=lambda: past)
        for i in range(300):  # cold start offers about 1 in 10 times
            late = old.decide(request(customer__id=f"late-{i}", candidates=("premium_bundle",)))
            if late.offer_id != NO_OFFER:
                break
    finally:
        store.close()
    assert late.offer_id != NO_OFFER and late.logged
    fresh = decide_offer(served, "in-window")
    for eid in (late.event_id, fresh["event_id"]):
        r = served.client().post("/outcome", json={"event_id": eid, "type": "accepted", "value": 150})
        assert r.status_code == 200 and r.json()["recorded"] is True
        assert stored(served, eid) == [("accepted", 150.0, None)]
    store = served.store()
    try:
        rewards = {}
        for eid in (late.event_id, fresh["event_id"]):
            rec = store.get_decision(eid)
            rewards[eid] = to_dsjson(rec, store.outcomes_for(eid), reward)["_ob"]["reward"]
    finally:
        store.close()
    assert rewards == {late.event_id: reward.default_reward, fresh["event_id"]: 150.0}


def test_an_outcome_for_a_decision_never_activated_is_stored_and_not_learned_from(served: Served) -> None:
    d = decide_offer(served, "deferred-never-shown", defer_activation=True)
    assert d["activated"] is False
    r = served.client().post("/outcome", json={"event_id": d["event_id"], "type": "accepted", "value": 80})
    assert r.status_code == 200 and r.json()["recorded"] is True
    assert stored(served, d["event_id"]) == [("accepted", 80.0, None)]
    store = served.store()
    try:
        ts = store.get_decision(d["event_id"]).ts
        stats = ExportStats()  # the training data: what `train` and the retrain flow learn from
        lines = list(dsjson_lines(store, PolicyFile().reward, since=ts, until=ts + 1e-3, stats=stats))
        assert store.get_decision(d["event_id"]).activated is False
    finally:
        store.close()
    assert stats.skipped_inactive >= 1 and not any(d["event_id"] in line for line in lines)


def test_a_log_that_cannot_be_written_makes_the_replica_unready_and_outcomes_503_until_it_can(
        served: Served) -> None:
    """The decisions table taken away under the running service (as a dropped database or
    a revoked grant would): decisions answer no_offer unlogged, /readyz says why with 503, an
    outcome is a JSON 503 (never a plain-text 500); with the table back, the replica is
    ready again without traffic."""
    import sqlite3

    client = served.client()  # the session's instance: the table is given back whatever happens
    made = client.post("/decide", json=body(customer__id="health-1"))
    assert made.status_code == 200 and made.json()["logged"] is True
    event_id = made.json()["event_id"]
    db = sqlite3.connect(served.home / "decisions.db", isolation_level=None)
    db.execute("ALTER TABLE decisions RENAME TO decisions_away")
    try:
        lost = client.post("/decide", json=body(customer__id="health-2"))
        assert lost.status_code == 200 and lost.json()["logged"] is False and lost.json()["offer_id"] == "no_offer"
        r = served.client(None).get("/readyz")
        assert r.status_code == 503, r.text
        said = r.json()
        assert said["ready"] is False and said["log"]["writable"] is False
        assert said["detail"].startswith("the decision log cannot be written since") and "decisions" in said["detail"]
        out = client.post("/outcome", json={"event_id": event_id, "type": "complaint"})
        assert out.status_code == 503 and out.headers["content-type"] == "application/json"
        assert out.json()["error"].startswith("the decision log is unavailable, the complaint outcome was not recorded")
        assert out.headers["retry-after"] == "1"
    finally:
        db.execute("ALTER TABLE decisions_away RENAME TO decisions")
        db.close()
    deadline = time.time() + 10
    while served.client(None).get("/readyz").status_code != 200:
        assert time.time() < deadline, "still unready 10 s after the log came back"
        time.sleep(0.3)
    assert served.client(None).get("/readyz").json()["log"] == {"writable": True, "error": None}
    assert client.post("/outcome", json={"event_id": event_id, "type": "complaint"}).status_code == 200
