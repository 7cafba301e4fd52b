"""Reading the log for training, evaluation, monitoring and export.

Off the request path: these reads go through SQLAlchemy, in the log's order
``(ts, event_id)``. ``iter_joined`` pages through every decision (keyset pagination), so a
long window is never one result set; ``iter_learnable`` streams only the learnable ones
(the filter in SQL) for retraining and tuning, which read windows of millions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bandit.domain.outcomes import Outcome, RewardConfig
from bandit.log.records import DecisionRecord, learnable, row_to_record
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


Key = tuple[float, str]
"""A decision's place in the log's order: ``(ts, event_id)``."""


def _learnable_where(q: Any, cfg: RewardConfig, since: float | None, until: float | None,
                     as_of: float | None, after: Key | None) -> Any:
    """``q`` restricted, in SQL, to the learnable decisions (``bandit.log.records.learnable``)
    of ``[since, until)`` after ``after``. The window test is written as the predicate's own
    arithmetic, ``ts + window_hours * 3600 <= as_of`` in doubles, so the database keeps
    exactly the decisions ``learnable`` keeps (the readers below ask it again)."""
    q = q.where(decisions.c.activated.is_(True))
    if as_of is not None:
        q = q.where(decisions.c.ts + cfg.window_hours * 3600 <= as_of)
    if since is not None:
        q = q.where(decisions.c.ts >= since)
    if until is not None:
        q = q.where(decisions.c.ts < until)
    if after is not None:
        q = q.where((decisions.c.ts > after[0]) | ((decisions.c.ts == after[0]) & (decisions.c.event_id > after[1])))
    return q


def count_learnable(engine: Engine, cfg: RewardConfig, since: float | None, until: float | None,
                    as_of: float | None) -> int:
    """How many decisions ``iter_learnable`` would yield: the split of a window by count
    (``bandit.learn.window.Window.cut``) is known before the window is streamed."""
    q = _learnable_where(select(func.count()).select_from(decisions), cfg, since, until, as_of, None)
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def iter_learnable(engine: Engine, cfg: RewardConfig, since: float | None = None, until: float | None = None,
                   as_of: float | None = None, after: Key | None = None, yield_per: int = 2000
                   ) -> Iterator[tuple[DecisionRecord, list[Outcome]]]:
    """The learnable decisions of ``[since, until)`` (after ``after``, if given) in the log's
    order, each with its outcomes, streamed: one query, decisions joined to their outcomes
    and filtered by the database, read ``yield_per`` rows at a time (PostgreSQL: a
    server-side cursor; SQLite's cursor steps through the result as it is read).

    Why not ``iter_joined``: it pages with a fresh query per 5,000 decisions and a second
    one for their outcomes, and hands every decision to the caller to filter; a retrain of
    ten million decisions then held them all. Here nothing is kept: the caller keeps what
    it needs (a DSJSON line for VW, the columns of off-policy evaluation). Stop reading
    early (``break``, or close the generator) and the cursor is closed."""
    o = outcomes
    q = select(decisions, o.c.type.label("o_type"), o.c.ts.label("o_ts"), o.c.value.label("o_value"),
               o.c.score.label("o_score")).select_from(decisions.outerjoin(o, o.c.event_id == decisions.c.event_id))
    q = _learnable_where(q, cfg, since, until, as_of, after).order_by(decisions.c.ts, decisions.c.event_id, o.c.id)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=yield_per).execute(q)
        current: DecisionRecord | None = None
        outs: list[Outcome] = []
        for row in result:
            m = row._mapping
            if current is None or m["event_id"] != current.event_id:
                if current is not None:
                    yield current, outs
                current, outs = row_to_record(m), []
                if not learnable(current, cfg, as_of):  # the database's filter is the predicate's
                    raise AssertionError(f"decision {current.event_id} read as learnable, but it is not")
            if m["o_type"] is not None:
                outs.append(Outcome(current.event_id, m["o_type"], m["o_ts"], m["o_value"], m["o_score"]))
        if current is not None:
            yield current, outs
