"""Nightly retrain at scale: the whole ``retrain`` (count the window, train on its older
part streamed into VW, evaluate off-policy against the champion and the baselines on the
held-out part as it streams, log to MLflow, register) on a log of ``--decisions``
decisions, timed step by step, in a process of its own.

The log is built from ``--base`` decisions made through the real decision path (the
contact-center simulator's interactions and responses, as ``training.py`` does), then
copied in SQL (``INSERT ... SELECT`` with new event ids and shifted times, a copy per
statement) until it holds ``--decisions``: making ten million decisions one by one would
take longer than what is measured. Every decision lies in the window and has its reward
window closed, so all are learned from or evaluated.

The retrain runs in a child process (this script with ``--run``), so that its peak
memory is the retrain's alone (not the log builder's): ``peak_mb`` is that process's
peak resident set. ``children_peak_mb`` is the largest of its own children (VW's driver,
and MLflow's helpers), as the kernel counts it: a child forked from the retrain counts the
pages it shares with it, so this is no measure of VW's own memory. ``seconds`` is the
retrain's; ``process_seconds`` the child's whole life (start-up and imports included).

Without ``--champion`` the fresh MLflow store has no champion, so the retrain makes a first
model: trained on the whole window and judged by progressive validation over it (the
policy file's ``promotion.first_model: progressive``). With ``--champion`` a champion is
registered first (trained on the log's first hour, ``train_from_log``; not counted), so the
retrain is the usual nightly one: trained on the older 80%, the candidate and the champion
scored on the newest 20%.

Targets (issue 14): 10,000,000 decisions within 2 GiB peak RSS and 10 minutes;
1,000,000 in under a minute.

With ``--log DIR`` the built log is kept in ``DIR`` and reused by the next run given the
same ``DIR`` (a log of ten million decisions takes longer to copy than to retrain on); the
retrain still runs in a fresh work directory (its own MLflow store), on the kept log.

    python experiments/bench/retrain.py [--decisions 1000000] [--base 20000] [--log DIR] [--champion]
                                        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from bandit.config.settings import get_settings  # noqa: E402

_DECISION_COPY = ("INSERT INTO decisions SELECT event_id || :suffix, ts + :shift, customer_key, channel, request_type, "
                  "mode, model_version, catalog_version, chosen_id, probability, activated, activated_ts + :shift, "
                  "source, payload FROM seed_decisions LIMIT :n")
_OUTCOME_COPY = ("INSERT INTO outcomes (event_id, type, value, score, ts, dedupe) SELECT o.event_id || :suffix, "
                 "o.type, o.value, o.score, o.ts + :shift, o.dedupe FROM seed_outcomes o "
                 "JOIN (SELECT event_id FROM seed_decisions LIMIT :n) d ON d.event_id = o.event_id")


def replicate(db: Path, total: int, shift: float) -> int:
    """Copy the base log's decisions and outcomes in SQL until it holds ``total`` decisions;
    copy k is shifted by ``k * shift`` seconds and its event ids get the suffix ``-k``.
    (Contacts are not copied: a retrain does not read them.)"""
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("CREATE TEMP TABLE seed_decisions AS SELECT * FROM decisions ORDER BY ts, event_id")
        con.execute("CREATE TEMP TABLE seed_outcomes AS SELECT * FROM outcomes")
        n = base = con.execute("SELECT COUNT(*) FROM seed_decisions").fetchone()[0]
        k, t0 = 1, time.perf_counter()
        while n < total:
            take = min(base, total - n)
            params = {"suffix": f"-{k}", "shift": k * shift, "n": take}
            with con:
                con.execute(_DECISION_COPY, params)
                con.execute(_OUTCOME_COPY, params)
            n += take
            k += 1
            if k % 50 == 0 or n >= total:
                print(f"  {n:,} decisions ({n / (time.perf_counter() - t0):,.0f}/s copied)", flush=True)
        return n
    finally:
        con.close()


def count(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])
    finally:
        con.close()


def first_ts(db: Path) -> float:
    con = sqlite3.connect(db)
    try:
        return float(con.execute("SELECT MIN(ts) FROM decisions").fetchone()[0])
    finally:
        con.close()


def make_champion(settings: Any, since: float, until: float) -> tuple[str, int]:
    """Register and promote a champion trained on the log's ``[since, until)`` (the policy
    file's learner, ``train_from_log``), as an earlier night's retrain would have; returns its
    version and how many decisions it learned from."""
    import mlflow

    from bandit.config.loader import load_config
    from bandit.deploy.runtime import open_store
    from bandit.learn.training import train_from_log
    from tracking.policy_model import log_policy_model
    from tracking.registry import Registry
    from tracking.runs import experiment

    store = open_store(settings)
    try:
        model, n = train_from_log(store, load_config(settings).policy, since, until)
    finally:
        store.close()
    mlflow.set_experiment(experiment_id=experiment(settings, "offer-bandit-retrain"))
    with tempfile.TemporaryDirectory() as d, mlflow.start_run(run_name="bench champion"):
        model.save(Path(d) / "model.vw")
        info = log_policy_model(Path(d) / "model.vw", settings.catalog, settings.policy)
        registry = Registry(settings.tracking_uri, settings.registered_model)
        version = registry.register(info.model_uri, {"bench": "champion"})
        registry.promote(version)
    return version, n


def run_retrain(work: Path, as_of: float, out: Path) -> None:
    """The child: one retrain of the 7-day window ending at ``as_of``, each step timed (MLflow
    imported first, as a scheduled flow's worker has it: its import is not the retrain's)."""
    import mlflow  # noqa: F401

    from flows.retrain import retrain

    settings = get_settings(home=work, catalog=REPO / "config/offers.yaml", policy=REPO / "config/policy.yaml",
                            salt="bench")
    times: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any], *a: Any) -> Any:
        t0 = time.perf_counter()
        result = fn(*a)
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  {name}: {times[name]:.1f} s (peak so far {rss:,.0f} MB)", flush=True)
        return result

    t = time.perf_counter()
    result = retrain(settings, as_of=as_of, window_days=7, step=timed)
    seconds = time.perf_counter() - t
    out.write_text(json.dumps({
        "seconds": seconds, "steps": times, "trained_on": result.trained_on, "evaluated_on": result.evaluated_on,
        "version": result.version, "promoted": result.promoted,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--decisions", type=int, default=1_000_000, help="size of the log to retrain on")
    p.add_argument("--base", type=int, default=20_000, help="decisions made through the decision path, then copied")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--log", type=Path, help="keep the built log in this directory, or reuse the one it holds")
    p.add_argument("--build-only", action="store_true", help="build the log (in --log) and stop")
    p.add_argument("--champion", action="store_true",
                   help="register a champion first (trained on the log's first hour, not counted): the usual nightly "
                   "retrain, judged on the held-out 20%%; without it, a first model judged by progressive validation")
    p.add_argument("--run", nargs=3, metavar=("WORK", "AS_OF", "OUT"), help=argparse.SUPPRESS)  # the child
    args = p.parse_args()
    if args.run:
        run_retrain(Path(args.run[0]), float(args.run[1]), Path(args.run[2]))
        return 0
    if args.decisions < 1 or args.base < 1:
        p.error("--decisions and --base must be positive")
    from experiments.bench.training import build_log
    from tracking.runs import experiment

    if args.build_only and args.log is None:
        p.error("--build-only needs --log DIR")
    work = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    try:
        built = args.log if args.log is not None else work
        db = built / "decisions.db"
        t = time.perf_counter()
        if not db.exists():
            built.mkdir(parents=True, exist_ok=True)
            print(f"building a log of {args.decisions:,} decisions in {built} ...", flush=True)
            base = min(args.base, args.decisions)
            store, _ = build_log(built, base)
            store.close()
            base_span = 3 * base  # build_log spaces decisions 3 s apart
            copies = max(1, -(-args.decisions // base))
            shift = min(base_span, 3 * 86400 / copies)  # all copies within three days
            replicate(db, args.decisions, shift)
            con = sqlite3.connect(db)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
        else:
            print(f"reusing the log in {db}", flush=True)
        total = count(db)
        if total != args.decisions:
            p.error(f"--log {args.log} holds {total:,} decisions, not --decisions {args.decisions:,}")
        t_build = time.perf_counter() - t
        if args.build_only:
            return 0
        if built != work:
            (work / "decisions.db").symlink_to(db.resolve())
        as_of = first_ts(db) + 7 * 86400 - 60  # the whole log in the 7-day window, every reward window closed
        size = db.stat().st_size + sum(f.stat().st_size for f in built.glob("decisions.db-*"))
        print(f"log built in {t_build:.0f} s: {size / 1e9:.2f} GB, {size / total:,.0f} bytes per decision", flush=True)

        settings = get_settings(home=work, catalog=REPO / "config/offers.yaml", policy=REPO / "config/policy.yaml",
                                salt="bench")
        t = time.perf_counter()
        experiment(settings, "offer-bandit-retrain")  # a fresh MLflow store migrates once (~7 s): not counted
        t_mlflow = time.perf_counter() - t
        champion = None
        if args.champion:
            t = time.perf_counter()
            champion = make_champion(settings, first_ts(db), first_ts(db) + 3600)
            print(f"champion: version {champion[0]}, trained on {champion[1]:,} decisions of the log's first hour "
                  f"({time.perf_counter() - t:.1f} s, not counted)", flush=True)

        print(f"retraining on {total:,} decisions (a process of its own) ...", flush=True)
        out = work / "retrain.json"
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--run", str(work), repr(as_of), str(out)], check=True)
        t_process = time.perf_counter() - t
        r = json.loads(out.read_text())
        print(f"\n{'step':<20} {'seconds':>8}")
        for name, s in r["steps"].items():
            print(f"{name:<20} {s:>8.1f}")
        print(f"{'total':<20} {r['seconds']:>8.1f}   (target: 600 for 10,000,000; 60 for 1,000,000)")
        print(f"\ntrained on {r['trained_on']:,}, evaluated on {r['evaluated_on']:,}; version {r['version']}, "
              f"promoted: {r['promoted']}; retrain process peak RSS {r['peak_mb']:,.0f} MB (its largest child process "
              f"{r['children_peak_mb']:,.0f} MB); process {t_process:.1f} s with start-up; MLflow store set-up "
              f"{t_mlflow:.1f} s (not counted); log {size / total:,.0f} bytes per decision; {os.cpu_count()} cores")
        if args.json:
            args.json.write_text(json.dumps({"decisions": total, "champion": champion is not None,
                                             "seconds": r["seconds"], "steps": r["steps"],
                                             "trained_on": r["trained_on"], "evaluated_on": r["evaluated_on"],
                                             "peak_mb": r["peak_mb"], "children_peak_mb": r["children_peak_mb"],
                                             "process_seconds": t_process, "build_seconds": t_build,
                                             "log_bytes_per_decision": size / total}, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
