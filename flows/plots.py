"""The plots logged with each retrain run, drawn from the frames of ``bandit.learn.segments``.

Three figures a reviewer reads next to the evaluation report:

- ``offer_mix_by_request_type.png``: per request type, each offer's share under the
  logged policy and under the candidate (and the champion, when there is one), on the
  held-out decisions; one panel per policy, same colours for the same offer;
- ``reward_over_time.png``: logged reward per decision and complaint rate per day (per
  hour for a short window) over the whole window, the held-out part shaded;
- ``segment_lift.png``: the candidate's estimated reward minus the logged reward per
  segment (channel, request type, customer tier), with 95% intervals; segments too
  small to say anything are listed under the plot instead of drawn.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through
``pyplot``: no display is needed, no global figure registry grows with each retrain,
and two retrains in one process cannot draw on each other's figure.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from pandas.tseries.frequencies import to_offset

from bandit.config.catalog import NO_OFFER
from bandit.learn.segments import LOGGED, RunBreakdown, holdout_start, period_for, reward_by_period

OFFER_MIX = "plots/offer_mix_by_request_type.png"
REWARD_OVER_TIME = "plots/reward_over_time.png"
SEGMENT_LIFT = "plots/segment_lift.png"
MIX_POLICIES = (LOGGED, "candidate", "champion")
_PERIOD_NAMES = {"D": "day", "h": "hour"}
_UP, _DOWN, _UNSURE = "#2a9d8f", "#e76f51", "#b0b0b0"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _offer_colors(offers: Sequence[str]) -> dict[str, str | tuple[float, ...]]:
    """One colour per offer, the same in every panel; ``no_offer`` a light grey that no
    offer shares (tab10's own grey is left out)."""
    palette = [c for i, c in enumerate(colormaps["tab10"].colors) if i != 7] + list(colormaps["Dark2"].colors)
    others = [o for o in offers if o != NO_OFFER]
    colors: dict[str, str | tuple[float, ...]] = {o: palette[i % len(palette)] for i, o in enumerate(others)}
    colors[NO_OFFER] = "#d9d9d9"
    return colors


def offer_mix_figure(mix: pd.DataFrame, policies: Sequence[str] = MIX_POLICIES) -> Figure:
    """Stacked horizontal bars, one per request type, of each offer's share; one panel per
    policy in ``policies`` that ``mix`` (``bandit.learn.segments.offer_mix``) has."""
    shown = [p for p in policies if p in set(mix["policy"])]
    groups = list(dict.fromkeys(mix["group"]))
    fig = _figure(max(8.0, 3.4 * len(shown) + 3.5), max(3.5, 0.45 * len(groups) + 2.2))
    if not shown:
        fig.text(0.5, 0.5, "no held-out decisions", ha="center", va="center")
        return fig
    offers = list(dict.fromkeys(mix["offer"]))
    colors = _offer_colors(offers)
    axes = fig.subplots(1, len(shown), sharey=True, squeeze=False)[0]
    y = np.arange(len(groups))[::-1]
    for ax, policy in zip(axes, shown, strict=True):
        part = mix[mix["policy"] == policy]
        table = (part.pivot(index="group", columns="offer", values="share")
                 .reindex(index=groups, columns=offers, fill_value=0.0))
        left = np.zeros(len(groups))
        for offer in offers:
            share = table[offer].to_numpy()
            ax.barh(y, share, left=left, color=colors[offer], height=0.7, label=offer, edgecolor="white",
                    linewidth=0.5)
            for yi, lo, s in zip(y, left, share, strict=True):
                if s >= 0.08:
                    ax.text(lo + s / 2, yi, f"{s:.0%}", ha="center", va="center", fontsize=7)
            left += share
        ax.set_title(policy)
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
        ax.set_xlabel("share of decisions")
    counts = mix.drop_duplicates("group").set_index("group")["decisions"].reindex(groups)
    axes[0].set_yticks(y, [f"{g}  (n={n})" for g, n in zip(groups, counts, strict=True)])
    axes[0].set_ylabel("request type")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", title="offer", fontsize=8)
    fig.suptitle("Offer mix by request type (held-out decisions)")
    return fig


def reward_over_time_figure(decisions: pd.DataFrame, period: str | None = None) -> Figure:
    """Logged reward per decision (top) and complaint rate (bottom) per period over the
    window (``bandit.learn.segments.decision_frame`` rows), the held-out part shaded."""
    period = period or period_for(decisions["ts"])
    series = reward_by_period(decisions, period)
    name = _PERIOD_NAMES.get(period, period)
    fig = _figure(10.0, 5.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    if series.empty:
        top.text(0.5, 0.5, "no decisions in the window", ha="center", va="center", transform=top.transAxes)
        return fig
    step = pd.Timedelta(to_offset(period)).to_timedelta64()
    starts = series["start"].dt.tz_convert(None).to_numpy()
    when = starts + step / 2  # each point in the middle of its period
    top.plot(when, series["reward"], marker="o", markersize=3, color="#264653", label="logged reward / decision")
    bottom.plot(when, series["complaint_rate"], marker="o", markersize=3, color="#e76f51", label="complaint rate")
    cut = holdout_start(decisions)
    if cut is not None:
        at = pd.Timestamp(cut, unit="s").to_datetime64()
        end = max(starts[-1] + step, at)
        held = f"held out, from {pd.Timestamp(cut, unit='s'):%Y-%m-%d %H:%M} UTC"
        for ax in (top, bottom):
            ax.axvspan(at, end, color="#e9c46a", alpha=0.25, lw=0, label=held if ax is top else None)
            ax.axvline(at, color="#b08900", ls="--", lw=1)
    top.set_ylabel("reward / decision")
    bottom.set_ylabel("complaint rate")
    bottom.yaxis.set_major_formatter(lambda v, _: f"{v:.1%}")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel(f"time (UTC), one point per {name}")
    locator = AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    for ax in (top, bottom):  # above the axes: no data point hides behind a legend
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=2, fontsize=8, frameon=False, borderaxespad=0.2)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.suptitle(f"Logged reward and complaints per {name} ({len(decisions)} decisions)")
    return fig


def segment_lift_figure(lift: pd.DataFrame, min_decisions: int) -> Figure:
    """Horizontal bars of the candidate's lift per segment (``bandit.learn.segments.segment_lift``)
    with its 95% interval; grey where the effective sample size is too small to trust.
    Segments below ``min_decisions`` are named in a note instead of drawn."""
    shown = lift[lift["shown"]].reset_index(drop=True)
    left_out = lift[~lift["shown"]]
    note = ""
    if len(left_out):
        names = ", ".join(f"{d}: {s} ({n})" for d, s, n in
                          zip(left_out["dimension"], left_out["segment"], left_out["decisions"], strict=True))
        note = textwrap.fill(f"Left out, fewer than {min_decisions} held-out decisions: {names}", 140)
    note_height = 0.14 * (note.count("\n") + 1) + 0.1 if note else 0.0  # inches
    height = max(3.0, 0.32 * len(shown) + 1.8) + note_height
    fig = _figure(10.0, height)
    ax = fig.subplots()
    if shown.empty:
        ax.text(0.5, 0.5, f"no segment has {min_decisions} held-out decisions", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
    else:
        y = np.arange(len(shown))[::-1]
        colors = [(_UP if v >= 0 else _DOWN) if ok else _UNSURE
                  for v, ok in zip(shown["lift"], shown["trustworthy"], strict=True)]
        err = np.vstack([shown["lift"] - shown["lift_low"], shown["lift_high"] - shown["lift"]]).clip(min=0)
        ax.barh(y, shown["lift"], xerr=err, color=colors, height=0.6, error_kw={"elinewidth": 1, "capsize": 2})
        ax.set_yticks(y, [f"{d}: {s}  (n={n})" for d, s, n in
                          zip(shown["dimension"], shown["segment"], shown["decisions"], strict=True)], fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        for yi, v, lo, hi in zip(y, shown["lift"], shown["lift_low"], shown["lift_high"], strict=True):
            ax.text(1.01, yi, f"{v:+.3g}  [{lo:+.3g}, {hi:+.3g}]", transform=ax.get_yaxis_transform(),
                    va="center", fontsize=7)
        for k in np.flatnonzero(shown["dimension"].to_numpy()[1:] != shown["dimension"].to_numpy()[:-1]):
            ax.axhline(y[k] - 0.5, color="#999999", lw=0.5, ls=":")
        ax.set_xlabel("candidate reward / decision (SNIPS, 95% interval) minus logged reward / decision")
        ax.grid(axis="x", alpha=0.3)
        if not shown["trustworthy"].all():
            ax.text(1.0, 1.01, "grey: effective sample size below the floor, do not trust", ha="right",
                    va="bottom", fontsize=7, transform=ax.transAxes, color="#666666")
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, va="bottom", color="#444444")
        fig.get_layout_engine().set(rect=(0, note_height / height, 1, 1 - note_height / height))
    fig.suptitle("Candidate lift per segment (held-out decisions)")
    return fig


def figures(b: RunBreakdown) -> dict[str, Figure]:
    """The run's plots by artifact path."""
    return {OFFER_MIX: offer_mix_figure(b.mix), REWARD_OVER_TIME: reward_over_time_figure(b.decisions),
            SEGMENT_LIFT: segment_lift_figure(b.lift, b.min_decisions)}


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
