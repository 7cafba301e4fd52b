"""Security of the served service: keys on every route the OpenAPI document lists (but the
health ones), no customer id in clear in the log or in ``/metrics``, and body size limits on
every route that takes a body."""

from __future__ import annotations

import re
import sqlite3
import uuid

import httpx
import pytest

from conftest import ADMIN_KEY, CHANNEL_KEY, Served, body
from service.personalizer_admin import is_management

pytestmark = pytest.mark.slow

PUBLIC = {"/livez", "/healthz", "/readyz", "/metrics"}


def routes(served: Served) -> list[tuple[str, str]]:
    """(method, path) of every operation in the served OpenAPI document, path parameters
    filled with ids that exist nowhere (so that no call changes anything)."""
    spec = served.client(None).get("/docs.json").json()
    return [(m.upper(), re.sub(r"\{[^}]+\}", "no-such-id", p)) for p, ops in spec["paths"].items() for m in ops]


def test_every_documented_route_but_health_needs_a_key_and_admin_routes_the_admin_key(served: Served) -> None:
    found = routes(served)
    assert {p for _, p in found} >= PUBLIC | {"/decide", "/admin/reload", "/personalizer/rank"}
    with httpx.Client(base_url=served.url, timeout=30) as c:
        for method, path in found:
            def call(**headers: str) -> httpx.Response:
                return c.request(method, path, headers=headers, json={} if method == "POST" else None)

            if path in PUBLIC:
                assert call().status_code == 200, path
                continue
            r = call()
            assert r.status_code == 401 and "missing API key" in r.text and r.headers["www-authenticate"], path
            assert call(**{"X-API-Key": "not-a-key"}).status_code == 401, path
            # Personalizer's header counts on Personalizer routes only
            admin_only = path.startswith("/admin/") or is_management(path)  # Personalizer's management too
            other = call(**{"Ocp-Apim-Subscription-Key": CHANNEL_KEY}).status_code
            if path.startswith("/personalizer/"):
                assert other == 403 if admin_only else other not in (401, 403), path
            else:
                assert other == 401, path
            channel = call(**{"X-API-Key": CHANNEL_KEY})
            if admin_only:
                error = channel.json()["error"]
                assert channel.status_code == 403 and "admin" in (error if isinstance(error, str) else error["message"])
                assert call(**{"X-API-Key": ADMIN_KEY}).status_code not in (401, 403), path
            else:
                assert channel.status_code not in (401, 403), path


def test_no_customer_id_in_clear_in_the_log_or_the_metrics(served: Served) -> None:
    ids = [f"Zebra-{uuid.uuid4().hex[:10]}" for _ in range(5)]
    c = served.client()
    events = []
    events.append(c.post("/decide", json=body(customer__id=ids[0], defer_activation=True)).json()["event_id"])
    events.append(c.post("/decide", json=body(customer__id=ids[1], interaction__distress=True)).json()["event_id"])
    r = c.post("/personalizer/rank", json={"actions": [{"id": "none"}, {"id": "premium_bundle"}],
                                           "contextFeatures": [{"customerId": ids[2], "tier": "gold"}]})
    events.append(r.json()["eventId"])
    assert c.post("/decide", json={**body(customer__id=ids[3]), "surprise": 1}).status_code == 422  # not logged
    assert c.post("/decide", json=body(customer__id=ids[4], candidates=["nope"])).status_code == 400
    c.post("/activate", json={"event_id": events[0]})
    c.post("/outcome", json={"event_id": events[1], "type": "complaint"})
    c.post(f"/personalizer/events/{events[2]}/reward", json={"value": 1.0})

    text_of_tables = []
    with sqlite3.connect(served.home / "decisions.db") as db:
        tables = [t for (t,) in db.execute("select name from sqlite_master where type = 'table'")]
        assert {"decisions", "outcomes", "suspensions"} <= set(tables)
        for t in tables:
            for row in db.execute(f"select * from {t}"):
                text_of_tables.append(" ".join(str(v) for v in row))
        assert db.execute("select count(*) from decisions where event_id in (?, ?, ?)", events).fetchone()[0] == 3
    logged = "\n".join(text_of_tables).lower()
    # and the files themselves (free pages, the write-ahead log), in case a row held it once
    raw = b"".join(p.read_bytes() for p in served.home.glob("decisions.db*")).lower()
    metrics = served.client(None).get("/metrics").text.lower()
    for cid in ids:
        for where, text in (("log tables", logged), ("metrics", metrics)):
            assert cid.lower() not in text, f"customer id {cid} in clear in the {where}"
        assert cid.lower().encode() not in raw, f"customer id {cid} in the log's files"


def test_oversized_bodies_are_413_on_every_route_with_a_body_and_change_nothing(served: Served) -> None:
    limit = 65536
    posts = [p for m, p in routes(served) if m == "POST"]
    assert "/decide" in posts and "/outcome" in posts and "/personalizer/rank" in posts
    counts = [served.count_rows(t) for t in ("decisions", "outcomes", "suspensions")]
    big = b'{"pad": "' + b"x" * limit + b'"}'
    with httpx.Client(base_url=served.url, headers={"X-API-Key": ADMIN_KEY,
                                                    "content-type": "application/json"}, timeout=30) as c:
        for path in posts:
            for content in (big, (big[i:i + 8192] for i in range(0, len(big), 8192))):  # sized, then chunked
                r = c.post(path, content=content)
                assert r.status_code == 413, (path, r.status_code, r.text)
                error = r.json()["error"]
                message = error["message"] if path.startswith("/personalizer/") else error
                assert message == f"request body over {limit} bytes", (path, r.text)
            # just under the limit is read and judged (or ignored), not refused for its size
            fits = b'{"pad": "' + b"x" * (limit - 100) + b'"}'
            assert c.post(path, content=fits).status_code != 413, path
    assert [served.count_rows(t) for t in ("decisions", "outcomes", "suspensions")] == counts


@pytest.mark.parametrize("path", ["/metrics/../admin/reload", "/livez/%2e%2e/admin/reload", "/readyz%2F..%2Fdecide",
                                  "//admin/reload", "/admin/reload/", "/ADMIN/reload", "/docs.json/../decide",
                                  "/metrics%00/../decide", "/decide%0A"])
def test_a_public_looking_or_odd_path_reaches_no_keyed_route_without_a_key(served: Served, path: str) -> None:
    import http.client

    conn = http.client.HTTPConnection(served.url.removeprefix("http://"), timeout=30)
    try:  # sent as written: http.client does not normalize the path
        conn.request("POST", path, body=b"{}", headers={"content-type": "application/json"})
        r = conn.getresponse()
        status, text = r.status, r.read()
    finally:
        conn.close()
    assert status in (401, 404, 405), (status, text)
