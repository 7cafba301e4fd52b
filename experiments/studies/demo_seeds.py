"""The demo on several seeds, side by side: what `make demo` shows for one seed, judged on many.

Runs ``offer-bandit demo --seed N --json ...`` for each seed (each in its own process and home,
as a user would) and prints one row per seed: on the days a trained model served the bandit,
its revenue per interaction against the oracle's (the share) and the rules', its complaint
rate against the rules'; the first day a trained model served; how many nights the gate
promoted; and the run's wall time. The criteria it checks (issue 13's) are printed with each
row: share >= 90% of the oracle's revenue, complaint rate <= the rules', a trained model
from day 2, promotions on at least 3 of 6 nights, and under 10 minutes.

    .venv/bin/python experiments/studies/demo_seeds.py [--seeds 7 11 42 1 3 2024] [--json out.json]
    .venv/bin/python experiments/studies/demo_seeds.py --seeds 5 --policy my-policy.yaml
    .venv/bin/python experiments/studies/demo_seeds.py --seeds 1 --keep /tmp/demos   # keep each run's home

With ``--keep DIR`` each seed's home (``DIR/home-<seed>``: the demo's decision log and MLflow
store under ``demo/``) and its ``DIR/demo-<seed>.json`` are kept, so the runs can be read in
MLflow and ``offer-bandit tune --home DIR/home-<seed>/demo --policy
DIR/home-<seed>/demo/policy.yaml`` can be run on the demo's log. The JSON rows carry each
night's verdict (``verdicts``) either way.

Each run takes 2 to 6 minutes on a 2-core machine; the seeds run one after another.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SEEDS = (7, 11, 42, 1, 3, 2024)
SHARE, NIGHTS, MINUTES = 0.90, 3, 10.0


def run_seed(seed: int, work: Path, policy: Path | None, days: int) -> dict[str, Any]:
    """One demo run in its own process and home; its JSON result with the wall time."""
    out = work / f"demo-{seed}.json"
    cmd = [str(Path(sys.executable).parent / "offer-bandit"), "demo", "--seed", str(seed), "--days", str(days),
           "--json", str(out), "--home", str(work / f"home-{seed}")]
    if policy is not None:
        cmd += ["--policy", str(policy)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"demo --seed {seed} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return {**json.loads(out.read_text()), "seconds": seconds}


def summary(seed: int, result: dict[str, Any]) -> dict[str, Any]:
    """The row of one seed, with the criteria it meets."""
    p = result["policies"]
    b, rules, oracle = p["bandit"], p["rules"], p["oracle"]
    days = result["days"]
    first_model = next((d["day"] for d in days if d["model"] != "cold-start"), None)
    nights = len(days)
    promoted = sum(1 for d in days if d["promoted"])
    share = b["revenue_per_interaction"] / oracle["revenue_per_interaction"] if oracle["revenue_per_interaction"] else 0
    row = {
        "seed": seed, "served_days": result["policies_days"], "bandit_revenue": b["revenue_per_interaction"],
        "oracle_revenue": oracle["revenue_per_interaction"], "rules_revenue": rules["revenue_per_interaction"],
        "share_of_oracle": share, "bandit_complaint_rate": b["complaint_rate"],
        "rules_complaint_rate": rules["complaint_rate"], "first_model_day": first_model,
        "promotions": promoted, "nights": nights, "minutes": result["seconds"] / 60,
        "verdicts": [d.get("verdict", "") for d in days],
    }
    row["meets"] = {
        "revenue": share >= SHARE,
        "complaints": b["complaint_rate"] <= rules["complaint_rate"],
        "model_from_day_2": first_model == 2,
        "promotions": promoted >= NIGHTS * nights / 6,
        "time": row["minutes"] < MINUTES,
    }
    return row


def render(rows: list[dict[str, Any]]) -> str:
    head = (f"{'seed':>5} {'bandit':>7} {'oracle':>7} {'share':>6} {'rules':>6} {'compl.':>7} {'rules c.':>8} "
            f"{'1st model':>9} {'promoted':>8} {'min':>5}  unmet")
    lines = [head]
    for r in rows:
        unmet = [k for k, ok in r["meets"].items() if not ok]
        lines.append(f"{r['seed']:>5} {r['bandit_revenue']:>7.2f} {r['oracle_revenue']:>7.2f} "
                     f"{r['share_of_oracle']:>6.1%} {r['rules_revenue']:>6.2f} {r['bandit_complaint_rate']:>7.2%} "
                     f"{r['rules_complaint_rate']:>8.2%} {str(r['first_model_day'] or '-'):>9} "
                     f"{r['promotions']:>4}/{r['nights']:<3} {r['minutes']:>5.1f}  {', '.join(unmet) or '-'}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="demo_seeds.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS),
                    help="simulator seeds (default: " + " ".join(map(str, DEFAULT_SEEDS)) + ")")
    ap.add_argument("--days", type=int, default=6, help="simulated days per run (default 6)")
    ap.add_argument("--policy", type=Path, default=None, help="policy file for the demo (default the shipped one)")
    ap.add_argument("--json", type=Path, default=None, help="also write every row as JSON here")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep each seed's home under this directory (home-<seed>), to read its log and MLflow "
                    "runs afterwards (default: a temporary directory, removed)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.policy is not None and not args.policy.is_file():
        sys.exit(f"--policy: no such file: {args.policy}")
    rows = []
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(str(args.keep.resolve())) if args.keep is not None
          else tempfile.TemporaryDirectory(prefix="demo-seeds-")) as d:
        for seed in args.seeds:
            print(f"seed {seed} ...", file=sys.stderr, flush=True)
            rows.append(summary(seed, run_seed(seed, Path(d), args.policy and args.policy.resolve(), args.days)))
            print(render(rows[-1:]).splitlines()[1], file=sys.stderr, flush=True)
    print(render(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
