"""The window of a retrain or tuning run and its split by time (``bandit.learn.window``)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from bandit.domain.errors import InvalidRequest, OfferBanditError
from bandit.learn.window import DEFAULT_HOLDOUT, DEFAULT_WINDOW_DAYS, Window, split_window

AS_OF = 1_800_000_000.0
HOLDOUT = st.floats(0, 1, exclude_min=True, exclude_max=True)
DAYS = st.floats(1e-3, 365)
# decision times on an hourly grid: ties are frequent, to check they keep their order
TIMES = st.lists(st.integers(0, 50).map(lambda k: AS_OF - k * 3600.0), max_size=300)


@given(TIMES, DAYS, HOLDOUT)
def test_train_and_holdout_partition_the_items_by_time_and_share(times: list[float], days: float,
                                                                 holdout: float) -> None:
    items = [(ts, i) for i, ts in enumerate(times)]  # (time, arrival order): distinct, so disjointness shows
    w = split_window(AS_OF, days, holdout)
    train, held = w.split(items, ts=lambda it: it[0])
    n = len(items)
    assert sorted(train + held) == sorted(items) and not set(train) & set(held)  # a partition
    assert train + held == sorted(items, key=lambda it: it[0])  # ordered by time, ties as given
    if train and held:
        assert max(ts for ts, _ in train) <= min(ts for ts, _ in held)  # the newest are held out
    assert n * holdout - 1e-9 <= len(held) < n * holdout + 1 + 1e-9  # the holdout share, rounded up
    assert len(held) == n - int(n * (1 - holdout))  # exactly the cut the flows always made


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda h: not 0 < h < 1),
                 st.sampled_from([0, 1, True, None, "0.2"])))
def test_a_holdout_outside_0_1_is_refused_naming_the_option(holdout: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^holdout: must be between 0 and 1 \(exclusive\), got ") as e:
        split_window(AS_OF, 7, holdout)  # type: ignore[arg-type]
    assert isinstance(e.value, OfferBanditError) and "\n" not in str(e.value)


@given(st.one_of(st.floats(max_value=0), st.sampled_from([math.inf, math.nan, None, "7", False])))
def test_a_window_of_no_finite_length_is_refused_naming_the_option(days: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^window_days: must be a positive number of days, got "):
        split_window(AS_OF, days, 0.2)  # type: ignore[arg-type]


def test_the_end_must_be_a_finite_time_and_every_window_is_checked() -> None:
    for as_of in (math.nan, math.inf, None):
        with pytest.raises(InvalidRequest, match="^as_of: must be a finite time"):
            split_window(as_of, 7, 0.2)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="^holdout"):
        Window(AS_OF, 7, 1.0)  # made directly, checked the same
    with pytest.raises(InvalidRequest, match="^holdout"):  # the holdout is named first, as the flows did
        split_window(AS_OF, -1, 2)


def test_the_window_s_span_and_label_are_as_the_flows_tagged_runs() -> None:
    w = split_window(AS_OF, 7, 0.25)
    assert (w.start, w.as_of, w.days, w.holdout) == (AS_OF - 7 * 86400, AS_OF, 7, 0.25)
    assert w.label == f"{AS_OF - 7 * 86400:.0f}-{AS_OF:.0f}" == split_window(AS_OF, 7, 0.5).label
    assert Window(AS_OF, 7) == split_window(AS_OF) and (DEFAULT_WINDOW_DAYS, DEFAULT_HOLDOUT) == (7.0, 0.2)


def test_pairs_from_the_log_split_by_decision_time() -> None:
    from bandit.log.records import DecisionRecord

    recs = [DecisionRecord(f"e{i}", AS_OF - (10 - i) * 60, "online", "m", ["no_offer"], [1.0], 0, True)
            for i in range(10)]
    train, held = split_window(AS_OF, 1, 0.2).split([(r, []) for r in recs])
    assert [r.event_id for r, _ in train] == [f"e{i}" for i in range(8)] and [r.event_id for r, _ in held] == ["e8", "e9"]
