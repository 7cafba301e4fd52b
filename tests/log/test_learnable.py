"""Which logged decisions are learned from: one predicate (``bandit.log.records.learnable``),
and every reader of the log for learning (export, evaluation, retrain, tune) asking it."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from bandit.config.loader import load_config
from bandit.config.settings import Settings
from bandit.deploy.runtime import open_store
from bandit.domain.outcomes import Outcome, RewardConfig
from bandit.learn.evaluation import eval_set
from bandit.log.dsjson import dsjson_lines
from bandit.log.reader import iter_joined
from bandit.log.records import DecisionRecord, learnable

T0 = 1_800_000_000.0
HOUR = 3600.0


def rec(eid: str, ts: float, *, activated: bool = True, mode: str = "online") -> DecisionRecord:
    ids = ["no_offer", "fiber_upgrade"]
    return DecisionRecord(eid, ts, mode, "m", ids, [0.5, 0.5], 1, activated, customer_key="k",
                          payload={"offer_value": 10.0, "shared": {"context": {"x": 1.0}},
                                   "actions": [{"offer": {f"id={a}": 1.0}} for a in ids]})


def test_learnable_is_shown_and_with_as_of_its_window_closed() -> None:
    cfg = RewardConfig(window_hours=2)
    assert learnable(rec("a", T0), cfg, T0 + 2 * HOUR)  # the window closes at t + window_hours, inclusive
    assert not learnable(rec("a", T0), cfg, T0 + 2 * HOUR - 1)
    assert not learnable(rec("a", T0, activated=False), cfg, T0 + 100 * HOUR)  # never shown
    assert learnable(rec("a", T0), cfg, None) and not learnable(rec("a", T0, activated=False), cfg, None)
    for mode in ("online", "cold_start", "control", "apprentice", "imported"):  # every mode counts
        assert learnable(rec("a", T0, mode=mode), cfg, T0 + 2 * HOUR)


def test_every_reader_for_learning_keeps_exactly_the_learnable(settings: Settings) -> None:
    """DSJSON export (no ``as_of``), off-policy evaluation and the retrain/tune window agree
    with the predicate on a log holding every case."""
    from flows.retrain import Window, load_window

    cfg = load_config(settings).policy.reward
    as_of = T0 + 10 * 24 * HOUR
    w = cfg.window_hours * HOUR
    log = [rec("closed", as_of - w - 60), rec("closed-control", as_of - w - 30, mode="control"),
           rec("never-shown", as_of - w - 20, activated=False), rec("open", as_of - w + 60),
           rec("open-never-shown", as_of - 60, activated=False)]
    store = open_store(settings)
    try:
        store.log_decisions(log)
        store.add_outcome(Outcome("closed", "accepted", as_of - w, value=20.0))
        pairs = list(iter_joined(store.engine))
        expected = [r.event_id for r in log if learnable(r, cfg, as_of)]
        assert expected == ["closed", "closed-control"]
        assert [r.event_id for r in eval_set(pairs, cfg, as_of).records] == expected
        exported = [json.loads(line)["EventId"] for line in dsjson_lines(store, cfg)]
        assert exported == [r.event_id for r in log if learnable(r, cfg, None)] == ["closed", "closed-control", "open"]
    finally:
        store.close()
    assert [r.event_id for r, _ in load_window(settings, cfg, Window(as_of, 30))] == expected


@settings_(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=0, max_size=25),
       st.integers(0, 60), st.integers(1, 3), st.integers(0, 40), st.integers(1, 50))
def test_the_streamed_reader_keeps_what_the_predicate_keeps_in_the_logs_order(
        tmp_path_factory: pytest.TempPathFactory, log: list[tuple[int, bool]], as_of_h: int, window_h: int,
        since_h: int, length_h: int) -> None:
    """``iter_learnable`` (the filter in SQL) and ``count_learnable`` against ``learnable`` over
    ``iter_joined``, on logs with ties in time, decisions never shown, windows open and
    closed; and the same decisions after a key as after their position."""
    from bandit.log.reader import count_learnable, iter_learnable
    from bandit.log.store import DecisionStore

    cfg = RewardConfig(window_hours=window_h)
    as_of, since, until = T0 + as_of_h * HOUR, T0 + since_h * HOUR, T0 + (since_h + length_h) * HOUR
    store = DecisionStore(f"sqlite:///{tmp_path_factory.mktemp('log') / 'log.db'}")
    try:
        store.log_decisions([rec(f"e{i:02d}", T0 + h * HOUR, activated=shown) for i, (h, shown) in enumerate(log)])
        store.add_outcomes([Outcome(f"e{i:02d}", "accepted", T0 + h * HOUR + 60, value=float(i))
                            for i, (h, _) in enumerate(log) if i % 2])
        want = [(r.event_id, [o.value for o in outs]) for r, outs in iter_joined(store.engine, since, until)
                if learnable(r, cfg, as_of)]
        got = [(r.event_id, [o.value for o in outs])
               for r, outs in iter_learnable(store.engine, cfg, since, until, as_of, yield_per=3)]
        assert got == want
        assert count_learnable(store.engine, cfg, since, until, as_of) == len(want)
        if want:
            k = len(want) // 2
            key = next((r.ts, r.event_id) for r, _ in iter_learnable(store.engine, cfg, since, until, as_of)
                       if r.event_id == want[k][0])
            assert [r.event_id for r, _ in iter_learnable(store.engine, cfg, since, until, as_of, after=key)] == \
                [e for e, _ in want[k + 1:]]
    finally:
        store.close()
