"""The decision service over real HTTP: keys, validation, decisions, outcomes, kill switch,
reloads, models, readiness and metrics, against one served instance (``served``)."""

import random
from collections.abc import Iterator
import time

import pytest

from bandit.config.catalog import NO_OFFER
from conftest import ADMIN_KEY, Served, body, decide_offer, start_service, stop_service

pytestmark = pytest.mark.slow


def test_keys_are_required_and_scoped(served: Served) -> None:
    anon, chan, admin = served.client(None), served.client(), served.client(ADMIN_KEY)
    assert anon.post("/decide", json=body()).status_code == 401
    assert served.client("nope").post("/decide", json=body()).status_code == 401
    assert anon.get("/offers").status_code == 401
    r = chan.post("/admin/reload")
    assert r.status_code == 403 and "admin" in r.json()["error"]
    assert admin.post("/decide", json=body(customer__id="admin-may-decide")).status_code == 200
    assert served.client("other").post("/decide", json=body(customer__id="second-key")).status_code == 200
    for public in ("/livez", "/readyz", "/metrics"):
        assert anon.get(public).status_code == 200, public


@pytest.mark.parametrize("bad,field", [
    ({"channel": "fax"}, "channel"),
    ({"interaction": {"request_type": "advisory", "sentiment": 3}}, "interaction.sentiment"),
    ({"customer": {"id": "x", "favourite_colour": "red"}}, "customer.favourite_colour"),
    ({"interaction": {"request_type": "gossip"}}, "interaction.request_type"),
    ({"candidates": [f"o{i}" for i in range(51)]}, "candidates"),
    ({"customer": {"id": "x", "tenure_months": "long"}}, "customer.tenure_months"),
    ({"surprise": 1}, "surprise"),
])
def test_invalid_requests_name_the_field_and_log_nothing(served: Served, bad: dict, field: str) -> None:
    before = served.count_decisions()
    r = served.client().post("/decide", json={**body(), **bad})
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]] and field in r.json()["error"]
    assert served.count_decisions() == before


def test_malformed_json_unknown_candidate_and_huge_body(served: Served) -> None:
    c = served.client()
    before = served.count_decisions()
    r = c.post("/decide", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = c.post("/decide", json=body(candidates=["premium_bundle", "nope"]))
    assert r.status_code == 400 and "candidates[1]: unknown offer id 'nope'" in r.json()["error"]
    r = c.post("/decide", json={**body(), "attributes": {"pad": "x" * 200}, "pad": "y" * 70000})
    assert r.status_code == 413
    chunks = (b"x" * 8192 for _ in range(10))  # no Content-Length: counted as it streams
    r = c.post("/decide", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "request body over" in r.json()["error"]
    assert served.count_decisions() == before


def test_decide_answers_everything_and_is_idempotent(served: Served) -> None:
    c = served.client()
    r = c.post("/decide", json=body(event_id="http-idem", customer__id="idem"))
    assert r.status_code == 200
    d = r.json()
    assert set(d) >= {"event_id", "offer_id", "content", "probability", "ranking", "model_version", "mode",
                      "excluded"}
    assert d["event_id"] == "http-idem" and d["logged"] is True
    assert abs(sum(x["probability"] for x in d["ranking"]) - 1) < 1e-6
    before = served.count_decisions()
    again = c.post("/decide", json=body(event_id="http-idem", customer__id="idem"))
    assert again.status_code == 200 and again.json() == {**d, "replayed": True}
    other = c.post("/decide", json=body(event_id="http-idem", customer__id="idem-2", customer__opted_out=True,
                                        interaction__distress=True, channel="sms"))
    assert other.status_code == 409, other.text
    assert "http-idem" in other.json()["error"] and other.json()["detail"][0]["field"] == "event_id"
    assert "offer_id" not in other.json() and served.count_decisions() == before
    assert c.post("/decide", json={k: v for k, v in body(customer__id="noid").items()}).json()["event_id"]


def test_a_distressed_customer_never_gets_an_offer_in_1000_random_requests(served: Served) -> None:
    rng = random.Random(11)
    c = served.client()
    offers = 0
    for i in range(1000):
        b = body(customer__id=f"distressed-{i}", customer__tier=rng.choice(["gold", "platinum", "standard"]),
                 channel=rng.choice(["phone", "chat", "email", "sms", "web"]),
                 interaction__request_type=rng.choice(["advisory", "informational", "transactional", "feedback"]),
                 interaction__resolved=rng.choice(["true", "false", "unknown"]),
                 interaction__sentiment=rng.uniform(-1, 1), interaction__distress=True)
        d = c.post("/decide", json=b).json()
        offers += d["offer_id"] != NO_OFFER or d["content"] is not None
        assert {e["reason"] for e in d["excluded"]} <= {"opted_out", "distress"}
    assert offers == 0




def test_outcomes_and_activation(served: Served) -> None:
    c = served.client()
    d = decide_offer(served, "outcomes", defer_activation=True)
    assert d["activated"] is False
    r = c.post("/outcome", json={"event_id": d["event_id"], "type": "accepted", "value": 150})
    assert r.status_code == 200 and r.json() == {"event_id": d["event_id"], "recorded": True, "counts": False}
    assert c.post("/outcome", json={"event_id": d["event_id"], "type": "accepted", "value": 150}).json()["recorded"] is False
    for contradiction in ({"type": "accepted", "value": 99}, {"type": "declined"}):  # the first answer stands
        r = c.post("/outcome", json={"event_id": d["event_id"], **contradiction})
        assert r.status_code == 409 and r.json()["detail"][0]["field"] == "type", r.text
        assert "conflicts with the accepted outcome already recorded" in r.json()["error"]
    r = c.post("/outcome", json={"event_id": d["event_id"], "type": "converted", "value": -5})
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "value", r.text
    assert c.post("/outcome", json={"event_id": "never", "type": "complaint"}).status_code == 404
    r = c.post("/outcome", json={"event_id": d["event_id"], "type": "nps", "score": 11})
    assert r.status_code == 422 and "score" in r.json()["error"]
    r = c.post("/outcome", json={"event_id": d["event_id"], "type": "bought"})
    assert r.status_code == 422 and "type" in r.json()["error"]
    assert c.post("/activate", json={"event_id": d["event_id"]}).json()["activated"] is True
    assert c.post("/activate", json={"event_id": d["event_id"]}).json()["activated"] is False
    assert c.post("/outcome", json={"event_id": d["event_id"], "type": "complaint"}).json()["counts"] is True
    assert c.post("/activate", json={"event_id": "never"}).status_code == 404


def test_kill_switch_is_effective_on_the_next_request(served: Served) -> None:
    c, admin = served.client(), served.client(ADMIN_KEY)
    assert admin.post("/admin/offers/premium_bundle/suspend", json={"reason": "complaints"}).status_code == 200
    try:
        statuses = {o["id"]: o["status"] for o in c.get("/offers").json()["offers"]}
        assert statuses["premium_bundle"] == "suspended"
        for i in range(40):
            d = c.post("/decide", json=body(customer__id=f"killed-{i}", candidates=["premium_bundle"])).json()
            assert d["offer_id"] == NO_OFFER
            assert {"offer_id": "premium_bundle", "reason": "suspended"} in d["excluded"]
    finally:
        assert admin.post("/admin/offers/premium_bundle/resume").status_code == 200
    assert {o["id"]: o["status"] for o in c.get("/offers").json()["offers"]}["premium_bundle"] == "active"
    assert decide_offer(served, "revived")["offer_id"] == "premium_bundle"
    assert admin.post("/admin/offers/nope/suspend").status_code == 404


def test_invalid_catalog_reload_keeps_the_old_one_and_a_valid_one_applies(served: Served) -> None:
    admin = served.client(ADMIN_KEY)
    good = served.catalog.read_text()
    before = served.client().get("/offers").json()["catalog_version"]
    served.catalog.write_text(good.replace("value: 120", "value: -3"))
    try:
        r = admin.post("/admin/reload")
        assert r.status_code == 422
        assert any("offer 'fiber_upgrade': field 'value'" in p for p in r.json()["problems"])
        assert served.client().get("/offers").json()["catalog_version"] == before
        served.catalog.write_text(good.replace("value: 120", "value: 125"))
        r = admin.post("/admin/reload")
        assert r.status_code == 200 and r.json()["catalog_version"] != before
        values = {o["id"]: o["value"] for o in served.client().get("/offers").json()["offers"]}
        assert values["fiber_upgrade"] == 125
    finally:
        served.catalog.write_text(good)
        admin.post("/admin/reload")


@pytest.fixture
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """An instance of the test's own: the session's serves cold start, which other files'
    tests (the Personalizer client's exploration rate) rely on, whichever worker runs them."""
    s = start_service(tmp_path_factory.mktemp("own"))
    yield s
    stop_service(s.proc)


def test_model_is_picked_up_without_restart_and_a_broken_one_never_replaces_it(own: Served, tmp_path) -> None:
    from bandit.log.dsjson import dsjson_lines
    from bandit.config.policyfile import PolicyFile
    from bandit.log.store import DecisionStore
    from bandit.learn.training import train_dsjson

    c, admin = own.client(), own.client(ADMIN_KEY)
    assert c.get("/readyz").json()["model"]["source"] in ("cold_start", "file")
    for i in range(50):
        c.post("/decide", json=body(customer__id=f"train-{i}"))
    store = DecisionStore(f"sqlite:///{own.home / 'decisions.db'}")
    policy = PolicyFile()
    model, n = train_dsjson(policy.vw_args(), dsjson_lines(store, policy.reward))
    assert n >= 50
    version = model.save(tmp_path / "m.vw")
    (tmp_path / "m.vw").replace(own.model_path)
    deadline = time.time() + 15
    while time.time() < deadline and c.get("/readyz").json()["model"]["version"] != version:
        time.sleep(0.3)
    ready = c.get("/readyz").json()
    assert ready["model"] == {**ready["model"], "source": "file", "version": version}
    assert c.post("/decide", json=body(customer__id="after-model")).json()["model_version"] == version
    assert (own.home / "models" / "last-known-good.vw").is_file()
    # A corrupt file at the same path: the reload fails and the good model keeps serving.
    own.model_path.write_bytes(b"not a vw model")
    r = admin.post("/admin/model/reload").json()["model"]
    assert r["version"] == version and r["last_error"]
    assert c.post("/decide", json=body(customer__id="after-corrupt")).json()["model_version"] == version
    assert c.get("/readyz").status_code == 200


def test_readyz_detail_and_metrics(served: Served) -> None:
    # what the metrics below count, made here (the file's other tests make more of it)
    served.client().post("/decide", json=body(customer__id="distressed-1", interaction__distress=True))
    d = decide_offer(served, "readyz-metrics")
    served.client().post("/outcome", json={"event_id": d["event_id"], "type": "declined"})
    c = served.client(None)
    r = c.get("/readyz").json()
    assert r["ready"] is True and r["offers"] == 10 and "model" in r and r["detail"]
    text = c.get("/metrics").text
    for name in ("offer_bandit_decisions_total", "offer_bandit_guardrail_exclusions_total",
                 "offer_bandit_outcomes_total", "offer_bandit_log_failures_total"):
        assert name in text
    assert 'reason="distress"' in text
    assert "served-salt" not in text and "distressed-1" not in text


def test_openapi_documents_every_route(served: Served) -> None:
    spec = served.client(None).get("/docs.json").json()
    for path in ("/decide", "/outcome", "/activate", "/offers", "/admin/reload", "/personalizer/rank",
                 "/personalizer/v1.0/rank", "/personalizer/events/{eventId}/reward",
                 "/personalizer/events/{eventId}/activate"):
        assert path in spec["paths"], path
    props = spec["components"]["schemas"]["DecisionRequest"]["properties"]
    assert {"event_id", "channel", "customer", "interaction", "history", "candidates", "defer_activation"} <= set(props)


def test_a_log_failure_answers_no_offer_counts_it_and_the_service_stays_up(served: Served) -> None:
    import sqlite3
    db = served.home / "decisions.db"
    with sqlite3.connect(db) as conn:
        conn.execute("alter table decisions rename to decisions_away")
    try:
        d = served.client().post("/decide", json=body(customer__id="while-broken", candidates=["premium_bundle"]))
        assert d.status_code == 200
        assert d.json()["offer_id"] == NO_OFFER and d.json()["logged"] is False and d.json()["mode"] == "not_logged"
    finally:
        with sqlite3.connect(db) as conn:
            conn.execute("alter table decisions_away rename to decisions")
    metrics = served.client(None).get("/metrics").text
    line = next(x for x in metrics.splitlines() if x.startswith("offer_bandit_log_failures_total"))
    assert float(line.split()[-1]) >= 1
    assert served.client().post("/decide", json=body(customer__id="after-broken")).json()["logged"] is True


@pytest.mark.parametrize("at", ["0001-01-01T00:01:00+03:00", "9999-12-31T23:59:00-03:00"])
def test_a_time_outside_the_representable_range_is_a_4xx_naming_the_field(served: Served, at: str) -> None:
    """Found by stateful schema fuzzing: it was an OverflowError and a 500."""
    r = served.client().post("/decide", json={**body(customer__id="dates"), "history": {"last_complaint": at}})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "history.last_complaint"
    r = served.client().post("/decide", json={**body(customer__id="dates"), "history": {"shown": [
        {"offer_id": "premium_bundle", "at": at}]}})
    assert r.status_code == 422 and r.json()["detail"][0]["field"].startswith("history.shown"), r.text
