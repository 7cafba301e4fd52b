"""Replicas on one PostgreSQL log: two real service processes (`offer-bandit serve`),
started at the same moment on an empty schema, share the decision log, the contact
history and the kill switch.

Traffic goes through both at once from client threads. Each customer's contacts are
sequential (one interaction at a time) and alternate between the replicas, so every
contact after the first reaches the other replica than the one before."""

from __future__ import annotations

import threading
from pathlib import Path
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from bandit.decide.decider import customer_key
from conftest import ADMIN_KEY, CHANNEL_KEY, REPO, Served, body, pg_schema, start_replicas, stop_service

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

APP = "offer-bandit-replica-test"
SALT = "served-salt"  # start_service's, the same for every replica
REFRESH = 1.0  # OFFER_BANDIT_SUSPENSION_REFRESH_SECONDS
CUSTOMERS, CONTACTS, THREADS, DUPLICATES = 160, 4, 8, 40
POOL = 3  # OFFER_BANDIT_DATABASE_POOL_SIZE: below the client threads, so that the bound is what holds
CAPACITY_OFFER = """
  - id: callback_with_capacity
    title: Callback from the one sales specialist on duty
    family: sales_contact
    value: 90
    channels: [messaging]
    capacity: {max_offers: 3, per: day}
    templates:
      messaging: "A specialist can call you back today. Want that?"
"""
KILLED = "fiber_upgrade"  # eligible for body()'s advisory phone request


@dataclass
class Cluster:
    """The replicas, their log, and every decision they answered (2xx, logged)."""

    replicas: list[Served]
    url: str
    catalog: Path
    answered: dict[str, dict] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    def _client(self, i: int, key: str = CHANNEL_KEY) -> httpx.Client:
        clients = self._local.__dict__.setdefault("clients", {})
        if (i, key) not in clients:
            clients[i, key] = httpx.Client(base_url=self.replicas[i].url, headers={"X-API-Key": key}, timeout=30)
        return clients[i, key]

    def decide(self, i: int, customer: str, **over: object) -> dict:
        r = self._client(i).post("/decide", json=body(customer__id=customer, **over))
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["logged"], d
        with self._lock:
            self.answered[d["event_id"]] = d
        return d

    def post(self, i: int, path: str, json: dict | None = None, admin: bool = False) -> dict:
        r = self._client(i, ADMIN_KEY if admin else CHANNEL_KEY).post(path, json=json)
        assert r.status_code == 200, r.text
        return r.json()

    def query(self, sql: str) -> list[tuple]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as c:
                return [tuple(r) for r in c.execute(text(sql))]
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("replicas")
    policy = tmp / "policy.yaml"  # cold start exploring widely, so that most first contacts get an offer
    policy.write_text("exploration: {cold_start_epsilon: 0.9}\n")
    catalog = tmp / "offers.yaml"  # the example's, and an offer with a capacity that only messaging sees
    catalog.write_text((REPO / "config/offers.yaml").read_text() + CAPACITY_OFFER)
    with pg_schema() as url:
        # tagged, so that the replicas' connections can be told from other clients of the server
        url = make_url(url).update_query_dict({"application_name": APP}).render_as_string(hide_password=False)
        replicas = start_replicas(tmp, 2, url, {"OFFER_BANDIT_POLICY": str(policy), "OFFER_BANDIT_CATALOG": str(catalog),
                                                "OFFER_BANDIT_SUSPENSION_REFRESH_SECONDS": str(REFRESH),
                                                "OFFER_BANDIT_DATABASE_POOL_SIZE": str(POOL)})
        try:
            yield Cluster(replicas, url, catalog)
        finally:
            stop_service(*(r.proc for r in replicas))


@dataclass
class Traffic:
    contacts: dict[str, list[tuple[int, dict]]]  # customer -> (replica, answer) in order
    duplicates: list[tuple[dict, dict]]  # one client event id, answered by each replica
    outcomes: int
    seconds: float
    connections: int  # the most connections both replicas held at once (pg_stat_activity)


@pytest.fixture(scope="module")
def traffic(cluster: Cluster) -> Traffic:
    """Concurrent decisions and outcomes through both replicas; plus, for some event ids,
    the same request to both replicas at the same moment (a client retrying elsewhere)."""
    contacts: dict[str, list[tuple[int, dict]]] = {}
    outcomes = [0]
    lock = threading.Lock()

    def customer(n: int) -> None:
        cid = f"rep-c{n}"
        seen = []
        for k in range(CONTACTS):
            replica = (n + k) % 2
            d = cluster.decide(replica, cid)
            seen.append((replica, d))
            if d["offer_id"] != "no_offer":  # the outcome arrives through the other replica
                kind = "accepted" if n % 2 else "declined"
                got = cluster.post(1 - replica, "/outcome", {"event_id": d["event_id"], "type": kind})
                assert got["recorded"], got
                with lock:
                    outcomes[0] += 1
        contacts[cid] = seen

    def duplicate(n: int) -> tuple[dict, dict]:
        barrier = threading.Barrier(2)

        def send(i: int) -> dict:
            barrier.wait()
            return cluster.decide(i, f"rep-dup{n}", event_id=f"rep-dup-{n}")

        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(send, (0, 1))
        return a, b

    peak, done = [0], threading.Event()

    def count_connections() -> None:
        engine = create_engine(make_url(cluster.url).set(query={}))
        with engine.connect() as c:
            while not done.wait(0.05):
                n = c.execute(text("select count(*) from pg_stat_activity where application_name = :a"),
                              {"a": APP}).scalar()
                peak[0] = max(peak[0], n)
                c.rollback()
        engine.dispose()

    sampler = threading.Thread(target=count_connections)
    sampler.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(customer, range(CUSTOMERS)))
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    dups = [duplicate(n) for n in range(DUPLICATES)]
    t = Traffic(contacts, dups, outcomes[0], seconds, peak[0])
    n = CUSTOMERS * CONTACTS
    size = cluster.query("select ((select sum(pg_total_relation_size(relid)) from pg_partition_tree('decisions')) "
                         "/ count(*))::bigint from decisions")[0][0]  # the table is partitioned: its days summed
    print(f"\nreplicas: {n} decisions and {t.outcomes} outcomes through 2 replicas from {THREADS} client "
          f"threads in {seconds:.1f} s: {n / seconds:.0f} decisions/s, {(n + t.outcomes) / seconds:.0f} requests/s; "
          f"at most {peak[0]} connections to PostgreSQL from both replicas; {size} bytes per logged decision "
          "(table, indexes and TOAST)")
    return t


def test_each_replica_holds_at_most_twice_its_pool_size_connections(traffic: Traffic) -> None:
    """DATABASE_POOL_SIZE bounds a replica's connections: as many for the decisions' async
    path, as many for everything else (outcomes here, through FastAPI's threads)."""
    assert 0 < traffic.connections <= 2 * 2 * POOL, traffic.connections


def test_every_answered_decision_is_in_the_shared_log_exactly_once(cluster: Cluster, traffic: Traffic) -> None:
    rows = cluster.query("select event_id, chosen_id from decisions")
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(cluster.answered), "the log holds exactly the answered decisions, nothing else"
    for (a, b) in traffic.duplicates:  # one event id sent to both replicas at once: one decision
        assert a["event_id"] == b["event_id"]
        assert (a["offer_id"], a["probability"]) == (b["offer_id"], b["probability"])
    chosen = dict(rows)
    assert all(chosen[e] == d["offer_id"] for e, d in cluster.answered.items())
    assert cluster.query("select count(*) from outcomes")[0][0] == traffic.outcomes > 0


def test_the_frequency_cap_holds_across_replicas(cluster: Cluster, traffic: Traffic) -> None:
    """max_offers 1 per 7 days: after a customer's offer on one replica, the next contact
    (on the other replica) and every one after it is capped."""
    crossed = 0
    for cid, seen in traffic.contacts.items():
        first = next((k for k, (_, d) in enumerate(seen) if d["offer_id"] != "no_offer"), None)
        if first is None:
            continue
        for replica, d in seen[first + 1:]:
            assert d["offer_id"] == "no_offer", (cid, seen)
            assert {e["reason"] for e in d["excluded"]} == {"frequency_cap"}, (cid, d)
        if first + 1 < len(seen):
            assert seen[first + 1][0] != seen[first][0]
            crossed += 1
    assert crossed >= CUSTOMERS // 2, f"only {crossed} customers had a contact after their offer"
    # and in the log itself: at most one offer shown per customer
    per_customer = dict(cluster.query(
        "select customer_key, count(*) from decisions where activated and chosen_id <> 'no_offer' "
        "group by customer_key"))
    keys = {customer_key(SALT, cid) for cid in traffic.contacts}
    assert max(per_customer[k] for k in keys if k in per_customer) == 1


def simultaneous_posts(targets: list[tuple[str, dict]], key: str = CHANNEL_KEY) -> list[dict]:
    """POST each (base url + path, JSON body) at the same moment: every connection is opened
    first, then the requests' bytes are written one after another (microseconds apart, far
    closer than client threads can), then the answers are read."""
    import http.client
    import json as jsonlib
    import socket
    from urllib.parse import urlsplit

    socks, payloads = [], []
    for url, payload in targets:
        u = urlsplit(url)
        data = jsonlib.dumps(payload).encode()
        head = (f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nX-API-Key: {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
        socks.append(socket.create_connection((u.hostname, u.port), timeout=30))
        payloads.append(head + data)
    try:
        for sock, data in zip(socks, payloads, strict=True):
            sock.sendall(data)
        answers = []
        for sock in socks:
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 200, resp.read()
            answers.append(jsonlib.loads(resp.read()))
        return answers
    finally:
        for sock in socks:
            sock.close()


def test_simultaneous_decisions_for_one_customer_across_replicas_make_at_most_one_offer(
        cluster: Cluster) -> None:
    """50 decisions for one eligible customer sent at once, alternating between the two
    replicas: the cap (max_offers 1) is counted again inside each commit under a
    per-customer lock, so at most one of them is an offer, in the answers and in the log."""
    n, cid = 50, "rep-burst"
    answers = simultaneous_posts([(cluster.replicas[k % 2].url + "/decide", body(customer__id=cid))
                                  for k in range(n)])
    assert all(d["logged"] for d in answers)
    offers = [d for d in answers if d["offer_id"] != "no_offer"]
    assert len(offers) <= 1, offers
    key = customer_key(SALT, cid)
    assert cluster.query(f"select count(*) from decisions where customer_key = '{key}' "
                         "and chosen_id <> 'no_offer'")[0][0] == len(offers)
    assert cluster.query(f"select count(*) from contacts where customer_key = '{key}' "
                         "and kind = 'shown'")[0][0] == len(offers)
    print(f"\nfrequency cap: {n} simultaneous decisions for one customer on 2 replicas, {len(offers)} offer")


def test_a_capacity_of_3_a_day_yields_exactly_3_offers_in_50_simultaneous_decisions_on_2_replicas(
        cluster: Cluster) -> None:
    """Distinct customers (no frequency cap in play), the offer the only candidate: each
    replica counts the offer's uses again inside its commit under a per-offer lock."""
    offer = "callback_with_capacity"
    answers = simultaneous_posts([(cluster.replicas[k % 2].url + "/decide",
                                   body(customer__id=f"cap-{k}", channel="messaging", candidates=[offer]))
                                  for k in range(50)])
    assert all(d["logged"] for d in answers)
    made = [d for d in answers if d["offer_id"] == offer]
    assert len(made) == 3, [d["offer_id"] for d in answers]
    assert cluster.query(f"select count(*) from decisions where chosen_id = '{offer}'")[0][0] == 3
    assert cluster.query(f"select count(*) from offer_uses where offer_id = '{offer}'")[0][0] == 3
    refused = sum(any(e["reason"] == "capacity" for e in d["excluded"]) for d in answers)
    print(f"\ncapacity: 50 simultaneous decisions on 2 replicas, 3 offers made, {refused} refused for capacity")


def test_a_reload_on_one_replica_is_served_by_the_other_within_the_refresh_interval(cluster: Cluster) -> None:
    """The replicas share one catalog file (as a config map would): it is edited, one replica
    is told to reload, the other serves the published catalog within its config refresh
    interval (2 s) without being told."""
    catalog = cluster.catalog
    original = catalog.read_text()
    before = [cluster._client(i).get("/readyz").json() for i in (0, 1)]
    assert before[0]["catalog_version"] == before[1]["catalog_version"]
    catalog.write_text(original.replace("title: Premium bundle for high-value customers", "title: Premium bundle"))
    try:
        told = cluster.post(0, "/admin/reload", admin=True)
        assert told["published"] > 0 and told["catalog_version"] != before[0]["catalog_version"]
        t0 = time.monotonic()
        while cluster._client(1).get("/readyz").json()["catalog_version"] != told["catalog_version"]:
            assert time.monotonic() - t0 < 2.0 + 2.0, "replica 1 still serves the old catalog"
            time.sleep(0.1)
        took = time.monotonic() - t0
        seen = cluster._client(1).get("/readyz").json()
        assert seen["published"] == told["published"] and seen["policy_version"] == told["policy_version"]
        offers = {o["id"]: o["title"] for o in cluster._client(1).get("/offers").json()["offers"]}
        assert offers["premium_bundle"] == "Premium bundle"
        print(f"\nfleet: replica 1 served the catalog replica 0 reloaded {took:.2f} s later (refresh 2 s)")
    finally:
        catalog.write_text(original)
        back = cluster.post(1, "/admin/reload", admin=True)
        assert back["catalog_version"] == before[0]["catalog_version"]


def test_a_kill_switch_set_through_one_replica_is_obeyed_by_all_within_the_refresh_interval(
        cluster: Cluster) -> None:
    seq = iter(range(10**6))

    def excluded_on(i: int) -> tuple[float, bool]:
        sent = time.monotonic()
        d = cluster.decide(i, f"rep-kill{next(seq)}")  # a new customer each time: no cap applies
        return sent, any(e["offer_id"] == KILLED and e["reason"] == "suspended" for e in d["excluded"])

    assert not excluded_on(0)[1] and not excluded_on(1)[1]
    cluster.post(0, f"/admin/offers/{KILLED}/suspend", {"reason": "replica test"}, admin=True)
    t0 = time.monotonic()
    seen: list[tuple[int, float, bool]] = []
    while time.monotonic() - t0 < REFRESH + 1.0:
        for i in (0, 1):
            sent, excl = excluded_on(i)
            seen.append((i, sent - t0, excl))
    assert all(excl for i, _, excl in seen if i == 0), "the replica it was set through obeys at once"
    late = [(at, excl) for i, at, excl in seen if i == 1 and at >= REFRESH + 0.1]
    assert late and all(excl for _, excl in late), seen
    stale = max((at for i, at, excl in seen if i == 1 and not excl), default=0.0)
    offers = cluster._client(1).get("/offers").json()["offers"]
    assert {o["id"]: o["status"] for o in offers}[KILLED] == "suspended"
    print(f"\nkill switch: replica 1 still saw the offer as eligible {stale:.2f} s after the suspension "
          f"(refresh interval {REFRESH:g} s)")

    cluster.post(1, f"/admin/offers/{KILLED}/resume", admin=True)
    time.sleep(REFRESH + 0.1)
    assert not excluded_on(0)[1] and not excluded_on(1)[1]
