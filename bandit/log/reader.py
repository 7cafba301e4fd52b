"""Reading the log for training, evaluation, monitoring and export.

Off the request path: these reads go through SQLAlchemy, in the log's order
``(ts, event_id)``. ``iter_joined`` pages through every decision (keyset pagination), so a
long window is never one result set; ``iter_learnable`` streams only the learnable ones
(the filter in SQL) for retraining and tuning, which read windows of millions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import json

from sqlalchemy import func, literal_column, select
from sqlalchemy.engine import Engine

from bandit.domain.outcomes import Outcome, RewardConfig
from bandit.log.records import DecisionRecord, learnable_row, row_to_record
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


def _payload_text(dialect: str, *path: str) -> Any:
    """The text of the JSON value at ``path`` in a decision's payload, read by the database
    (SQLite ``json_extract``; PostgreSQL's ``#>>`` on ``json``, which keeps the stored text):
    an object or an array as its JSON text as stored, a number or a string as itself."""
    if dialect == "sqlite":
        return func.json_extract(decisions.c.payload, "$." + ".".join(path))
    return literal_column(f"(decisions.payload::json #>> '{{{','.join(path)}}}')")


_FEATURE_COLUMNS = ("shared", "actions", "action_ids", "pmf", "chosen_index", "offer_value", "tier")


def _stream(engine: Engine, cfg: RewardConfig, since: float | None, until: float | None, as_of: float | None,
            after: Key | None, yield_per: int, features_as_text: bool) -> Iterator[tuple[Any, list[Outcome]]]:
    """The joined rows of ``iter_learnable`` grouped by decision: (its first row, its outcomes)."""
    o = outcomes
    if features_as_text:
        d = engine.dialect.name
        columns = [c for c in decisions.columns if c.name != "payload"]
        columns += [_payload_text(d, name).label(name) for name in _FEATURE_COLUMNS[:-1]]
        columns.append(_payload_text(d, "context", "customer", "tier").label("tier"))
        columns.append(_payload_text(d, "context", "interaction").label("interaction"))
    else:
        columns = list(decisions.columns)
    q = select(*columns, o.c.type.label("o_type"), o.c.ts.label("o_ts"), o.c.value.label("o_value"),
               o.c.score.label("o_score")).select_from(decisions.outerjoin(o, o.c.event_id == decisions.c.event_id))
    q = _learnable_where(q, cfg, since, until, as_of, after).order_by(decisions.c.ts, decisions.c.event_id, o.c.id)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=yield_per).execute(q)
        first: Any = None
        outs: list[Outcome] = []
        for row in result:
            m = row._mapping
            if first is None or m["event_id"] != first["event_id"]:
                if first is not None:
                    yield first, outs
                first, outs = m, []
                # the database's filter is the predicate's (``learnable``)
                if not learnable_row(m["activated"], m["ts"], cfg, as_of):
                    raise AssertionError(f"decision {m['event_id']} read as learnable, but it is not")
            if m["o_type"] is not None:
                outs.append(Outcome(m["event_id"], m["o_type"], m["o_ts"], m["o_value"], m["o_score"]))
        if first is not None:
            yield first, outs


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
    for m, outs in _stream(engine, cfg, since, until, as_of, after, yield_per, features_as_text=False):
        yield row_to_record(m), outs


def iter_learnable_features(engine: Engine, cfg: RewardConfig, since: float | None = None,
                            until: float | None = None, as_of: float | None = None, after: Key | None = None,
                            yield_per: int = 2000) -> Iterator[tuple[DecisionRecord, list[Outcome], str, str]]:
    """``iter_learnable`` for training: each decision with its outcomes and its features as
    the JSON text the log holds (the shared namespaces' object and the actions' array), cut
    out of the payload by the database; the record's payload has only ``offer_value``, the
    customer's ``tier`` and the interaction (``{"context": {"customer": {"tier": ...},
    "interaction": {...}}}``: what the breakdowns and the rules baseline read).

    Why: parsing each payload in Python (1.5 KB, most of it context, exclusions and content
    that training does not read) was most of a retrain's reading; the features go to VW
    as text anyway (``bandit.log.dsjson.dsjson_text``)."""
    for m, outs in _stream(engine, cfg, since, until, as_of, after, yield_per, features_as_text=True):
        payload: dict[str, Any] = {"offer_value": float(m["offer_value"] or 0.0), "context": {
            "customer": {"tier": m["tier"]}, "interaction": json.loads(m["interaction"] or "{}")}}
        rec = DecisionRecord(
            event_id=m["event_id"], ts=m["ts"], customer_key=m["customer_key"], channel=m["channel"],
            request_type=m["request_type"], mode=m["mode"], model_version=m["model_version"],
            catalog_version=m["catalog_version"], action_ids=json.loads(m["action_ids"]), pmf=json.loads(m["pmf"]),
            chosen_index=int(m["chosen_index"]), activated=bool(m["activated"]), source=m["source"], payload=payload)
        yield rec, outs, m["shared"], m["actions"]
