"""Training benchmark: the retraining step against raw Vowpal Wabbit on the same data.

Builds a decision log of ``--decisions`` simulated decisions through the real decision
path (SQLite, cold-start policy, the contact-center simulator's interactions and outcomes),
then, in one run:

- exports it to DSJSON (``offer-bandit export-dsjson``'s code) and times the export;
- raw VW: ``python -m vowpalwabbit --dsjson --cb_explore_adf <the policy file's learner
  arguments> -d <export>``, VW's own command-line trainer, timed as a subprocess, less its
  start-up (the same command on an empty file);
- ours, the training step alone: ``bandit.learn.training.train_dsjson_file`` on the same file;
- ours, end to end: ``bandit.learn.training.train_from_log`` (read the learnable decisions
  with their outcomes in SQL order, compute rewards, stream the DSJSON lines into VW's
  driver in a child process), which is what the nightly retrain's train step does.

Prints events/s of each, the ratio of ours to raw VW, and the log's bytes per decision
(the SQLite file after a checkpoint, and the mean ``payload`` length).

    python experiments/bench/training.py [--decisions 200000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bandit.config.loader import LiveConfig  # noqa: E402
from bandit.decide.decider import Decider, ModelSlot  # noqa: E402
from bandit.log.dsjson import export_dsjson  # noqa: E402
from bandit.config.settings import get_settings  # noqa: E402
from bandit.log.store import DecisionStore  # noqa: E402
from bandit.learn.training import train_dsjson_file, train_from_log  # noqa: E402
from bandit.decide.vw import ColdStart  # noqa: E402
from experiments.simulator.traffic import decide_and_respond, interactions, simulator  # noqa: E402


def build_log(work: Path, n: int, seed: int = 11) -> tuple[DecisionStore, LiveConfig]:
    settings = get_settings(home=work, catalog=REPO / "config/offers.yaml", policy=REPO / "config/policy.yaml",
                            salt="bench")
    live = LiveConfig(settings)
    store = DecisionStore(f"sqlite:///{work / 'decisions.db'}", sqlite_synchronous="NORMAL")
    decider = Decider(live, store, ModelSlot(ColdStart(0.3)), settings.secret)
    sim = simulator(seed=seed, per_day=20_000)
    start = datetime(2026, 11, 2, 8, tzinfo=UTC)
    t0 = time.perf_counter()

    def progress(i: int) -> None:
        if i % 20000 == 0:
            print(f"  logged {i:,} decisions ({i / (time.perf_counter() - t0):,.0f}/s)", flush=True)

    # one decision every 3 s of simulated time (200,000 decisions: a week), as the log of a
    # center that size would hold
    decide_and_respond(decider, sim, interactions(sim, n), at=lambda i, _: start + timedelta(seconds=i * 3),
                       progress=progress)
    return store, live


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--decisions", type=int, default=200_000, help="size of the simulated log")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (log, export, models)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-training-"))
    try:
        print(f"building a log of {args.decisions:,} decisions in {work} ...", flush=True)
        store, live = build_log(work, args.decisions)
        policy = live.current.policy
        vw_args = policy.vw_args()

        export = work / "events.json"
        t = time.perf_counter()
        with open(export, "w") as fh:
            stats = export_dsjson(store, fh, policy.reward)
        t_export = time.perf_counter() - t
        events = stats.written
        print(f"exported {events:,} activated decisions to DSJSON in {t_export:.1f} s", flush=True)

        def raw_vw(data: Path) -> float:
            t = time.perf_counter()
            raw = subprocess.run([sys.executable, "-m", "vowpalwabbit", "--dsjson", *vw_args, "-d", str(data),
                                  "--quiet", "-f", str(work / "raw.vw")], capture_output=True, text=True)
            if raw.returncode != 0:
                sys.exit(f"raw VW failed: {raw.stderr[-2000:]}")
            return time.perf_counter() - t

        empty = work / "empty.json"
        empty.write_text("")
        t_start = min(raw_vw(empty) for _ in range(3))  # interpreter and VW start-up, not training
        t_raw = raw_vw(export) - t_start

        t = time.perf_counter()
        _, n_ours = train_dsjson_file(vw_args, export)
        t_ours = time.perf_counter() - t

        t = time.perf_counter()
        _, n_e2e = train_from_log(store, policy)
        t_e2e = time.perf_counter() - t
        with store.engine.connect() as conn:
            payload_bytes = float(conn.exec_driver_sql("SELECT AVG(LENGTH(payload)) FROM decisions").scalar_one())
            logged = int(conn.exec_driver_sql("SELECT COUNT(*) FROM decisions").scalar_one())
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        db_bytes = sum(f.stat().st_size for f in work.glob("decisions.db*"))

        rows = [("raw VW (python -m vowpalwabbit)", events, t_raw), ("ours: training step (train_dsjson_file)", n_ours, t_ours),
                ("ours: from the log (train_from_log)", n_e2e, t_e2e)]
        print(f"\n{'':<38} {'events':>9} {'seconds':>8} {'events/s':>10}")
        for name, n, s in rows:
            print(f"{name:<38} {n:>9,} {s:>8.2f} {n / s:>10,.0f}")
        ratio_step, ratio_e2e = (n_ours / t_ours) / (events / t_raw), (n_e2e / t_e2e) / (events / t_raw)
        print(f"\nratio to raw VW: training step {ratio_step:.2f}, from the log {ratio_e2e:.2f}")
        print(f"raw VW's time excludes its start-up ({t_start:.2f} s, timed on an empty file)")
        print(f"VW arguments: {' '.join(vw_args)}; machine: {os.cpu_count()} cores")
        print(f"log: {db_bytes / logged:,.0f} bytes per decision (SQLite file, {logged:,} decisions, outcomes and "
              f"contacts included), payload {payload_bytes:,.0f} bytes on average")
        if args.json:
            args.json.write_text(json.dumps({"events": events, "raw_seconds": t_raw, "step_seconds": t_ours,
                                             "e2e_seconds": t_e2e, "export_seconds": t_export,
                                             "ratio_step": ratio_step, "ratio_e2e": ratio_e2e,
                                             "bytes_per_decision": db_bytes / logged,
                                             "payload_bytes": payload_bytes}, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
