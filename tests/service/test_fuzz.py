"""Schema fuzzing of a served instance (schemathesis, ``experiments/bench/fuzz.py``), and the
hostile inputs schemathesis does not generate (NUL characters, bytes that are not UTF-8,
deep nesting), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import ADMIN_KEY, CHANNEL_KEY, Served, body, record_figure, start_service, stop_service
from experiments.bench.fuzz import Keys, contract_problem, fuzz, headers_for, seed_events, stateful
from service.personalizer import MAX_SLOTS

pytestmark = pytest.mark.slow

DECIDING = ("POST /decide", "POST /personalizer/rank", "POST /personalizer/v1.0/rank")
MULTISLOT = ("POST /personalizer/multislot/rank", "POST /personalizer/v1.0/multislot/rank")
OUTCOMES = ("POST /outcome", "POST /personalizer/events/{eventId}/reward",
            "POST /personalizer/v1.0/events/{eventId}/reward")
# Per operation and generation mode (valid, invalid): 12 took 117 s here for the whole document (68
# operations), 5 about 50 s; experiments/bench/fuzz.py runs it longer (the figures it gives are there).
MAX_EXAMPLES = 5


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Its own instance: the fuzzer suspends offers and sends thousands of requests."""
    s = start_service(tmp_path_factory.mktemp("fuzzed"))
    yield s
    stop_service(s.proc)


@pytest.fixture(scope="module")
def fuzzed_pg(tmp_path_factory: pytest.TempPathFactory, module_pg_url: str) -> Iterator[Served]:
    s = start_service(tmp_path_factory.mktemp("fuzzed-pg"), {"OFFER_BANDIT_DATABASE_URL": module_pg_url})
    yield s
    stop_service(s.proc)


def test_every_operation_survives_schema_fuzzing_and_rejects_in_our_error_format(fuzzed: Served) -> None:
    c = fuzzed.client()
    offers = [o["id"] for o in c.get("/offers").json()["offers"]]
    events = seed_events(fuzzed.url, CHANNEL_KEY)
    decisions, outcomes = fuzzed.count_decisions(), fuzzed.count_rows("outcomes")
    report = fuzz(fuzzed.url, Keys(CHANNEL_KEY, ADMIN_KEY), MAX_EXAMPLES, seed=20261123, event_ids=events,
                  offer_ids=offers)
    record_figure(f"schema fuzzing (tests/service/test_fuzz.py, {MAX_EXAMPLES} per operation and mode): {report.summary()}")
    assert report.failures == [], "\n".join(report.failures)
    spec = fuzzed.client(None).get("/docs.json").json()
    documented = {f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m in ops}
    assert set(report.operations) == documented  # every route of the document was reached
    assert report.count(tuple(documented)) and report.count(tuple(documented), range(400, 500))
    # A rejected decision or outcome is never logged: the log grew by at most the accepted ones
    # (at most: a repeated event id is answered from the log without a new row); a multi-slot
    # rank logs a decision per slot, at most MAX_SLOTS.
    slotted = report.count(MULTISLOT)
    assert 0 < fuzzed.count_decisions() - decisions <= report.count(DECIDING) + MAX_SLOTS * slotted
    assert 0 < fuzzed.count_rows("outcomes") - outcomes <= report.count(OUTCOMES)


def test_sequences_following_the_documents_links_break_no_contract(fuzzed: Served) -> None:
    """Stateful: a decision's event id into its outcome and activation, a rank's into its
    reward and activation (``experiments/bench/fuzz.py --stateful`` runs it longer)."""
    report = stateful(fuzzed.url, Keys(CHANNEL_KEY, ADMIN_KEY), max_examples=15, seed=20261203)
    record_figure(f"stateful schema fuzzing (tests/service/test_fuzz.py, 15 sequences): {report.summary()}")
    assert report.failures == [], "\n".join(report.failures)
    ops = report.operations
    assert ops["POST /decide"] and ops["POST /outcome"] and ops["POST /activate"]
    # the links carried real event ids: outcomes and activations that found their decision
    assert report.count(("POST /outcome", "POST /activate"))


def j(obj: object) -> bytes:
    """JSON as sent; a NUL character goes as ``\\u0000``, which the server decodes to NUL."""
    return json.dumps(obj).encode()


def hostile(event_id: str) -> list[tuple[str, str, bytes, int | None]]:
    """(method and path, body, expected status or None for any 4xx) that schemathesis does not
    send: it generates neither NUL characters nor bytes that are not UTF-8."""
    deep = b'{"a":' * 3000 + b"1" + b"}" * 3000
    cases: list[tuple[str, str, bytes, int | None]] = [
        ("POST /personalizer/events/a%00b/reward", j({"value": 1}), 400),
        ("POST /personalizer/v1.0/events/%00/reward", j({"value": 1}), 400),
        ("POST /personalizer/events/%00/activate", b"", 400),
        ("POST /personalizer/v1.0/events/a%00/activate", b"", 400),
        ("POST /admin/offers/premium_bundle/suspend", j({"reason": "bad\x00reason"}), 422),
        ("POST /admin/offers/pre%00mium/suspend", b"", 422),
        ("POST /outcome", j({"event_id": "a\x00b", "type": "complaint"}), 422),
        ("POST /activate", j({"event_id": "\x00"}), 422),
        ("POST /decide", j(body(customer__id="nul\x00id", interaction__intent="x\x00y",
                                attributes={"note": "v\x00"})), 200),
        ("POST /personalizer/rank", j({"actions": [{"id": "none"}, {"id": "premium_bundle"}], "contextFeatures": [
            {"customerId": "nul\x00", "key\x00": "value\x00"}]}), 201),
        ("POST /personalizer/rank", j({"actions": [{"id": "a\x00"}]}), 400),
        ("POST /personalizer/rank", j({"actions": [{"id": "a", "features": [{"x": ["text in an array"]}]},
                                                   {"id": "b", "features": [{"x": ["text in an array"]}]}]}), 400),
        ("POST /decide", j(body(features={"deep": {"x": [{"y": 1e39}]}})), 400),
        ("POST /personalizer/rank", j({"actions": [{"id": "premium_bundle"}], "eventId": "e\x00"}), 400),
    ]
    for route in ("POST /decide", "POST /outcome", "POST /activate", "POST /personalizer/rank",
                  f"POST /personalizer/events/{event_id}/reward", "POST /admin/offers/premium_bundle/suspend"):
        cases += [(route, b'{"event_id": "\xff\xfe"}', None),  # not UTF-8
                  (route, deep, None),
                  (route, b'{"value": 1e999, "score": -1e999, "sentiment": 1e999}', None),
                  (route, b"[]", None), (route, b'"text"', None)]
        if "suspend" not in route:  # its body is optional: null, or an empty object after a BOM, is none
            cases += [(route, b"null", None), (route, b"\xef\xbb\xbf{}", None)]  # a byte-order mark
    return cases


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_hostile_inputs_are_4xx_naming_the_problem_and_log_nothing(backend: str, request: pytest.FixtureRequest
                                                                    ) -> None:
    served: Served = request.getfixturevalue("fuzzed" if backend == "sqlite" else "fuzzed_pg")
    event_id = seed_events(served.url, CHANNEL_KEY, n=1)[0]
    problems = []
    with httpx.Client(base_url=served.url, timeout=30) as c:
        for route, content, expected in hostile(event_id):
            method, path = route.split(" ", 1)
            before = served.count_decisions(), served.count_rows("outcomes")
            r = c.request(method, path, content=content, headers={
                **headers_for(path, Keys(CHANNEL_KEY, ADMIN_KEY)), "content-type": "application/json"})
            after = served.count_decisions(), served.count_rows("outcomes")
            why = contract_problem(path, r.status_code, r.content)
            if why is None and (r.status_code != expected if expected else not 400 <= r.status_code < 500):
                why = f"status {r.status_code}, expected {expected or '4xx'}: {r.text[:200]}"
            if why is None and r.status_code >= 400 and after != before:
                why = f"rejected, yet the log changed from {before} to {after}"
            if why:
                problems.append(f"{route} {content[:60]!r}: {why}")
    served.client(ADMIN_KEY).post("/admin/offers/premium_bundle/resume")
    assert problems == [], "\n".join(problems)
    assert served.client().get("/readyz").status_code == 200
    assert "Traceback" not in Path(served.home.parent / "serve.log").read_text()
