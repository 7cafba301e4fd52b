"""Which logged decisions are learned from: one predicate (``bandit.log.records.learnable``),
and every reader of the log for learning (export, evaluation, retrain, tune) asking it."""

from __future__ import annotations

import json

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
