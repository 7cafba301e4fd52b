"""Service benchmark: the real decision service against a bare reference, same load.

Starts, on this machine:
- the real service (``offer-bandit serve``: BentoML, keys, guardrails, contact history,
  VW predict, sampling, rendering, durable logging to SQLite with group commit), serving a
  VW model trained on simulated traffic;
- the bare reference (``experiments/bench/reference_app.py`` under uvicorn): the same JSON
  parsing, featurization and VW predict on the same payloads, nothing else.

Both run side by side and are driven by ``wrk`` with one Lua script that sends varied
decision requests (random customers, channels, request types, tone): first at full load
(fixed connections), in alternating rounds (service, reference, service, ...) so that
the machine's slower and faster spells fall on both; then each at a fixed rate (default
500/s, half the 1,000/s target), where the p99 latency is read. Prints requests/s, p50
and p99 of both (full load: the median round) and the ratio of the median throughputs.

    python experiments/bench/serving.py [--seconds 10] [--rounds 3] [--connections 16] [--rate 500] [--json out.json]
    python experiments/bench/serving.py --database sqlite,postgresql,postgresql-x2 --no-reference --rate 0

``--database`` measures the service on each configuration in one run with the same load:
the SQLite default, one replica on PostgreSQL (a fresh database on 127.0.0.1:5432, or
``OFFER_BANDIT_BENCH_PG_URL``), two replicas on one PostgreSQL database (the connections
split between them, one ``wrk`` each; latencies are the worse replica's). Ratios are to
the first configuration's throughput; ``--rate 0`` runs the fixed-rate part at half of it.

Needs ``wrk`` (Debian: ``apt-get install wrk``). Sends traffic to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
KEY = "bench-key"

from experiments.served import Server, free_port  # noqa: E402

LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "%(key)s"
local channels = {"phone", "chat", "email", "sms", "web"}
local rtypes = {"informational", "diagnostic", "transactional", "advisory", "feedback"}
local tiers = {"standard", "silver", "gold", "platinum"}
local resolved = {"true", "true", "true", "false", "unknown"}
local delay_ms = %(delay_ms)s
function setup(thread) thread:set("id", math.random(1, 1000000)) end
function init(args) math.randomseed(os.time() + id) end
function delay() return delay_ms end
function request()
  local body = string.format(
    '{"channel":"%%s","customer":{"id":"bench-%%d","authenticated":true,"tier":"%%s","tenure_months":%%d,"products":["mobile"],"region":"north"},"interaction":{"request_type":"%%s","resolved":"%%s","sentiment":%%.2f,"distress":%%s}}',
    channels[math.random(#channels)], math.random(1, 10000000), tiers[math.random(#tiers)], math.random(0, 120),
    rtypes[math.random(#rtypes)], resolved[math.random(#resolved)], math.random() * 1.6 - 0.6,
    (math.random() < 0.04) and "true" or "false")
  return wrk.format(nil, nil, nil, body)
end
function done(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %%d, \"seconds\": %%.3f, \"p50_ms\": %%.3f, \"p99_ms\": %%.3f, \"errors\": %%d, \"non2xx\": %%d}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
"""


def train_model(work: Path) -> Path:
    """A real VW model: two simulated days of 1,500 interactions through the decision path
    (cold start), then trained on the log as the nightly retrain does."""
    from bandit.config.loader import LiveConfig
    from bandit.config.settings import get_settings
    from bandit.decide.decider import Decider, ModelSlot
    from bandit.decide.vw import ColdStart
    from bandit.learn.training import train_from_log
    from bandit.log.store import DecisionStore
    from experiments.simulator.traffic import decide_and_respond, interactions, simulator

    settings = get_settings(home=work / "train", catalog=REPO / "config/offers.yaml",
                            policy=REPO / "config/policy.yaml", salt="bench")
    home = settings.ensure_home()
    live = LiveConfig(settings)
    store = DecisionStore(f"sqlite:///{home / 'decisions.db'}", sqlite_synchronous="NORMAL")
    try:
        decider = Decider(live, store, ModelSlot(ColdStart(0.5)), settings.secret)
        sim = simulator(seed=5, per_day=1500)
        decide_and_respond(decider, sim, interactions(sim, 3000))
        model, _ = train_from_log(store, live.current.policy)
    finally:
        store.close()
    path = home / "model.vw"
    model.save(path)
    return path


def wrk(url: str, seconds: int, connections: int, delay_ms: float, work: Path, name: str) -> dict:
    return wrk_all([url], seconds, connections, delay_ms, work, name)


def wrk_all(urls: list[str], seconds: int, connections: int, delay_ms: float, work: Path, name: str) -> dict:
    """One ``wrk`` per URL at once, the ``connections`` split between them (two replicas: 8
    each of 16); throughput summed, latencies the worse replica's (wrk gives percentiles,
    which cannot be merged)."""
    script = work / f"{name}.lua"
    script.write_text(LUA % {"key": KEY, "delay_ms": delay_ms})
    share = [connections // len(urls) + (i < connections % len(urls)) for i in range(len(urls))]
    procs = [subprocess.Popen(["wrk", "-t1", f"-c{c}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for url, c in zip(urls, share, strict=True)]
    runs = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 60)
        m = re.search(r"^JSON (\{.*\})$", out, re.M)
        if not m:
            sys.exit(f"wrk failed: {out}\n{err}")
        r = json.loads(m.group(1))
        r["rps"] = r["requests"] / r["seconds"]
        runs.append(r)
    if len(runs) == 1:
        return runs[0]
    return {"requests": sum(r["requests"] for r in runs), "seconds": max(r["seconds"] for r in runs),
            "rps": sum(r["rps"] for r in runs), "p50_ms": max(r["p50_ms"] for r in runs),
            "p99_ms": max(r["p99_ms"] for r in runs), "errors": sum(r["errors"] for r in runs),
            "non2xx": sum(r["non2xx"] for r in runs), "replicas": runs}


class Target:
    """A configuration under test: one or more servers (replicas) driven as one."""

    def __init__(self, name: str, servers: list[Server], urls: list[str], work: Path):
        self.name, self.servers, self.urls, self.work = name, servers, urls, work

    def full(self, args: argparse.Namespace, tag: str) -> dict:
        return wrk_all(self.urls, args.seconds, args.connections, 0, self.work, f"{self.name}-full-{tag}")

    def rated(self, args: argparse.Namespace, rate: float) -> dict:
        delay_ms = fixed_rate_delay(self.urls, args.connections, rate, self.work, self.name)
        return wrk_all(self.urls, args.seconds, args.connections, delay_ms, self.work, f"{self.name}-rate")

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def start(name: str, cmd: list[str], env: dict, probe: str, work: Path, cwd: Path = REPO) -> Server:
    try:
        return Server(cmd, env, probe, work / f"{name}.log", cwd)
    except RuntimeError as exc:
        sys.exit(str(exc))


def fixed_rate_delay(urls: list[str], connections: int, rate: float, work: Path, name: str) -> float:
    """The pause (ms) after each answer that makes ``connections`` connections send ``rate``
    requests/s: pause + latency = connections/rate seconds, with the latency learned from a
    short calibration run."""
    cycle_ms = 1000.0 * connections / rate
    probe = wrk_all(urls, 3, connections, cycle_ms, work, f"{name}-calibrate")
    latency_ms = max(0.0, 1000.0 * connections / probe["rps"] - cycle_ms)
    return max(0.0, cycle_ms - latency_ms)


def median_run(runs: list[dict]) -> dict:
    """The run with the median throughput (its latencies are that run's own)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


DATABASES = ("sqlite", "postgresql", "postgresql-x2")
PG_URL = os.environ.get("OFFER_BANDIT_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_database(name: str) -> str:
    """A fresh database on the PostgreSQL server of ``PG_URL`` for one configuration."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    eng = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f"drop database if exists {name} with (force)"))
        c.execute(text(f"create database {name}"))
    eng.dispose()
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    eng = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f"drop database if exists {make_url(url).database} with (force)"))
    eng.dispose()


def count_logged(db_url: str) -> int:
    from sqlalchemy import create_engine, text

    eng = create_engine(db_url)
    with eng.connect() as c:
        n = int(c.execute(text("select count(*) from decisions")).scalar_one())
    eng.dispose()
    return n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    p.add_argument("--rounds", type=int, default=3, help="alternating full-load rounds per server")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--rate", type=float, default=500.0,
                   help="target rate of the fixed-rate run (req/s); 0: half the first configuration's throughput")
    p.add_argument("--database", default="sqlite",
                   help=f"the service's configurations to measure, comma separated, from {','.join(DATABASES)} "
                        "(postgresql-x2: two replicas on one database, the connections split between them)")
    p.add_argument("--no-reference", action="store_true", help="leave out the bare reference app")
    p.add_argument("--pool-size", type=int, default=None, help="the PostgreSQL replicas' database_pool_size")
    p.add_argument("--baseline", type=Path, default=None,
                   help="another checkout with its own .venv (git worktree add DIR COMMIT; make install there): each "
                        "configuration is measured from it too, as DB@base, alternating with this tree's")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if args.baseline is not None and not (args.baseline / ".venv/bin/python").exists():
        p.error(f"--baseline: no .venv/bin/python under {args.baseline} (run make install there)")
    databases = [d.strip() for d in args.database.split(",") if d.strip()]
    if not databases or any(d not in DATABASES for d in databases):
        p.error(f"--database: one or more of {', '.join(DATABASES)}, comma separated; got '{args.database}'")
    if not shutil.which("wrk"):
        sys.exit("wrk not found: install it (Debian: apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    print(f"training a model on simulated traffic ... (work dir {work})", flush=True)
    model = train_model(work)
    base_env = {**os.environ, "DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "True"}

    def svc_env(home: str, db_url: str | None, tree: Path) -> dict:
        """A replica's environment; its catalog and policy file are its own tree's (a
        baseline's code may not read this tree's policy file)."""
        env = {**base_env, "OFFER_BANDIT_HOME": str(work / home), "OFFER_BANDIT_API_KEYS": KEY,
               "OFFER_BANDIT_ADMIN_KEY": "bench-admin", "OFFER_BANDIT_MODEL_PATH": str(model),
               "OFFER_BANDIT_CATALOG": str(tree / "config/offers.yaml"), "OFFER_BANDIT_SALT": "bench-salt",
               "OFFER_BANDIT_POLICY": str(tree / "config/policy.yaml")}
        if db_url is not None:
            env["OFFER_BANDIT_DATABASE_URL"] = db_url
            if args.pool_size is not None:
                env["OFFER_BANDIT_DATABASE_POOL_SIZE"] = str(args.pool_size)
        return env

    ref_env = {**base_env, "BENCH_CATALOG": str(REPO / "config/offers.yaml"), "BENCH_MODEL": str(model),
               "PYTHONPATH": str(REPO)}
    uvicorn = Path(sys.executable).with_name("uvicorn")
    targets: list[Target] = []
    db_urls: dict[str, str] = {}
    try:
        trees = [("", REPO, Path(sys.executable))]
        if args.baseline is not None:
            trees.append(("@base", args.baseline.resolve(), args.baseline.resolve() / ".venv/bin/python"))
        for db in databases:
            for suffix, tree, python in trees:
                name = db + suffix
                db_url = None if db == "sqlite" else pg_database(f"bench_{name.replace('-', '_').replace('@', '_')}"
                                                                 f"_{os.getpid()}")
                db_urls[name] = db_url or f"sqlite:///{work / name / 'r1' / 'decisions.db'}"
                servers, urls = [], []
                for i in range(2 if db.endswith("-x2") else 1):
                    print(f"starting {name} replica {i + 1} (offer-bandit serve, {tree}) ...", flush=True)
                    port = free_port()
                    servers.append(start(f"{name}-r{i + 1}", [str(python), "-m", "bandit.cli", "serve", "--port",
                                                              str(port)], svc_env(f"{name}/r{i + 1}", db_url, tree),
                                         f"http://127.0.0.1:{port}/readyz", work, tree))
                    urls.append(f"http://127.0.0.1:{port}/decide")
                targets.append(Target(name, servers, urls, work))
        if not args.no_reference:
            print("starting the reference (bare Starlette + VW predict) ...", flush=True)
            port = free_port()
            ref = start("reference", [str(uvicorn), "experiments.bench.reference_app:app", "--port", str(port),
                                      "--log-level", "warning"], ref_env, f"http://127.0.0.1:{port}/decide", work)
            targets.append(Target("reference", [ref], [f"http://127.0.0.1:{port}/decide"], work))
        for t in targets:
            wrk_all(t.urls, 3, args.connections, 0, work, f"{t.name}-warm")
        # Alternate the full-load runs, so that a slower or faster spell of this (shared)
        # machine falls on all alike; the ratios are those of the medians.
        full: dict[str, list[dict]] = {t.name: [] for t in targets}
        for i in range(args.rounds):
            for t in targets:
                print(f"  round {i + 1}/{args.rounds}: {t.name} at full load, {args.seconds} s", flush=True)
                full[t.name].append(t.full(args, str(i)))
        rate = args.rate or median_run(full[targets[0].name])["rps"] / 2
        rated = {}
        for t in targets:
            print(f"  {t.name} at {rate:.0f} requests/s, {args.seconds} s", flush=True)
            rated[t.name] = t.rated(args, rate)
    finally:
        for t in targets:
            t.stop()
    logged = {db: count_logged(url) for db, url in db_urls.items()}
    for db, url in db_urls.items():
        if not url.startswith("sqlite"):
            drop_database(url)
    results = {t.name: {"full": median_run(full[t.name]), "rate": rated[t.name], "rounds": full[t.name]}
               for t in targets}

    def row(name: str, r: dict) -> str:
        f, q = r["full"], r["rate"]
        return (f"{name:<14} {f['rps']:>9.0f} {f['p50_ms']:>8.2f} {f['p99_ms']:>8.2f} {f['errors'] + f['non2xx']:>7}"
                f" | {q['rps']:>9.0f} {q['p50_ms']:>8.2f} {q['p99_ms']:>8.2f} {q['errors'] + q['non2xx']:>7}")

    print(f"\n{'':<14} {'full load':^35} | {'fixed rate (target ' + str(int(rate)) + '/s)':^35}")
    print(f"{'':<14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} | {'req/s':>9} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'errors':>7}")
    for name, r in results.items():
        print(row(name, r))
    ratios: dict[str, dict] = {}
    base = targets[0].name
    for other in [t.name for t in targets[1:]]:
        per_round = [o["rps"] / b["rps"] for o, b in zip(full[other], full[base], strict=True)]
        ratio = results[other]["full"]["rps"] / results[base]["full"]["rps"]
        ratios[f"{other}/{base}"] = {"median": ratio, "per_round": per_round}
        print(f"throughput ratio {other}/{base} (medians of {args.rounds} alternating rounds): {ratio:.2f};"
              f" per round: {', '.join(f'{x:.2f}' for x in per_round)}")
    print(f"decisions logged: {', '.join(f'{db} {n}' for db, n in logged.items())}")
    sync = os.environ.get("OFFER_BANDIT_SQLITE_SYNCHRONOUS", "FULL")
    print(f"wrk: {args.connections} connections (split between replicas), {args.seconds} s per run; machine: "
          f"{os.cpu_count()} cores; SQLite synchronous={sync}; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ratios": ratios, "rate": rate, "logged": logged,
                                         "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
