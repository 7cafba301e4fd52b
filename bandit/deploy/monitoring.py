"""Monitoring offers in production: rates over a sliding window, breaches, control-group lift.

Why: the seeds ask to "know about objectionable offers at once". Retraining judges a
policy once a night; ``monitor`` runs every few minutes and judges each *offer*, so an
offer that draws complaints is suspended through the kill switch before the next
retrain, whatever the model thinks of it. The same run measures what the bandit earns
over the control group, because simulation cannot prove lift and a holdout can.

Everything here is pure (no database, Prefect or MLflow); ``flows.monitor`` does the I/O.

Definitions, over the window ``[as_of - window_hours, as_of)`` of decision times:

- an *offer made* is an activated decision whose chosen action is that offer
  (``no_offer`` is not an offer; a deferred decision never activated was never shown).
  Every mode counts (online, cold start, control): an objectionable offer is
  objectionable whichever policy chose it;
- only outcomes recorded by ``as_of`` count, so a run is reproducible for its ``as_of``;
- a decision is *accepted* if it drew an ``accepted`` or ``converted`` outcome, and
  *complained about* if it drew at least one ``complaint`` (several complaints about one
  offer count once, so the rate is a share of offers and stays in [0, 1]);
- its *revenue* is ``bandit.domain.outcomes.revenue``, the revenue term of the reward: the
  sum of ``converted`` values if any, else the ``accepted`` value (the logged offer value
  when the acceptance carries none), else 0 (acceptance and complaint are
  ``bandit.domain.outcomes.accepted`` and ``complained``).

For an offer (or an offer on one channel) made ``n`` times, with ``a`` accepted, ``k``
complained about and revenues ``v_i``:

.. math::

    \\text{acceptance rate} = a / n, \\quad \\text{complaint rate} = k / n,
    \\quad \\text{revenue} = \\textstyle\\sum_i v_i

The complaint rate's 95% interval is Wilson's score interval (it stays inside [0, 1]
and behaves for small ``n`` and ``k = 0``, where the normal one collapses to a point).

An offer *breaches* when its complaint rate is above its limit (the catalog's
``max_complaint_rate`` for the offer, else the policy's ``monitoring.max_complaint_rate``),
it was made at least ``monitoring.min_offers`` times (one complaint in two offers is
noise, not evidence), and it is not suspended already.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bandit.config.catalog import NO_OFFER, Catalog
from bandit.learn.ope import Z95
from bandit.learn.window import finite_time, positive
from bandit.config.policyfile import Monitoring
from bandit.domain.modes import Mode
from bandit.log.records import DecisionRecord
from bandit.domain.outcomes import Outcome, accepted, complained, revenue

BANDIT_MODES = (Mode.online, Mode.cold_start)
CONTROL_MODE = Mode.control
# Where complaints came from: the dimensions of the logged context the exception report counts.
CONTEXT_DIMENSIONS = ("channel", "request_type", "resolved", "sentiment", "distress", "tier")
SENTIMENT_EDGES = (0.0, 0.25, 0.5, 0.75)  # buckets: [-1, 0), [0, 0.25), ..., [0.75, 1]
UNKNOWN = "unknown"


# -- the window ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class MonitorWindow:
    """The stretch of the log one run reads: decisions in ``[as_of - hours, as_of)``."""

    as_of: float
    hours: float

    def __post_init__(self) -> None:
        positive("window_hours", self.hours, "hours")  # the checks of bandit.learn.window
        finite_time("as_of", self.as_of)

    @property
    def start(self) -> float:
        return self.as_of - self.hours * 3600

    @property
    def label(self) -> str:
        """``<start>/<as_of>`` in ISO 8601 (UTC): the run name and the ``window`` tag."""
        return f"{_iso(self.start)}/{_iso(self.as_of)}"

    def describe(self) -> str:
        return f"the {self.hours:g} h to {_iso(self.as_of)}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- one decision, reduced to what monitoring needs ------------------------------------------------

@dataclass(frozen=True)
class Observation:
    """One logged decision as monitoring sees it. ``context`` (the logged request context,
    no customer id) is kept only for decisions complained about: it is what the exception
    report counts, and keeping it for every decision of a busy day would cost memory."""

    offer_id: str
    channel: str
    mode: str
    activated: bool
    accepted: bool
    complaint: bool
    revenue: float
    context: dict[str, Any] | None = None
    judged: bool = True  # False: made before its offer's last resume (``observe``'s ``resumed_at``)

    @property
    def is_offer(self) -> bool:
        """An offer made: shown (activated) and not ``no_offer``."""
        return self.activated and self.offer_id != NO_OFFER


def observe(rec: DecisionRecord, outcomes: Sequence[Outcome], as_of: float,
            resumed_at: Mapping[str, float] | None = None) -> Observation:
    """Reduce a logged decision and its outcomes (those recorded by ``as_of``) to an ``Observation``.
    ``resumed_at``: when offers were last resumed; a decision made before its offer's resume
    is reported but not judged again (a resume holds until new evidence: complaints about
    offers made after it)."""
    seen = [o for o in outcomes if o.ts <= as_of]
    complaint = complained(seen)
    offer = rec.chosen_id
    context = rec.payload.get("context") if isinstance(rec.payload.get("context"), dict) else None
    channel = rec.channel or (context or {}).get("channel") or UNKNOWN
    is_offer = offer != NO_OFFER
    return Observation(
        offer_id=offer,
        channel=str(channel),
        mode=rec.mode,
        activated=rec.activated,
        accepted=is_offer and accepted(seen),
        complaint=complaint,
        revenue=revenue(seen, float(rec.payload.get("offer_value") or 0.0)) if is_offer else 0.0,
        context=(context or {"channel": channel}) if complaint else None,
        judged=resumed_at is None or rec.ts >= resumed_at.get(offer, -math.inf),
    )


# -- per offer, and per offer and channel -----------------------------------------------------------

@dataclass(frozen=True)
class OfferStats:
    """One offer's numbers over the window (``channel`` None: all channels)."""

    offer_id: str
    channel: str | None
    offers: int
    accepted: int
    complaints: int
    revenue: float

    @property
    def acceptance_rate(self) -> float:
        """``accepted / offers`` (NaN for no offers)."""
        return self.accepted / self.offers if self.offers else math.nan

    @property
    def complaint_rate(self) -> float:
        """``complaints / offers`` (NaN for no offers)."""
        return self.complaints / self.offers if self.offers else math.nan

    @property
    def revenue_per_offer(self) -> float:
        return self.revenue / self.offers if self.offers else math.nan

    def complaint_interval(self) -> tuple[float, float]:
        """Wilson's 95% score interval for the complaint rate (see the module docstring)."""
        return wilson_interval(self.complaints, self.offers)

    def as_metrics(self) -> dict[str, float]:
        return {"offers": float(self.offers), "acceptance_rate": self.acceptance_rate,
                "complaint_rate": self.complaint_rate, "revenue": self.revenue}


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``p̂ = k / n``:

    ``(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)``; ``(0, 1)`` when ``n = 0``."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def _tally(items: Iterable[Observation]) -> tuple[int, int, int, float]:
    n = a = k = 0
    r = 0.0
    for o in items:
        n += 1
        a += o.accepted
        k += o.complaint
        r += o.revenue
    return n, a, k, r


def offer_stats(observations: Iterable[Observation]) -> tuple[dict[str, OfferStats], dict[tuple[str, str], OfferStats]]:
    """Per offer, and per (offer, channel), over the offers made (``Observation.is_offer``).
    Offers not made in the window do not appear."""
    by_offer: dict[str, list[Observation]] = {}
    by_channel: dict[tuple[str, str], list[Observation]] = {}
    for o in observations:
        if o.is_offer:
            by_offer.setdefault(o.offer_id, []).append(o)
            by_channel.setdefault((o.offer_id, o.channel), []).append(o)
    offers = {oid: OfferStats(oid, None, *_tally(obs)) for oid, obs in sorted(by_offer.items())}
    channels = {key: OfferStats(key[0], key[1], *_tally(obs)) for key, obs in sorted(by_channel.items())}
    return offers, channels


# -- limits and breaches ----------------------------------------------------------------------------

def complaint_limit(offer_id: str, catalog: Catalog, monitoring: Monitoring) -> float:
    """The offer's own ``max_complaint_rate`` from the catalog, else the policy's default
    (also for an offer no longer in the catalog: its old decisions are still judged)."""
    offer = catalog.get(offer_id)
    if offer is not None and offer.max_complaint_rate is not None:
        return offer.max_complaint_rate
    return monitoring.max_complaint_rate


def breaches(stats: Iterable[OfferStats], limits: Mapping[str, float], min_offers: int,
             suspended: Collection[str]) -> list[OfferStats]:
    """The offers to suspend: ``complaint_rate > limit`` and ``offers >= min_offers`` and not
    suspended already; the worst (rate over limit) first. ``limits`` maps every offer id in
    ``stats`` to its limit."""
    out = [s for s in stats
           if s.offers >= min_offers and s.offer_id not in suspended and s.complaint_rate > limits[s.offer_id]]
    return sorted(out, key=lambda s: (-s.complaint_rate / limits[s.offer_id], s.offer_id))


def sentiment_bucket(sentiment: Any) -> str:
    """A sentiment in [-1, 1] as its bucket's label (``[-1, 0)``, ``[0, 0.25)``, ..., ``[0.75, 1]``);
    buckets rather than values, so the report counts where complaints cluster."""
    if isinstance(sentiment, bool) or not isinstance(sentiment, int | float) or not math.isfinite(sentiment):
        return UNKNOWN
    for lo, hi in zip((-1.0, *SENTIMENT_EDGES[:-1]), SENTIMENT_EDGES, strict=True):
        if sentiment < hi:
            return f"[{lo:g}, {hi:g})"
    return f"[{SENTIMENT_EDGES[-1]:g}, 1]"


def context_values(context: Mapping[str, Any]) -> dict[str, str]:
    """The report's dimensions of one logged context (``unknown`` where the log lacks one,
    e.g. an imported history)."""
    interaction = context.get("interaction") or {}
    customer = context.get("customer") or {}

    def s(v: Any) -> str:
        if v is None:
            return UNKNOWN
        return str(v).lower() if isinstance(v, bool) else str(v)

    return {"channel": s(context.get("channel")), "request_type": s(interaction.get("request_type")),
            "resolved": s(interaction.get("resolved")), "sentiment": sentiment_bucket(interaction.get("sentiment")),
            "distress": s(interaction.get("distress")), "tier": s(customer.get("tier"))}


def complaint_contexts(observations: Iterable[Observation], offer_id: str) -> dict[str, dict[str, int]]:
    """Where the complaints about ``offer_id`` came from: for each dimension of
    ``CONTEXT_DIMENSIONS``, how many complained-about offers had each value (most first)."""
    counts: dict[str, Counter[str]] = {d: Counter() for d in CONTEXT_DIMENSIONS}
    for o in observations:
        if o.is_offer and o.complaint and o.offer_id == offer_id:
            for dim, value in context_values(o.context or {}).items():
                counts[dim][value] += 1
    return {d: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for d, c in counts.items()}


# -- control-group lift -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Difference:
    """Bandit minus control in one per-decision metric, with a 95% Welch (unpooled) interval."""

    metric: str
    bandit: float
    control: float
    n_bandit: int
    n_control: int
    diff: float
    se: float
    low: float
    high: float

    def as_metrics(self) -> dict[str, float]:
        return {"bandit": self.bandit, "control": self.control, "diff": self.diff, "low": self.low,
                "high": self.high, "se": self.se}


def welch_difference(metric: str, bandit: Sequence[float], control: Sequence[float], z: float = Z95) -> Difference:
    """``Δ = mean(bandit) − mean(control)`` with ``SE = √(s_b²/n_b + s_c²/n_c)`` (sample
    variances, no pooling: the groups differ in size and spread) and interval ``Δ ± z·SE``.
    A group of fewer than two decisions has no variance estimate: SE is infinite."""
    nb, nc = len(bandit), len(control)
    mb = math.fsum(bandit) / nb if nb else math.nan
    mc = math.fsum(control) / nc if nc else math.nan
    if nb < 2 or nc < 2:
        se = math.inf
    else:
        vb = math.fsum((x - mb) ** 2 for x in bandit) / (nb - 1)
        vc = math.fsum((x - mc) ** 2 for x in control) / (nc - 1)
        se = math.sqrt(vb / nb + vc / nc)
    d = mb - mc
    return Difference(metric, mb, mc, nb, nc, d, se, d - z * se, d + z * se)


@dataclass(frozen=True)
class Lift:
    """The bandit's lift over the control group. ``metrics`` is empty when there is nothing
    to compare (``note`` says why)."""

    n_bandit: int
    n_control: int
    metrics: dict[str, Difference] = field(default_factory=dict)
    note: str | None = None

    @property
    def available(self) -> bool:
        return bool(self.metrics)


LIFT_METRICS = ("revenue_per_decision", "acceptance_rate", "complaint_rate")
# Below this many decisions in a group the normal interval is optimistic (a small control
# group with no acceptances has zero sample variance): the report says so.
MIN_LIFT_GROUP = 30


def lift(observations: Iterable[Observation]) -> Lift:
    """Per activated decision, bandit (modes ``online``, ``cold_start``) minus control
    (mode ``control``), in revenue per decision, acceptance rate and complaint rate (each
    decision contributes its revenue, 1 if accepted, 1 if complained about; ``no_offer``
    decisions count too, with 0 revenue and acceptance: the control policy's restraint is
    part of what is compared). Apprentice decisions are neither."""
    groups: dict[str, list[Observation]] = {"bandit": [], "control": []}
    for o in observations:
        if not o.activated:
            continue
        if o.mode in BANDIT_MODES:
            groups["bandit"].append(o)
        elif o.mode == CONTROL_MODE:
            groups["control"].append(o)
    b, c = groups["bandit"], groups["control"]
    if not c:
        return Lift(len(b), 0, note="no control-group decisions in the window: lift not measured")
    if not b:
        return Lift(0, len(c), note="no bandit decisions in the window: lift not measured")
    values = {"revenue_per_decision": lambda o: o.revenue, "acceptance_rate": lambda o: float(o.accepted),
              "complaint_rate": lambda o: float(o.complaint)}
    metrics = {m: welch_difference(m, [values[m](o) for o in b], [values[m](o) for o in c]) for m in LIFT_METRICS}
    note = None
    if len(b) < 2 or len(c) < 2:
        note = "fewer than two decisions in a group: intervals unbounded"
    elif min(len(b), len(c)) < MIN_LIFT_GROUP:
        note = f"fewer than {MIN_LIFT_GROUP} decisions in a group: the normal intervals are optimistic"
    return Lift(len(b), len(c), metrics, note)


# -- the assessment of one window ---------------------------------------------------------------------

@dataclass(frozen=True)
class Breach:
    """An offer to suspend: its numbers, its limit, and where its complaints came from."""

    stats: OfferStats
    limit: float
    by_channel: list[OfferStats]
    contexts: dict[str, dict[str, int]]

    @property
    def offer_id(self) -> str:
        return self.stats.offer_id

    def reason(self, window: MonitorWindow) -> str:
        """The kill switch's reason: the numbers that tripped it."""
        s = self.stats
        return (f"monitor: complaint rate {s.complaint_rate:.3f} ({s.complaints} complaints in {s.offers} offers) "
                f"over {window.describe()} exceeds the limit {self.limit:.3f}")


@dataclass(frozen=True)
class Assessment:
    """Everything one monitor run computed for its window."""

    window: MonitorWindow
    decisions: int
    by_offer: dict[str, OfferStats]
    by_channel: dict[tuple[str, str], OfferStats]
    limits: dict[str, float]
    min_offers: int
    suspended_before: frozenset[str]
    breaches: list[Breach]
    lift: Lift

    @property
    def offers(self) -> int:
        return sum(s.offers for s in self.by_offer.values())


def assess(observations: Sequence[Observation], window: MonitorWindow, catalog: Catalog, monitoring: Monitoring,
           suspended: Collection[str]) -> Assessment:
    """Stats, limits, breaches (with their complaint contexts) and lift for one window.
    ``suspended`` holds the offers suspended already (kill switch and policy file)."""
    by_offer, by_channel = offer_stats(observations)
    limits = {oid: complaint_limit(oid, catalog, monitoring) for oid in by_offer}
    judged = [o for o in observations if o.judged]  # since each offer's last resume
    judged_offer, judged_channel = offer_stats(judged) if len(judged) < len(observations) else (by_offer, by_channel)
    found = [
        Breach(s, limits[s.offer_id], [c for (oid, _), c in judged_channel.items() if oid == s.offer_id],
               complaint_contexts(judged, s.offer_id))
        for s in breaches(judged_offer.values(), limits, monitoring.min_offers, suspended)
    ]
    return Assessment(window, len(observations), by_offer, by_channel, limits, monitoring.min_offers,
                      frozenset(suspended), found, lift(observations))


# -- the reports (Markdown) -----------------------------------------------------------------------------

def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def _stats_row(s: OfferStats, first: str, extra: str = "") -> str:
    lo, hi = s.complaint_interval()
    return (f"| {first} | {s.offers} | {_pct(s.acceptance_rate)} | {s.complaints} | {_pct(s.complaint_rate)} | "
            f"[{_pct(lo)}, {_pct(hi)}] | {s.revenue:.2f} |{extra}")


STATS_HEADER = ("| {first} | offers | acceptance | complaints | complaint rate | 95% interval (Wilson) | revenue |"
                "{extra}")


def breach_lines(b: Breach, window: MonitorWindow, acted: bool) -> list[str]:
    """An offer over its limit: its figures, by channel, and the contexts of its complaints
    (the exception report's section, and a suspension notice's body)."""
    s = b.stats
    lines = [f"## `{b.offer_id}`: {'suspended' if acted else 'over its complaint limit'}", "",
             f"Complaint rate **{_pct(s.complaint_rate)}** ({s.complaints} complaints in {s.offers} offers) over "
             f"{window.describe()}; limit {_pct(b.limit)}. Acceptance {_pct(s.acceptance_rate)}, "
             f"revenue {s.revenue:.2f}.", "", "By channel:", "",
             STATS_HEADER.format(first="channel", extra=""), "|---|---|---|---|---|---|---|"]
    lines += [_stats_row(c, c.channel or UNKNOWN) for c in b.by_channel]
    lines += ["", "Where the complaints came from (complained-about offers by context):", ""]
    for dim in CONTEXT_DIMENSIONS:
        counts = b.contexts.get(dim, {})
        lines.append(f"- {dim}: " + (", ".join(f"{v} ({n})" for v, n in counts.items()) or "none"))
    return lines + [""]


def harmful_lift(lift_: Lift) -> list[str]:
    """What is significantly worse under the bandit than in the control group: revenue per
    decision whose 95% interval lies below 0, or a complaint rate whose interval lies above
    0. Empty when nothing is (or nothing was measured)."""
    out = []
    rev, comp = lift_.metrics.get("revenue_per_decision"), lift_.metrics.get("complaint_rate")
    if rev is not None and rev.high < 0:
        out.append(f"revenue per decision {rev.diff:+.3f} against the control group, 95% interval "
                   f"[{rev.low:+.3f}, {rev.high:+.3f}]")
    if comp is not None and comp.low > 0:
        out.append(f"complaint rate {100 * comp.diff:+.2f} pp against the control group, 95% interval "
                   f"[{100 * comp.low:+.2f}, {100 * comp.high:+.2f}] pp")
    return out


def lift_lines(lift_: Lift) -> list[str]:
    """The lift over the control group as a Markdown section, flagged when harmful."""
    lines = ["## Lift over the control group", ""]
    if lift_.note and not lift_.available:
        return lines + [f"{lift_.note.capitalize()} ({lift_.n_bandit} bandit, {lift_.n_control} control "
                        "decisions).", ""]
    lines += [f"Bandit (online, cold start) {lift_.n_bandit} decisions, control {lift_.n_control}; "
              "per decision, bandit minus control, 95% Welch interval.", "",
              "| metric | bandit | control | lift | 95% interval |", "|---|---|---|---|---|"]
    for m, d in lift_.metrics.items():
        money = m == "revenue_per_decision"  # the rest are rates: shown in % and differences in points

        def level(x: float) -> str:
            return f"{x:.3f}" if money else _pct(x)

        def delta(x: float) -> str:
            return f"{x:+.3f}" if money else f"{100 * x:+.2f} pp"

        lines.append(f"| {m} | {level(d.bandit)} | {level(d.control)} | {delta(d.diff)} | "
                     f"[{delta(d.low)}, {delta(d.high)}] |")
    if lift_.note:
        lines += ["", lift_.note]
    harm = harmful_lift(lift_)
    if harm:
        lines += ["", "**The bandit does significantly worse than the control group: " + "; ".join(harm) + "**"]
    return lines + [""]


def exception_report(a: Assessment, suspended_now: Collection[str]) -> str:
    """The exception report: each breaching offer with its numbers, its channels and the
    contexts its complaints came from, then the lift. Published when an offer is suspended."""
    lines = [f"# Exception: {len(a.breaches)} offer(s) over their complaint limit", "",
             f"Window {a.window.label}: {a.decisions} decisions, {a.offers} offers made.", ""]
    for b in a.breaches:
        lines += breach_lines(b, a.window, b.offer_id in suspended_now)
    lines += lift_lines(a.lift)
    return "\n".join(lines)


def report(a: Assessment, suspended_now: Collection[str]) -> str:
    """The routine monitoring report: the exceptions first (if any), then every offer made
    in the window, per offer and per channel, and the lift over the control group."""
    lines = [f"# Offer monitoring {a.window.label}", "",
             f"{a.decisions} decisions, {a.offers} offers made; an offer is judged after {a.min_offers} offers."]
    acted = [f"`{b.offer_id}`" for b in a.breaches if b.offer_id in suspended_now]
    not_acted = [f"`{b.offer_id}`" for b in a.breaches if b.offer_id not in suspended_now]
    if acted:
        lines += ["", "**Suspended for complaints: " + ", ".join(acted) + "**"]
    if not_acted:
        lines += ["", "**Over their complaint limit, not suspended: " + ", ".join(not_acted) + "**"]
    lines += [""]
    for b in a.breaches:
        lines += breach_lines(b, a.window, b.offer_id in suspended_now)
    lines += ["## Offers", "", STATS_HEADER.format(first="offer", extra=" limit | status |"),
              "|---|---|---|---|---|---|---|---|---|"]
    for oid, s in a.by_offer.items():
        status = ("suspended now" if oid in suspended_now else "suspended" if oid in a.suspended_before
                  else "too few offers to judge" if s.offers < a.min_offers else "ok")
        lines.append(_stats_row(s, f"`{oid}`", f" {_pct(a.limits[oid])} | {status} |"))
    if not a.by_offer:
        lines.append("| (no offers made in the window) | | | | | | | | |")
    lines += ["", "## Offers by channel", "", STATS_HEADER.format(first="offer | channel", extra=""),
              "|---|---|---|---|---|---|---|---|"]
    lines += [_stats_row(s, f"`{oid}` | {ch}") for (oid, ch), s in a.by_channel.items()]
    lines += [""] + lift_lines(a.lift)
    return "\n".join(lines)


def metric_key(*parts: str) -> str:
    """An MLflow metric name from parts (offer ids, channels): characters MLflow treats
    specially (``/``, ``:``, ``..``) become ``_``, so every name is valid and distinct enough."""
    return ".".join(re.sub(r"[^A-Za-z0-9_\-]", "_", p) for p in parts)
