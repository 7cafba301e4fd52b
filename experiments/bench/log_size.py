"""The PostgreSQL log's bytes per decision, partitioned by day as production runs it.

Builds a log of ``--decisions`` simulated decisions through the real decision path (the
contact-center simulator's interactions and outcomes, cold-start policy, one decision every
``--every`` simulated seconds from the next UTC midnight, so that they fill several day
partitions) in a scratch schema of the PostgreSQL server at ``--database-url``, then
prints ``pg_total_relation_size`` (heap, indexes, TOAST) of every table of the log, its
partitions summed, per decision; the scratch schema is dropped afterwards. What the
README's production section sizes the log from.

    python experiments/bench/log_size.py [--decisions 20000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, text  # noqa: E402

from bandit.config.loader import LiveConfig  # noqa: E402
from bandit.config.settings import get_settings  # noqa: E402
from bandit.decide.decider import Decider, ModelSlot  # noqa: E402
from bandit.decide.vw import ColdStart  # noqa: E402
from bandit.log.partitions import DAY, day_start, ensure_ahead  # noqa: E402
from bandit.log.store import DecisionStore  # noqa: E402
from experiments.simulator.traffic import decide_and_respond, interactions, simulator  # noqa: E402

TABLES = ("decisions", "decision_ids", "outcomes", "contacts", "offer_uses")


def table_bytes(conn, table: str) -> int:
    """``pg_total_relation_size`` of ``table`` and of every partition under it."""
    return int(conn.execute(text(
        "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND "
        "(c.relname = :t OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = CAST(:t AS regclass)))"),
        {"t": table}).scalar_one())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--decisions", type=int, default=20_000)
    p.add_argument("--every", type=float, default=20.0, help="simulated seconds between decisions")
    p.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = p.parse_args()
    schema = "log_size_" + uuid.uuid4().hex[:10]
    admin = create_engine(args.database_url)
    with admin.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in args.database_url else "?"
    url = f"{args.database_url}{sep}options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory() as work:
            settings = get_settings(home=Path(work), catalog=REPO / "config/offers.yaml",
                                    policy=REPO / "config/policy.yaml", salt="bench")
            store = DecisionStore(url)
            start = day_start(time.time()) + 2 * DAY
            span = args.decisions * args.every
            ensure_ahead(store.engine, now=start + span, days=1)  # the days the log will fill
            decider = Decider(LiveConfig(settings), store, ModelSlot(ColdStart(0.3)), settings.secret)
            sim = simulator(seed=11, per_day=int(DAY / args.every))
            t0 = time.perf_counter()
            tally = decide_and_respond(decider, sim, interactions(sim, args.decisions),
                                       at=lambda i, _: datetime.fromtimestamp(start, UTC)
                                       + timedelta(seconds=i * args.every))
            built = time.perf_counter() - t0
            with store.engine.connect() as c:
                c.exec_driver_sql("ANALYZE")
                n = c.execute(text("SELECT count(*) FROM decisions")).scalar_one()
                rows = {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
                size = {t: table_bytes(c, t) for t in TABLES}
                parts = c.execute(text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'decisions'::regclass"
                                       )).scalar_one()
            store.close()
    finally:
        with admin.begin() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    total = sum(size.values())
    print(f"{n:,} decisions over {span / DAY:.1f} days ({parts} partitions of decisions), "
          f"{tally.offers:,} offers, built in {built:.0f} s")
    for t in TABLES:
        print(f"  {t:<13} {rows[t]:>8,} rows {size[t]:>12,} bytes  {size[t] / n:>7,.0f} bytes per decision")
    print(f"  {'all':<13} {'':>8}      {total:>12,} bytes  {total / n:>7,.0f} bytes per decision")
    for per_day in (1_000_000, 100_000_000):
        print(f"at {per_day:,} decisions a day: {per_day * total / n / 1e9:,.1f} GB a day")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
