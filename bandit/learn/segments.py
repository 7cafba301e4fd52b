"""Breakdowns of a retrain's window, for the people who review it.

The estimates in ``bandit.learn.evaluation`` say how much a candidate earns per decision on
the held-out part of the window, all decisions pooled. A reviewer also wants to see
*where* that comes from, and whether something looks off:

- the offer mix per request type, logged and under each policy: a candidate that
  pushes one offer at every diagnostic call shows here before it shows in complaints;
- reward and complaint rate per day (or hour) over the whole window, with the
  held-out cut: a drift in the log, or a held-out part unlike the training part;
- the candidate's lift per segment (channel, request type, customer tier): its SNIPS
  estimate inside the segment minus what the logged policy earned there, so a gain
  on one channel cannot hide a loss on another.

Everything here is pure and vectorised over numpy/pandas (a window may hold hundreds of
thousands of decisions), and works on plain frames and arrays: ``flows.plots`` draws
them, ``flows.retrain`` logs them to MLflow. Nothing here imports Prefect, MLflow or
matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bandit.config.catalog import NO_OFFER
from bandit.learn.evaluation import EvalSet
from bandit.learn.ope import MIN_ESS, LoggedRounds, Ragged, action_codes, snips

SEGMENT_DIMENSIONS = ("channel", "request_type", "tier")
MIN_SEGMENT_DECISIONS = 30  # below this a segment's estimate is noise: left out, and said so
LOGGED = "logged"  # the policy that made the logged decisions, in mix tables
UNKNOWN = "unknown"  # a segment value the record does not carry (older records)


# -- the window as a frame ----------------------------------------------------------------------

def decision_frame(evals: EvalSet, split: str) -> pd.DataFrame:
    """One row per decision: what identifies it, who it was for, what was done and what
    it earned. Compact on purpose (no features, no payload): it is the run's input
    dataset, whose schema and digest MLflow keeps, and the input of every breakdown.
    A streamed window (``bandit.learn.evaluation.Columns``) has these columns already."""
    if evals.columns is not None:
        return evals.columns.assign(split=split)
    recs = evals.records
    tiers = [((r.payload.get("context") or {}).get("customer") or {}).get("tier") for r in recs]
    return pd.DataFrame({
        "event_id": pd.Series([r.event_id for r in recs], dtype=object),
        "ts": pd.Series([r.ts for r in recs], dtype=float),
        "channel": pd.Series([r.channel or UNKNOWN for r in recs], dtype=object),
        "request_type": pd.Series([r.request_type or UNKNOWN for r in recs], dtype=object),
        "tier": pd.Series([t or UNKNOWN for t in tiers], dtype=object),
        "chosen": pd.Series([r.chosen_id for r in recs], dtype=object),
        "probability": evals.rewards.propensity.astype(float),
        "reward": evals.rewards.reward.astype(float),
        "complaint": evals.complaints.reward.astype(bool),
        "split": pd.Series([split] * len(recs), dtype=object),
    })


# -- offer mix -------------------------------------------------------------------------------------

def logged_matrix(rounds: LoggedRounds) -> np.ndarray:
    """The logged policy as a policy matrix: probability 1 on the action it took. Averaged
    over decisions, that is the share of each offer the log actually made."""
    return logged_policy(rounds).dense()


def logged_policy(rounds: LoggedRounds) -> Ragged:
    """``logged_matrix`` over each decision's eligible actions only (``Ragged``)."""
    values = np.zeros(int(np.sum(rounds.n_actions, dtype=np.int64)))
    out = Ragged(values, rounds.n_actions)
    values[out.starts + rounds.chosen] = 1.0
    return out


def offer_mix(groups: Sequence[str] | np.ndarray, action_ids: Sequence[Sequence[str]],
              policies: Mapping[str, np.ndarray | Ragged]) -> pd.DataFrame:
    """For each policy and group (e.g. request type), each offer's share of the group's
    decisions: the policy's probability of the offer, averaged over the group's decisions
    (an offer not eligible in a decision counts 0 there). Shares sum to 1 per policy and
    group. Tidy: columns ``policy, group, offer, share, decisions``; ``no_offer`` first.

    ``policies`` maps a name to an (n, K) matrix over each decision's ``action_ids``, or to its
    rows over the eligible actions only (``bandit.learn.ope.Ragged``)."""
    groups = np.asarray(groups, dtype=object)
    n = len(action_ids)
    if len(groups) != n:
        raise ValueError(f"offer_mix: {len(groups)} groups for {n} decisions")
    columns = ["policy", "group", "offer", "share", "decisions"]
    if n == 0 or not policies:
        return pd.DataFrame(columns=columns)
    codes, names, lengths = action_codes(action_ids)
    used, offer_code = np.unique(codes, return_inverse=True)
    offers = np.asarray(names, dtype=object)[used].astype(str)
    order = sorted(range(len(offers)), key=lambda k: (offers[k] != NO_OFFER, offers[k]))
    group_names, group_code = np.unique(groups.astype(str), return_inverse=True)
    counts = np.bincount(group_code, minlength=len(group_names)).astype(float)
    cell = np.repeat(group_code, lengths) * len(offers) + offer_code
    frames = []
    for name, pi in policies.items():
        if not isinstance(pi, Ragged):
            pi = np.asarray(pi, dtype=float)
            if pi.shape[0] != n or pi.shape[1] < int(lengths.max()):
                raise ValueError(f"offer_mix: policy {name!r} has shape {pi.shape} for {n} decisions")
            pi = Ragged.of(pi, lengths)
        elif not np.array_equal(pi.n_actions, lengths):
            raise ValueError(f"offer_mix: policy {name!r} is over other eligible actions than the decisions'")
        sums = np.bincount(cell, weights=pi.values, minlength=len(group_names) * len(offers))
        share = (sums.reshape(len(group_names), len(offers)) / counts[:, None])[:, order]
        frames.append(pd.DataFrame({
            "policy": name,
            "group": np.repeat(group_names, len(offers)),
            "offer": np.tile(offers[order], len(group_names)),
            "share": share.ravel(),
            "decisions": np.repeat(counts.astype(int), len(offers)),
        }))
    return pd.concat(frames, ignore_index=True)[columns]


def mix_metrics(mix: pd.DataFrame) -> dict[str, float]:
    """``<policy>.mix.<offer>``: each offer's share of all decisions in ``mix`` (any
    grouping), for MLflow metrics."""
    weighted = mix.assign(n=mix["share"] * mix["decisions"]).groupby(["policy", "offer"], sort=False)["n"].sum()
    totals = mix.drop_duplicates(["policy", "group"]).groupby("policy", sort=False)["decisions"].sum()
    return {f"{policy}.mix.{offer}": float(n / totals[policy]) for (policy, offer), n in weighted.items()}


# -- reward over time ------------------------------------------------------------------------------

def period_for(ts: np.ndarray | pd.Series) -> str:
    """Days, unless the decisions span less than three of them: then hours, so the plot
    has more than a couple of points."""
    ts = np.asarray(ts, dtype=float)
    return "D" if len(ts) and float(ts.max() - ts.min()) >= 3 * 86400 else "h"


def reward_by_period(decisions: pd.DataFrame, period: str | None = None) -> pd.DataFrame:
    """Logged reward per decision and complaint rate per period (``"D"``, ``"h"``, any
    pandas frequency; default ``period_for``), with the number of decisions and how many
    of them are held out. Columns ``start`` (UTC), ``decisions``, ``holdout``, ``reward``,
    ``complaint_rate``; periods without decisions are absent."""
    columns = ["start", "decisions", "holdout", "reward", "complaint_rate"]
    if decisions.empty:
        return pd.DataFrame(columns=columns)
    start = pd.to_datetime(decisions["ts"], unit="s", utc=True).dt.floor(period or period_for(decisions["ts"]))
    grouped = decisions.assign(start=start, held=decisions["split"] == "holdout",
                               complaint=decisions["complaint"].astype(float)).groupby("start", sort=True)
    out = grouped.agg(decisions=("reward", "size"), holdout=("held", "sum"), reward=("reward", "mean"),
                      complaint_rate=("complaint", "mean")).reset_index()
    return out[columns]


def holdout_start(decisions: pd.DataFrame) -> float | None:
    """When the held-out part begins (epoch seconds): the cut a reviewer looks either side of."""
    held = decisions.loc[decisions["split"] == "holdout", "ts"]
    return float(held.min()) if len(held) else None


# -- lift per segment ------------------------------------------------------------------------------

def segment_lift(segments: pd.DataFrame, rounds: LoggedRounds, pi: np.ndarray | Ragged,
                 dimensions: Sequence[str] = SEGMENT_DIMENSIONS, min_decisions: int = MIN_SEGMENT_DECISIONS,
                 min_ess: float = MIN_ESS) -> pd.DataFrame:
    """The policy ``pi``'s estimated reward per decision inside each segment (SNIPS on
    the segment's decisions, ``bandit.learn.ope.snips``) minus the logged policy's mean reward
    there. ``segments`` has one row per round of ``rounds`` and a column per dimension.

    The interval is SNIPS's 95% interval shifted by the logged mean: the logged mean is
    what was observed on the same decisions, taken as known. Segments with fewer than
    ``min_decisions`` decisions are kept as rows with ``shown`` false and no estimate, so
    whoever reads the table (or the plot) sees what was left out. ``trustworthy`` is the
    estimate's effective-sample-size check at ``min_ess``.

    Columns: ``dimension, segment, decisions, shown, logged, estimate, estimate_low,
    estimate_high, lift, lift_low, lift_high, ess, trustworthy``."""
    if len(segments) != len(rounds):
        raise ValueError(f"segment_lift: {len(segments)} segment rows for {len(rounds)} rounds")
    if not isinstance(pi, Ragged):
        pi = np.asarray(pi, dtype=float)
    rows = []
    for dim in dimensions:
        values = segments[dim].fillna(UNKNOWN).astype(str).to_numpy()
        for value, idx in sorted(pd.Series(values).groupby(values).indices.items()):
            logged = float(rounds.reward[idx].mean())
            row = {"dimension": dim, "segment": value, "decisions": len(idx), "shown": len(idx) >= min_decisions,
                   "logged": logged}
            if row["shown"]:
                sub = LoggedRounds(rounds.n_actions[idx], rounds.chosen[idx], rounds.propensity[idx],
                                   rounds.reward[idx])
                est = snips(sub, pi[idx], min_ess)
                row |= {"estimate": est.value, "estimate_low": est.low, "estimate_high": est.high,
                        "lift": est.value - logged, "lift_low": est.low - logged, "lift_high": est.high - logged,
                        "ess": est.ess, "trustworthy": est.trustworthy}
            else:
                row |= dict.fromkeys(("estimate", "estimate_low", "estimate_high", "lift", "lift_low",
                                      "lift_high", "ess"), np.nan) | {"trustworthy": False}
            rows.append(row)
    columns = ["dimension", "segment", "decisions", "shown", "logged", "estimate", "estimate_low", "estimate_high",
               "lift", "lift_low", "lift_high", "ess", "trustworthy"]
    return pd.DataFrame(rows, columns=columns)


# -- everything a retrain run shows, computed once -------------------------------------------------

@dataclass(frozen=True)
class RunBreakdown:
    """What a retrain run shows besides its pooled estimates, computed in the evaluate step
    (where the policies' matrices are) and logged by the record step. Frames only, no
    decision records: compact to hand from one step to the next."""

    decisions: pd.DataFrame  # the window, one row per decision (``decision_frame``), train then holdout
    mix: pd.DataFrame  # held-out offer mix by request type, logged and per policy (``offer_mix``)
    lift: pd.DataFrame  # the candidate's lift per segment on the held-out part (``segment_lift``)
    min_decisions: int = MIN_SEGMENT_DECISIONS


def breakdown(train_rows: pd.DataFrame, holdout: EvalSet, policies: Mapping[str, np.ndarray | Ragged],
              candidate: str = "candidate", min_decisions: int = MIN_SEGMENT_DECISIONS,
              min_ess: float = MIN_ESS) -> RunBreakdown:
    """The breakdowns of one retrain. ``train_rows`` is the training part as a frame
    (``decision_frame(..., "train")``); ``policies`` are the compared policies' matrices on
    the held-out decisions (as ``bandit.learn.evaluation.evaluate`` computes them)."""
    held = decision_frame(holdout, "holdout")
    mix = offer_mix(held["request_type"].to_numpy(), holdout.action_ids,
                    {LOGGED: logged_policy(holdout.rewards), **policies})
    lift = segment_lift(held, holdout.rewards, policies[candidate], min_decisions=min_decisions, min_ess=min_ess)
    return RunBreakdown(pd.concat([train_rows, held], ignore_index=True), mix, lift, min_decisions)
