"""Nightly retrain at scale: the whole ``retrain`` (read the window, split, train,
evaluate off-policy against the champion and the baselines, log to MLflow, register)
on a log of ``--decisions`` decisions, timed step by step.

The log is built from ``--base`` decisions made through the real decision path (the
contact-center simulator's interactions and responses, as ``training.py`` does), copied with
new event ids and shifted times until it holds ``--decisions`` (making a million
decisions one by one would take longer than what is measured). Every decision lies in
the window and has its reward window closed, so all are learned from or evaluated.

Target (issue 4): a nightly retrain of 1,000,000 decisions within 10 minutes on this
machine. Prints each step's seconds, the total, and the process's peak memory.

    python experiments/bench/retrain.py [--decisions 1000000] [--base 20000] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
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
from bandit.log.reader import iter_joined
from experiments.bench.training import build_log  # noqa: E402


def replicate(store: Any, total: int, shift: float) -> int:
    """Copy the base log (with its outcomes) until it holds ``total`` decisions; copy k is
    shifted by ``k * shift`` seconds and its event ids get the suffix ``-k``."""
    base = list(iter_joined(store.engine))
    n, k = len(base), 1
    while n < total:
        take = base[: total - n]
        store.log_many([dataclasses.replace(r, event_id=f"{r.event_id}-{k}", ts=r.ts + k * shift) for r, _ in take])
        store.add_outcomes([dataclasses.replace(o, event_id=f"{o.event_id}-{k}", ts=o.ts + k * shift)
                            for _, outs in take for o in outs])
        n += len(take)
        k += 1
        print(f"  {n:,} decisions", flush=True)
    return n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--decisions", type=int, default=1_000_000, help="size of the log to retrain on")
    p.add_argument("--base", type=int, default=20_000, help="decisions made through the decision path, then copied")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    try:
        print(f"building a log of {args.decisions:,} decisions in {work} ...", flush=True)
        store, live = build_log(work, min(args.base, args.decisions))
        base_span = 3 * min(args.base, args.decisions)  # build_log spaces decisions 3 s apart
        copies = max(1, -(-args.decisions // args.base))
        shift = min(base_span, 3 * 86400 / copies)  # all copies within three days
        total = replicate(store, args.decisions, shift)
        first = next(iter(iter_joined(store.engine, batch=1)))[0].ts  # the log is read in time order
        store.close()
        as_of = first + 7 * 86400 - 60  # the whole log in the 7-day window, every reward window closed

        settings = get_settings(home=work, catalog=REPO / "config/offers.yaml", policy=REPO / "config/policy.yaml",
                                salt="bench")
        from flows.retrain import retrain
        from tracking.runs import experiment

        t = time.perf_counter()
        experiment(settings, "offer-bandit-retrain")  # a fresh MLflow store migrates once (~7 s)
        t_mlflow = time.perf_counter() - t

        times: dict[str, float] = {}

        def timed(name: str, fn: Callable[..., Any], *a: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*a)
            times[name] = times.get(name, 0.0) + time.perf_counter() - t0
            print(f"  {name}: {times[name]:.1f} s", flush=True)
            return out

        print(f"retraining on {total:,} decisions ...", flush=True)
        t = time.perf_counter()
        result = retrain(settings, as_of=as_of, window_days=7, step=timed)
        t_total = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\n{'step':<20} {'seconds':>8}")
        for name, s in times.items():
            print(f"{name:<20} {s:>8.1f}")
        print(f"{'total':<20} {t_total:>8.1f}   (target: 600)")
        print(f"\ntrained on {result.trained_on:,}, evaluated on {result.evaluated_on:,}; version {result.version}, "
              f"promoted: {result.promoted}; peak memory {peak_mb:,.0f} MB; MLflow store set-up {t_mlflow:.1f} s "
              f"(not counted); {os.cpu_count()} cores")
        if args.json:
            args.json.write_text(json.dumps({"decisions": total, "seconds": t_total, "steps": times,
                                             "trained_on": result.trained_on, "evaluated_on": result.evaluated_on,
                                             "peak_mb": peak_mb}, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
