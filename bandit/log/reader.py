"""Reading the log for training, evaluation, monitoring and export.

Off the request path: these reads go through SQLAlchemy and page through the log in
time order (keyset pagination on ``(ts, event_id)``), so a long window is never one
result set.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bandit.domain.outcomes import Outcome
from bandit.log.records import DecisionRecord, row_to_record
from bandit.log.schema import decisions, outcomes


def iter_joined(
    engine: Engine, since: float | None = None, until: float | None = None, batch: int = 5000
) -> Iterator[tuple[DecisionRecord, list[Outcome]]]:
    """Decisions in ``[since, until)`` in time order, each with its outcomes."""
    last: tuple[float, str] | None = None
    while True:
        q = select(decisions).order_by(decisions.c.ts, decisions.c.event_id).limit(batch)
        if since is not None:
            q = q.where(decisions.c.ts >= since)
        if until is not None:
            q = q.where(decisions.c.ts < until)
        if last is not None:
            q = q.where(
                (decisions.c.ts > last[0]) | ((decisions.c.ts == last[0]) & (decisions.c.event_id > last[1]))
            )
        with engine.connect() as conn:
            rows = conn.execute(q).all()
            if not rows:
                return
            ids = [r.event_id for r in rows]
            outs: dict[str, list[Outcome]] = {}
            for r in conn.execute(
                select(outcomes).where(outcomes.c.event_id.in_(ids)).order_by(outcomes.c.id)
            ):
                outs.setdefault(r.event_id, []).append(Outcome(r.event_id, r.type, r.ts, r.value, r.score))
        for r in rows:
            yield row_to_record(r._mapping), outs.get(r.event_id, [])
        last = (rows[-1].ts, rows[-1].event_id)
