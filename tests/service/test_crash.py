"""Crash safety: a served instance under load is SIGKILLed (arbiter and worker at once, so no
shutdown hook runs) and restarted on the same home and log. Every decision that was answered
``logged: true`` is in the log exactly once, as answered; a retry of any request, answered or
not, gets the logged decision and writes nothing; outcomes sent afterwards join."""

from __future__ import annotations

import collections
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bandit.config.catalog import NO_OFFER
from conftest import Served, body, kill_service, record_figure, start_service, stop_service
from bandit.log.reader import iter_joined
from experiments.served import alive

pytestmark = pytest.mark.slow

THREADS = 6
LOAD_SECONDS = 2.0  # how long the load runs before the kill (nothing is timed)


class Load:
    """Decisions from ``THREADS`` threads, each until its connection fails (the kill): the
    requests sent, by event id, the answers that said ``logged: true``, and anything else."""

    def __init__(self, served: Served):
        self.served = served
        self.sent: dict[str, dict] = {}
        self.acked: dict[str, dict] = {}
        self.errors: list[str] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(t,)) for t in range(THREADS)]
        for th in self.threads:
            th.start()

    def _run(self, t: int) -> None:
        with self.served.client() as c:
            i = 0
            while not self.stop.is_set():
                eid = f"crash-{t}-{i}"
                b = body(event_id=eid, customer__id=eid, interaction__sentiment=(i % 10) / 10)
                with self._lock:
                    self.sent[eid] = b
                try:
                    r = c.post("/decide", json=b)
                except httpx.TransportError:  # killed mid-request: the answer never came
                    return
                with self._lock:
                    if r.status_code == 200 and r.json()["logged"]:
                        self.acked[eid] = r.json()
                    else:
                        self.errors.append(f"{eid}: {r.status_code} {r.text[:200]}")
                i += 1

    def join(self) -> None:
        for th in self.threads:
            th.join(timeout=60)
        self.stop.set()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sigkill_under_load_loses_no_answered_decision_and_outcomes_join(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = {} if backend == "sqlite" else {"OFFER_BANDIT_DATABASE_URL": request.getfixturevalue("pg_url")}
    served = start_service(tmp_path, env)
    load = Load(served)
    try:
        time.sleep(LOAD_SECONDS)
        pids = kill_service(served)
    finally:
        load.stop.set()
        load.join()
        stop_service(served.proc)  # a no-op once killed
    sent, acked = load.sent, load.acked
    assert not any(alive(p) for p in pids)  # the worker too: it runs in a session of its own
    assert len(pids) >= 2 and acked and load.errors == [], (len(sent), load.errors[:5])

    served = start_service(tmp_path, env)  # the same home, log and salt
    try:
        if backend == "sqlite":
            with sqlite3.connect(served.home / "decisions.db") as conn:
                assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        store = served.store()
        try:
            logged = collections.Counter(rec.event_id for rec, _ in iter_joined(store.engine))
            rows = {eid: store.get_decision(eid) for eid in acked}
        finally:
            store.close()
        assert all(logged[eid] == 1 for eid in acked), "an answered decision is missing or logged twice"
        for eid, answer in acked.items():
            rec = rows[eid]
            assert (rec.chosen_id, rec.probability, rec.model_version) == (
                answer["offer_id"], answer["probability"], answer["model_version"]), eid
        unanswered = sorted(set(sent) - set(acked))
        local = threading.local()

        def post(path: str, json: dict) -> httpx.Response:
            if not hasattr(local, "client"):  # one connection per pool thread (a client costs ms to make)
                local.client = served.client()
            return local.client.post(path, json=json)

        def retry(eid: str) -> tuple[str, dict]:
            r = post("/decide", sent[eid])
            assert r.status_code == 200 and r.json()["logged"], r.text
            return eid, r.json()

        def outcome(eid: str) -> tuple[str, dict]:
            made_offer = acked[eid]["offer_id"] != NO_OFFER
            o = ({"event_id": eid, "type": "accepted", "value": 42.0} if made_offer
                 else {"event_id": eid, "type": "nps", "score": 8})
            r = post("/outcome", o)
            assert r.status_code == 200 and r.json()["recorded"] is True, r.text
            return eid, o

        with ThreadPoolExecutor(4) as pool:
            retried = dict(pool.map(retry, list(sent)))
            sent_outcomes = dict(pool.map(outcome, list(acked)))
        # the logged decision, unchanged, marked as a replay
        assert all(retried[eid] == {**answer, "replayed": True} for eid, answer in acked.items())
        store = served.store()
        try:
            joined = {rec.event_id: outs for rec, outs in iter_joined(store.engine)}
        finally:
            store.close()
        assert len(joined) == len(sent)  # every request once, the retried ones included; nothing else
        for eid, o in sent_outcomes.items():
            assert [(x.type, x.value, x.score) for x in joined[eid]] == [(o["type"], o.get("value"), o.get("score"))]
    finally:
        stop_service(served.proc)
    offers = sum(a["offer_id"] != NO_OFFER for a in acked.values())
    record_figure(f"crash safety ({backend}): SIGKILL under load ({THREADS} threads); {len(acked)} decisions answered"
                  f" logged (of them {offers} offers) all in the log once and as answered, with their outcomes joined;"
                  f" {len(unanswered)} unanswered requests retried, {len(sent)} decisions in the log")
