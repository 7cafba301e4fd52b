"""Soak: the real service at a steady decision rate for minutes, interval by interval.

Starts the service (``offer-bandit serve``: SQLite log with ``synchronous=FULL``, a VW model
trained on simulated traffic, as in ``serving.py``), warms it up, then sends decisions at a
fixed rate for ``--minutes`` and prints, per interval (``--interval`` seconds, default a minute):
the rate achieved, p50 and p99 latency, errors, and the worker's resident memory. At the end:
the memory growth from after the warm-up to the end, and whether the log holds every decision
answered (each request is a new decision, so the log must have grown by at least as many).

    python experiments/bench/soak.py [--minutes 10] [--rate 500] [--client wrk|python] [--database sqlite|postgresql] [--json out.json]

``--client wrk`` (the default; Debian: ``apt-get install wrk``): ``wrk`` with ``serving.py``'s
request script and its fixed-rate schedule (each connection pauses so that pause plus latency
makes connections/rate seconds), one ``wrk`` run per interval. ``--client python``: the
open-loop Python client the test suite uses (``FixedRateLoad``), no ``wrk`` needed; it measures
each latency from the moment the request was due, so a service that falls behind shows it.

Sends traffic to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


@dataclass
class Sample:
    due: float  # when the request was due (seconds since the run's start)
    latency: float  # seconds, from due to answer
    status: int  # 0: no answer (connection error)
    logged: bool


@dataclass
class FixedRateLoad:
    """Open-loop load at a fixed rate from a Python client: request ``i`` is due at
    ``start + i / rate`` whatever became of the earlier ones, and its latency counts from then
    (a client that waited for slow answers before sending the next would hide them).

    ``threads`` clients share the schedule; each takes the next due request, sleeps until it is
    due, sends it and records the answer. Requests are varied decisions (the simulator's
    interactions, ``experiments.simulator.traffic.requests``) over its customer book, so
    contact history grows as in production."""

    url: str
    key: str
    rate: float
    threads: int = 8
    seed: int = 1
    samples: list[Sample] = field(default_factory=list)

    def run(self, seconds: float) -> list[Sample]:
        """Send ``rate * seconds`` decisions; returns this run's samples (also kept in ``samples``)."""
        import httpx

        from experiments.simulator.traffic import requests, simulator

        total = int(self.rate * seconds)
        sim = simulator(seed=self.seed + len(self.samples))
        bodies = [r.model_dump(mode="json", exclude_none=True) for r in requests(sim, total)]
        out: list[Sample] = []
        lock = threading.Lock()
        taken = iter(range(total))
        start = time.perf_counter()

        def client() -> None:
            with httpx.Client(base_url=self.url, headers={"X-API-Key": self.key}, timeout=30) as c:
                while True:
                    with lock:
                        i = next(taken, None)
                    if i is None:
                        return
                    due = start + i / self.rate
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    try:
                        r = c.post("/decide", json=bodies[i])
                        status, logged = r.status_code, r.status_code == 200 and r.json().get("logged") is True
                    except httpx.HTTPError:
                        status, logged = 0, False
                    s = Sample(due - start, time.perf_counter() - due, status, logged)
                    with lock:
                        out.append(s)

        workers = [threading.Thread(target=client, daemon=True) for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        self.samples += out
        return out


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest rank; ``nan`` for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize(samples: list[Sample], seconds: float) -> dict:
    """Rate, p50, p99 (ms) and errors of one interval's samples."""
    latencies = [s.latency * 1000 for s in samples]
    errors = sum(not (s.status == 200 and s.logged) for s in samples)
    return {"requests": len(samples), "rps": len(samples) / seconds, "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99), "errors": errors}


def intervals(samples: list[Sample], seconds: float, count: int) -> Iterator[tuple[float, list[Sample]]]:
    """The samples in ``count`` intervals by when their answer came (so an interval's rate is
    what the service answered in it, as a ``wrk`` run reports); answers after the last
    interval's end count in it."""
    by: dict[int, list[Sample]] = {}
    for s in samples:
        by.setdefault(min(count - 1, int((s.due + s.latency) // seconds)), []).append(s)
    for k in sorted(by):
        yield k * seconds, by[k]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--minutes", type=float, default=10.0, help="length of the soak after the warm-up")
    p.add_argument("--rate", type=float, default=500.0, help="decisions per second")
    p.add_argument("--interval", type=int, default=60, help="seconds per reported interval")
    p.add_argument("--warmup", type=int, default=30, help="seconds of warm-up at the same rate, not reported")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (python client: half as many threads)")
    p.add_argument("--client", choices=["wrk", "python"], default="wrk")
    p.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite",
                   help="the log: SQLite (synchronous=FULL) or a fresh database on the PostgreSQL server of "
                        "OFFER_BANDIT_BENCH_PG_URL (default 127.0.0.1:5432, the asynchronous request path)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if args.client == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk not found: install it (Debian: apt-get install wrk), or use --client python")

    from experiments.bench.serving import KEY, count_logged, drop_database, fixed_rate_delay, pg_database, train_model, wrk
    from experiments.served import Server, free_port, rss_kib, serve_command, worker_pids

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    print(f"training a model on simulated traffic ... (work dir {work})", flush=True)
    model = train_model(work)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "True", "OFFER_BANDIT_HOME": str(work / "svc"),
           "OFFER_BANDIT_API_KEYS": KEY, "OFFER_BANDIT_ADMIN_KEY": "soak-admin", "OFFER_BANDIT_MODEL_PATH": str(model),
           "OFFER_BANDIT_CATALOG": str(REPO / "config/offers.yaml"),
           "OFFER_BANDIT_POLICY": str(REPO / "config/policy.yaml")}
    if args.database == "postgresql":
        env["OFFER_BANDIT_DATABASE_URL"] = db_url = pg_database(f"soak_{os.getpid()}")
    else:
        db_url = f"sqlite:///{work / 'svc' / 'decisions.db'}"
    server = Server(serve_command(port), env, f"{url}/readyz", work / "serve.log")
    rows = []
    try:
        (worker,) = worker_pids(server.proc.pid)
        if args.client == "wrk":
            delay_ms = fixed_rate_delay([f"{url}/decide"], args.connections, args.rate, work, "soak")

            def interval(seconds: int, name: str) -> dict:
                r = wrk(f"{url}/decide", seconds, args.connections, delay_ms, work, name)
                return {"requests": r["requests"], "rps": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                        "errors": r["errors"] + r["non2xx"]}
        else:
            load = FixedRateLoad(url, KEY, args.rate, threads=max(1, args.connections // 2))

            def interval(seconds: int, name: str) -> dict:
                return summarize(load.run(seconds), seconds)

        before = count_logged(db_url)
        print(f"warm-up: {args.warmup} s at {args.rate:.0f}/s ({args.client})", flush=True)
        warm = interval(args.warmup, "warmup")
        rss0 = rss_kib(worker)
        print(f"{'minute' if args.interval == 60 else 'interval':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
              f" {'errors':>7} {'RSS MiB':>8}", flush=True)
        n = max(1, int(round(args.minutes * 60 / args.interval)))
        for i in range(n):
            r = interval(args.interval, f"soak-{i}") | {"rss_kib": rss_kib(worker)}
            rows.append(r)
            print(f"{i + 1:>8} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7}"
                  f" {r['rss_kib'] / 1024:>8.1f}", flush=True)
        rss1 = rss_kib(worker)
    finally:
        server.stop()
    logged_end = count_logged(db_url)
    if args.database == "postgresql":
        drop_database(db_url)
    answered = warm["requests"] + sum(r["requests"] for r in rows)
    logged = logged_end - before
    growth = (rss1 - rss0) / rss0
    errors = warm["errors"] + sum(r["errors"] for r in rows)
    print(f"\n{answered} decisions answered, {logged} logged (at least as many: {logged >= answered}); "
          f"{errors} errors")
    print(f"worker RSS after warm-up {rss0 / 1024:.1f} MiB, at the end {rss1 / 1024:.1f} MiB: growth {growth:+.1%}")
    clients = f"{args.connections} connections" if args.client == "wrk" else f"{max(1, args.connections // 2)} threads"
    print(f"client: {args.client}, {clients}; rate {args.rate:.0f}/s; machine: "
          f"{os.cpu_count()} cores; log: {'SQLite, synchronous=FULL' if args.database == 'sqlite' else 'PostgreSQL'}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "warmup": warm,
                                         "intervals": rows, "rss_kib": [rss0, rss1], "growth": growth,
                                         "answered": answered, "logged": logged, "errors": errors}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if errors == 0 and logged >= answered and growth < 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
