"""What a retrain run shows: the breakdowns (``bandit.learn.segments``), checked by hand, and the
plots (``flows.plots``), checked to render."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bandit.learn.evaluation import EvalSet
from bandit.learn.ope import LoggedRounds, snips
from bandit.learn.segments import (
    LOGGED,
    breakdown,
    decision_frame,
    holdout_start,
    logged_matrix,
    mix_metrics,
    offer_mix,
    period_for,
    reward_by_period,
    segment_lift,
)
from bandit.log.records import DecisionRecord
from flows import plots

PNG = b"\x89PNG\r\n\x1a\n"
T0 = 1_789_948_800.0  # 2026-09-21 00:00 UTC


def record(i: int, ids: list[str], pmf: list[float], chosen: int, *, ts: float | None = None, channel: str = "phone",
           request_type: str = "diagnostic", tier: str = "standard") -> DecisionRecord:
    return DecisionRecord(f"e{i}", T0 + i * 60 if ts is None else ts, "online", "v1", ids, pmf, chosen, True,
                          channel=channel, request_type=request_type,
                          payload={"context": {"customer": {"tier": tier}}})


def evalset(records: list[DecisionRecord], rewards: list[float], complaints: list[float] | None = None) -> EvalSet:
    n_actions = np.array([len(r.action_ids) for r in records], dtype=int)
    chosen = np.array([r.chosen_index for r in records], dtype=int)
    prop = np.array([r.probability for r in records], dtype=float)
    comp = complaints if complaints is not None else [0.0] * len(records)
    return EvalSet(records, LoggedRounds(n_actions, chosen, prop, np.array(rewards, dtype=float)),
                   LoggedRounds(n_actions, chosen, prop, np.array(comp, dtype=float)))


def random_log(n: int, seed: int = 0, start: float = T0, spacing: float = 60.0) -> tuple[EvalSet, np.ndarray]:
    """A stochastic logging policy over 1-3 offers besides no_offer, and its own pmf matrix."""
    rng = np.random.default_rng(seed)
    offers = ["a", "b", "c"]
    records, rewards, pmfs = [], [], np.zeros((n, 4))
    for i in range(n):
        ids = ["no_offer", *offers[: int(rng.integers(1, 4))]]
        pmf = rng.dirichlet(np.ones(len(ids))) * 0.9 + 0.1 / len(ids)
        chosen = int(rng.choice(len(ids), p=pmf))
        records.append(record(i, ids, pmf.tolist(), chosen, ts=start + i * spacing, channel=["phone", "chat"][i % 2],
                              request_type=["diagnostic", "advisory", "feedback"][i % 3],
                              tier=["standard", "gold"][int(i % 10 == 0)]))
        rewards.append(float(rng.normal(10.0 * chosen, 1.0)))
        pmfs[i, : len(ids)] = pmf
    return evalset(records, rewards), pmfs


# -- offer mix ---------------------------------------------------------------------------------------

def test_offer_mix_is_each_offers_mean_probability_per_request_type_and_sums_to_one() -> None:
    recs = [record(0, ["no_offer", "a", "b"], [0.5, 0.25, 0.25], 0, request_type="diagnostic"),
            record(1, ["no_offer", "b"], [0.5, 0.5], 1, request_type="diagnostic"),
            record(2, ["no_offer", "a"], [0.5, 0.5], 1, request_type="advisory")]
    candidate = np.array([[0.2, 0.6, 0.2], [0.4, 0.6, 0.0], [1.0, 0.0, 0.0]])
    evals = evalset(recs, [0.0, 0.0, 0.0])
    mix = offer_mix([r.request_type for r in recs], evals.action_ids,
                    {LOGGED: logged_matrix(evals.rewards), "candidate": candidate})

    share = mix.set_index(["policy", "group", "offer"])["share"]
    assert list(mix["offer"].drop_duplicates()) == ["no_offer", "a", "b"]  # no_offer first
    assert share["candidate", "diagnostic", "no_offer"] == pytest.approx(0.3)
    assert share["candidate", "diagnostic", "a"] == pytest.approx(0.3)  # 0.6 where eligible, 0 where not
    assert share["candidate", "diagnostic", "b"] == pytest.approx(0.4)  # column 1 of row 1 is "b"
    assert share["candidate", "advisory", "no_offer"] == pytest.approx(1.0)
    assert share[LOGGED, "diagnostic", "no_offer"] == pytest.approx(0.5)
    assert share[LOGGED, "diagnostic", "b"] == pytest.approx(0.5)
    assert share[LOGGED, "advisory", "a"] == pytest.approx(1.0)
    np.testing.assert_allclose(mix.groupby(["policy", "group"])["share"].sum(), 1.0)
    assert mix.set_index(["policy", "group", "offer"])["decisions"]["candidate", "diagnostic", "a"] == 2

    metrics = mix_metrics(mix)  # over all decisions, weighted by each request type's count
    assert metrics["candidate.mix.no_offer"] == pytest.approx((0.2 + 0.4 + 1.0) / 3)
    assert metrics["logged.mix.a"] == pytest.approx(1 / 3)
    assert sum(v for k, v in metrics.items() if k.startswith("candidate.")) == pytest.approx(1.0)


def test_offer_mix_sums_to_one_per_request_type_on_a_random_log() -> None:
    evals, pmfs = random_log(600)
    groups = [r.request_type for r in evals.records]
    mix = offer_mix(groups, evals.action_ids, {"logging": pmfs, LOGGED: logged_matrix(evals.rewards)})
    np.testing.assert_allclose(mix.groupby(["policy", "group"])["share"].sum(), 1.0)
    # what the log did is, on average, what its policy meant to do
    a = mix.set_index(["policy", "group", "offer"])["share"]
    for g in set(groups):
        assert a[LOGGED, g, "no_offer"] == pytest.approx(a["logging", g, "no_offer"], abs=0.08)


def test_offer_mix_refuses_a_matrix_of_the_wrong_shape_and_handles_no_decisions() -> None:
    with pytest.raises(ValueError, match="shape"):
        offer_mix(["x"], [["no_offer", "a"]], {"p": np.ones((2, 2))})
    assert offer_mix([], [], {"p": np.zeros((0, 1))}).empty


# -- lift per segment --------------------------------------------------------------------------------

def test_the_lift_of_the_logging_policy_itself_is_zero_in_every_segment() -> None:
    evals, pmfs = random_log(900, seed=1)
    segments = decision_frame(evals, "holdout")
    lift = segment_lift(segments, evals.rewards, pmfs, min_decisions=30)
    shown = lift[lift["shown"]]
    assert set(shown["dimension"]) == {"channel", "request_type", "tier"}
    np.testing.assert_allclose(shown["lift"], 0.0, atol=1e-9)  # every weight is 1: SNIPS is the logged mean
    assert (shown["lift_low"] < 0).all() and (shown["lift_high"] > 0).all()
    np.testing.assert_allclose(shown["ess"], shown["decisions"])


def test_a_segments_lift_is_its_snips_estimate_minus_its_logged_mean() -> None:
    evals, _ = random_log(400, seed=2)
    always_a = np.zeros((len(evals), evals.rewards.width))
    always_a[:, 1] = 1.0  # "a" is eligible everywhere
    segments = decision_frame(evals, "holdout")
    lift = segment_lift(segments, evals.rewards, always_a, min_decisions=30).set_index(["dimension", "segment"])
    chat = (segments["channel"] == "chat").to_numpy()
    r = evals.rewards
    expected = snips(LoggedRounds(r.n_actions[chat], r.chosen[chat], r.propensity[chat], r.reward[chat]),
                     always_a[chat])
    row = lift.loc[("channel", "chat")]
    assert row["estimate"] == pytest.approx(expected.value)
    assert row["lift"] == pytest.approx(expected.value - r.reward[chat].mean())
    assert (row["lift_low"], row["lift_high"]) == pytest.approx((expected.low - r.reward[chat].mean(),
                                                                  expected.high - r.reward[chat].mean()))


def test_a_segment_below_the_minimum_is_left_out_and_said_so() -> None:
    evals, pmfs = random_log(200, seed=3)  # gold: every tenth decision, 20 of them
    lift = segment_lift(decision_frame(evals, "holdout"), evals.rewards, pmfs, min_decisions=30)
    gold = lift.set_index(["dimension", "segment"]).loc[("tier", "gold")]
    assert gold["decisions"] == 20 and not gold["shown"] and np.isnan(gold["lift"]) and not gold["trustworthy"]
    assert lift.set_index(["dimension", "segment"]).loc[("tier", "standard"), "shown"]

    fig = plots.segment_lift_figure(lift, 30)
    notes = [t.get_text() for t in fig.texts]
    assert any("fewer than 30" in t and "tier: gold (20)" in t for t in notes)
    drawn = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert not any("gold" in t for t in drawn) and any("tier: standard" in t for t in drawn)


def test_segment_lift_needs_one_segment_row_per_round() -> None:
    evals, pmfs = random_log(50)
    with pytest.raises(ValueError, match="segment rows"):
        segment_lift(decision_frame(evals, "holdout").iloc[:10], evals.rewards, pmfs)


# -- the window over time ----------------------------------------------------------------------------

def test_reward_and_complaints_by_period_with_the_holdout_cut() -> None:
    recs = [record(i, ["no_offer", "a"], [0.5, 0.5], i % 2, ts=T0 + i * 1800) for i in range(8)]  # 4 hours
    rewards = [0, 10, 0, 10, 0, 0, 0, 30]
    train = evalset(recs[:6], rewards[:6], [0, 0, 0, 1, 0, 0])
    hold = evalset(recs[6:], rewards[6:], [0, 1])
    frame = pd.concat([decision_frame(train, "train"), decision_frame(hold, "holdout")], ignore_index=True)
    assert list(frame.columns) == ["event_id", "ts", "channel", "request_type", "tier", "chosen", "probability",
                                   "reward", "complaint", "split"]
    assert list(frame["split"]) == ["train"] * 6 + ["holdout"] * 2 and frame["complaint"].dtype == bool
    assert frame.loc[1, "chosen"] == "a" and frame.loc[1, "probability"] == 0.5

    assert period_for(frame["ts"]) == "h" and period_for(np.array([T0, T0 + 4 * 86400])) == "D"
    by_hour = reward_by_period(frame)
    assert list(by_hour["decisions"]) == [2, 2, 2, 2] and list(by_hour["holdout"]) == [0, 0, 0, 2]
    assert list(by_hour["reward"]) == [5.0, 5.0, 0.0, 15.0]
    assert list(by_hour["complaint_rate"]) == [0.0, 0.5, 0.0, 0.5]
    assert by_hour["start"].iloc[0] == pd.Timestamp(T0, unit="s", tz="UTC")
    by_day = reward_by_period(frame, "D")
    assert list(by_day["decisions"]) == [8] and by_day["reward"].iloc[0] == pytest.approx(50 / 8)
    assert holdout_start(frame) == T0 + 6 * 1800 and holdout_start(frame.iloc[:6]) is None


# -- the figures -------------------------------------------------------------------------------------

def test_every_figure_renders_to_a_png() -> None:
    train, _ = random_log(1200, seed=4, spacing=400.0)  # ~5.5 days: one point per day
    hold, hold_pmf = random_log(400, seed=5, start=T0 + 1200 * 400.0, spacing=400.0)
    cand = np.zeros_like(hold_pmf)
    cand[:, 0] = 0.5
    cand[:, 1] = 0.5
    b = breakdown(decision_frame(train, "train"), hold, {"candidate": cand, "champion": hold_pmf}, min_decisions=30)
    assert len(b.decisions) == 1600 and set(b.mix["policy"]) == {LOGGED, "candidate", "champion"}

    figs = plots.figures(b)
    assert set(figs) == {plots.OFFER_MIX, plots.REWARD_OVER_TIME, plots.SEGMENT_LIFT}
    for fig in figs.values():
        png = plots.png_bytes(fig)
        assert png.startswith(PNG) and len(png) > 10_000
    assert [ax.get_title() for ax in figs[plots.OFFER_MIX].axes] == [LOGGED, "candidate", "champion"]
    assert "per day" in figs[plots.REWARD_OVER_TIME].get_suptitle()


def test_figures_of_an_empty_or_tiny_window_still_render() -> None:
    empty = decision_frame(evalset([], []), "holdout")
    tiny, pmf = random_log(10)
    lift = segment_lift(decision_frame(tiny, "holdout"), tiny.rewards, pmf, min_decisions=30)
    for fig in (plots.reward_over_time_figure(empty), plots.offer_mix_figure(offer_mix([], [], {})),
                plots.segment_lift_figure(lift, 30)):
        assert plots.png_bytes(fig).startswith(PNG)
