"""How many WAL pages a commit of the decision log writes, by batch size.

A commit's cost on SQLite is mostly the pages it writes to the WAL (and the fsync of
them), so this counts pages rather than timing anything: the WAL's size with automatic
checkpoints off, divided by the frame size, after a number of commits. The count depends
on the schema and the rows, not on how busy the machine is.

Rows are real decisions: varied requests (as ``serving.py`` sends) through the
decision path, on a log that already holds ``--base`` rows.

    python experiments/bench/log_pages.py [--base 100000] [--commits 100] [--explore 0.9] [--customer-index]

``--customer-index`` writes the log as it was before contact history moved into
``contacts`` (schema revision 0002): an index by customer on ``decisions``, no contact rows.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bandit.domain.context import DecisionRequest  # noqa: E402
from bandit.deploy.runtime import build_runtime  # noqa: E402
from bandit.config.settings import get_settings  # noqa: E402
from bandit.log.records import DecisionRow
from bandit.log.store import DecisionStore  # noqa: E402
from bandit.decide.vw import ColdStart  # noqa: E402

CHANNELS = ["phone", "chat", "email", "sms", "web"]
TYPES = ["informational", "diagnostic", "transactional", "advisory", "feedback"]
TIERS = ["standard", "silver", "gold", "platinum"]


def sample_rows(n: int, work: Path, explore: float, seed: int = 1) -> list[DecisionRow]:
    """``n`` decisions' rows from the decision path, every customer new; the cold-start
    policy explores ``explore`` so that a share of them are offers, as with a model."""
    rt = build_runtime(get_settings(home=work / "gen", catalog=REPO / "config/offers.yaml",
                                    policy=REPO / "config/policy.yaml", salt="pages"))
    rt.decider.models.swap(ColdStart(explore))
    rng = random.Random(seed)
    rows = []
    try:
        for i in range(n):
            req = DecisionRequest.model_validate({
                "channel": rng.choice(CHANNELS),
                "customer": {"id": f"c-{seed}-{i}", "authenticated": True, "tier": rng.choice(TIERS),
                             "tenure_months": rng.randint(0, 120), "products": ["mobile"], "region": "north"},
                "interaction": {"request_type": rng.choice(TYPES), "resolved": rng.choice(["true", "true", "false"]),
                                "sentiment": round(rng.uniform(-0.6, 1.0), 2), "distress": rng.random() < 0.04},
            })
            prepared = rt.decider._prepare(req, None)
            rows.append(rt.store.decision_row(prepared.record))  # type: ignore[union-attr]
    finally:
        rt.models.stop()
        rt.store.close()
    return rows


def pages_per_commit(store: DecisionStore, rows: list[DecisionRow], batch: int, commits: int) -> float:
    path = Path(store.engine.url.database)
    with store._cursor() as cur:
        cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.execute("PRAGMA page_size")
        page = cur.fetchone()[0]
    for i in range(commits):
        store.insert_decision_rows(rows[i * batch:(i + 1) * batch])
    wal = path.with_name(path.name + "-wal").stat().st_size - 32  # the WAL header
    return wal / (page + 24) / commits  # each frame: a 24-byte header and a page


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--base", type=int, default=100_000, help="rows in the log before counting (default 100,000)")
    p.add_argument("--commits", type=int, default=100, help="commits counted per batch size (default 100)")
    p.add_argument("--batches", default="1,7,16,64", help="batch sizes (default 1,7,16,64)")
    p.add_argument("--explore", type=float, default=0.9,
                   help="cold-start exploration of the decisions made (default 0.9: about a third are offers)")
    p.add_argument("--customer-index", action="store_true",
                   help="the log before revision 0002: an index by customer on decisions, no contact rows")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-log-pages-"))
    try:
        need = args.base + args.commits * sum(batches)
        print(f"making {need:,} decisions through the decision path ...", flush=True)
        unique = sample_rows(min(need, 20_000), work, args.explore)
        rows = [_renamed(unique[i % len(unique)], i) for i in range(need)]
        if args.customer_index:
            rows = [DecisionRow(r.decision, None) for r in rows]
        store = DecisionStore(f"sqlite:///{work / 'log.db'}")
        try:
            if args.customer_index:
                with store._cursor() as cur:
                    cur.execute("CREATE INDEX ix_decisions_customer_ts ON decisions (customer_key, ts)")
            for i in range(0, args.base, 1000):
                store.insert_decision_rows(rows[i:min(i + 1000, args.base)])
            at = args.base
            chosen = 8  # decisions' column chosen_id
            offers = sum(r.decision[chosen] != "no_offer" for r in rows[:args.base]) / max(args.base, 1)
            print(f"log: {args.base:,} rows ({offers:.0%} offers), synchronous=FULL"
                  f"{', before revision 0002 (index by customer, no contacts)' if args.customer_index else ''}")
            for b in batches:
                n = pages_per_commit(store, rows[at:], b, args.commits)
                at += b * args.commits
                print(f"  {b:>3} rows per commit: {n:6.1f} WAL pages per commit ({n / b:.2f} per row)")
        finally:
            store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _renamed(row: DecisionRow, i: int) -> DecisionRow:
    """``row`` with a fresh event id (time-ordered, as generated ones are) and customer key."""
    key = f"{random.getrandbits(128):032x}"
    decision = (f"{i:012x}{random.getrandbits(80):020x}", row.decision[1], key, *row.decision[3:])
    contact = (key, *row.contact[1:]) if row.contact is not None else None
    return DecisionRow(decision, contact)


if __name__ == "__main__":
    sys.exit(main())
