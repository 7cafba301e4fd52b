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
    script = work / f"{name}.lua"
    script.write_text(LUA % {"key": KEY, "delay_ms": delay_ms})
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^JSON (\{.*\})$", out.stdout, re.M)
    if not m:
        sys.exit(f"wrk failed: {out.stdout}\n{out.stderr}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / r["seconds"]
    return r


class Target(Server):
    """A server started for the benchmark, stopped with ``stop``."""

    def __init__(self, name: str, cmd: list[str], env: dict, url: str, probe: str, work: Path):
        self.name, self.url, self.work = name, url, work
        try:
            super().__init__(cmd, env, probe, work / f"{name}.log")
        except RuntimeError as exc:
            sys.exit(str(exc))

    def full(self, args: argparse.Namespace, tag: str) -> dict:
        return wrk(self.url, args.seconds, args.connections, 0, self.work, f"{self.name}-full-{tag}")

    def rated(self, args: argparse.Namespace) -> dict:
        delay_ms = fixed_rate_delay(self.url, args.connections, args.rate, self.work, self.name)
        return wrk(self.url, args.seconds, args.connections, delay_ms, self.work, f"{self.name}-rate")


def fixed_rate_delay(url: str, connections: int, rate: float, work: Path, name: str) -> float:
    """The pause (ms) after each answer that makes ``connections`` connections send ``rate``
    requests/s: pause + latency = connections/rate seconds, with the latency learned from a
    short calibration run."""
    cycle_ms = 1000.0 * connections / rate
    probe = wrk(url, 3, connections, cycle_ms, work, f"{name}-calibrate")
    latency_ms = max(0.0, 1000.0 * connections / probe["rps"] - cycle_ms)
    return max(0.0, cycle_ms - latency_ms)


def median_run(runs: list[dict]) -> dict:
    """The run with the median throughput (its latencies are that run's own)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    p.add_argument("--rounds", type=int, default=3, help="alternating full-load rounds per server")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--rate", type=float, default=500.0, help="target rate of the fixed-rate run (req/s)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: install it (Debian: apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    print(f"training a model on simulated traffic ... (work dir {work})", flush=True)
    model = train_model(work)
    base_env = {**os.environ, "DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "True"}

    svc_env = {**base_env, "OFFER_BANDIT_HOME": str(work / "svc"), "OFFER_BANDIT_API_KEYS": KEY,
               "OFFER_BANDIT_ADMIN_KEY": "bench-admin", "OFFER_BANDIT_MODEL_PATH": str(model),
               "OFFER_BANDIT_CATALOG": str(REPO / "config/offers.yaml"),
               "OFFER_BANDIT_POLICY": str(REPO / "config/policy.yaml")}
    ref_env = {**base_env, "BENCH_CATALOG": str(REPO / "config/offers.yaml"), "BENCH_MODEL": str(model),
               "PYTHONPATH": str(REPO)}
    uvicorn = Path(sys.executable).with_name("uvicorn")
    targets: list[Target] = []
    try:
        print("starting the service (offer-bandit serve) and the reference (bare Starlette + VW predict) ...",
              flush=True)
        port = free_port()
        svc = Target("service", [sys.executable, "-m", "bandit.cli", "serve", "--port", str(port)], svc_env,
                     f"http://127.0.0.1:{port}/decide", f"http://127.0.0.1:{port}/readyz", work)
        targets.append(svc)
        port = free_port()
        ref = Target("reference", [str(uvicorn), "experiments.bench.reference_app:app", "--port", str(port),
                                   "--log-level", "warning"], ref_env, f"http://127.0.0.1:{port}/decide",
                     f"http://127.0.0.1:{port}/decide", work)
        targets.append(ref)
        for t in targets:
            wrk(t.url, 3, args.connections, 0, work, f"{t.name}-warm")
        # Alternate the full-load runs, so that a slower or faster spell of this (shared)
        # machine falls on both alike; the ratio is that of the medians.
        full: dict[str, list[dict]] = {"service": [], "reference": []}
        for i in range(args.rounds):
            for t in targets:
                print(f"  round {i + 1}/{args.rounds}: {t.name} at full load, {args.seconds} s", flush=True)
                full[t.name].append(t.full(args, str(i)))
        rated = {}
        for t in targets:
            print(f"  {t.name} at {args.rate:.0f} requests/s, {args.seconds} s", flush=True)
            rated[t.name] = t.rated(args)
    finally:
        for t in targets:
            t.stop()
    logged = subprocess.run([sys.executable, "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1])"
                             ".execute('select count(*) from decisions').fetchone()[0])",
                             str(work / "svc" / "decisions.db")], capture_output=True, text=True).stdout.strip()
    service = {"full": median_run(full["service"]), "rate": rated["service"], "rounds": full["service"]}
    reference = {"full": median_run(full["reference"]), "rate": rated["reference"], "rounds": full["reference"]}

    def row(name: str, r: dict) -> str:
        f, q = r["full"], r["rate"]
        return (f"{name:<10} {f['rps']:>9.0f} {f['p50_ms']:>8.2f} {f['p99_ms']:>8.2f} {f['errors'] + f['non2xx']:>7}"
                f" | {q['rps']:>9.0f} {q['p50_ms']:>8.2f} {q['p99_ms']:>8.2f} {q['errors'] + q['non2xx']:>7}")

    print(f"\n{'':<10} {'full load':^35} | {'fixed rate (target ' + str(int(args.rate)) + '/s)':^35}")
    print(f"{'':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} | {'req/s':>9} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'errors':>7}")
    print(row("service", service))
    print(row("reference", reference))
    ratio = service["full"]["rps"] / reference["full"]["rps"]
    per_round = [s_["rps"] / r_["rps"] for s_, r_ in zip(full["service"], full["reference"], strict=True)]
    print(f"\nthroughput ratio service/reference (medians of {args.rounds} alternating rounds): {ratio:.2f};"
          f" per round: {', '.join(f'{x:.2f}' for x in per_round)}")
    print(f"decisions logged by the service: {logged}")
    sync = os.environ.get("OFFER_BANDIT_SQLITE_SYNCHRONOUS", "FULL")
    print(f"wrk: 1 thread, {args.connections} connections, {args.seconds} s per run; machine: {os.cpu_count()} cores;"
          f" service log: SQLite, synchronous={sync}")
    if args.json:
        args.json.write_text(json.dumps({"service": service, "reference": reference, "ratio": ratio,
                                         "ratio_per_round": per_round,
                                         "logged": int(logged or 0), "args": vars(args) | {"json": str(args.json)}},
                                        indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
