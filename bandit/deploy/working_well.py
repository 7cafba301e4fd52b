"""The weekly "working well" note: offers that earn clearly more than not offering.

Why: the seeds ask that "when some marketing offers are working well, it is nice to know
about that too, so those offers can be scaled up". The monitor tells owners at once of an
offer that draws complaints; this note tells them, once a week, of an offer that pays.

Definition, over the window ``[as_of - days, as_of)`` and the offers made in it (an
activated decision whose chosen action is the offer, ``Observation.is_offer``; every mode
counts, as in monitoring). Not offering earns nothing and draws no complaint, so an
offer's *lift over no offer* per offer made is the mean of its net values

.. math::

    v_i = \\text{revenue}_i - \\text{penalty}\\cdot[\\text{complaint}_i],
    \\qquad \\bar v = \\tfrac1n \\textstyle\\sum_i v_i,
    \\qquad \\bar v \\pm z\\, s_v / \\sqrt n

(revenue and complaint as monitoring counts them, ``bandit.deploy.monitoring.observe``; the
penalty is the reward's ``complaint_penalty``, so an offer is valued in the same terms the
learner learns from). An offer *works well* when it was made at least
``max(monitoring.min_offers, MIN_OFFERS)`` times (below 30 the normal interval is
optimistic), the lower bound of ``v̄`` is above 0, and the upper bound of its complaint
rate (Wilson's) is under its complaint limit: it pays, and it pays without drawing
complaints near the limit the monitor suspends at.

Everything here is pure; ``flows.working_well`` reads the log and sends the note.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bandit.config.catalog import Catalog
from bandit.config.policyfile import Monitoring
from bandit.deploy.monitoring import (
    MonitorWindow,
    Observation,
    OfferStats,
    complaint_limit,
    offer_stats,
)
from bandit.learn.ope import Z95

MIN_OFFERS = 30
DEFAULT_DAYS = 7.0


@dataclass(frozen=True)
class OfferValue:
    """One offer's week: its numbers, its lift over no offer per offer made (``value``, with
    a 95% interval), its complaint limit, and whether it works well."""

    stats: OfferStats
    value: float
    low: float
    high: float
    limit: float
    working_well: bool

    @property
    def offer_id(self) -> str:
        return self.stats.offer_id


def net_values(observations: Iterable[Observation], offer_id: str, penalty: float) -> list[float]:
    """``revenue − penalty·[complaint]`` of each offer of ``offer_id`` made in the window."""
    return [o.revenue - (penalty if o.complaint else 0.0)
            for o in observations if o.is_offer and o.offer_id == offer_id]


def mean_interval(xs: Sequence[float], z: float = Z95) -> tuple[float, float, float]:
    """``(x̄, x̄ − z·s/√n, x̄ + z·s/√n)``; unbounded with fewer than two values."""
    n = len(xs)
    if n == 0:
        return math.nan, -math.inf, math.inf
    m = math.fsum(xs) / n
    if n < 2:
        return m, -math.inf, math.inf
    s = math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (n - 1))
    return m, m - z * s / math.sqrt(n), m + z * s / math.sqrt(n)


def min_offers(monitoring: Monitoring) -> int:
    """Offers made before an offer can be said to work well: the monitor's own bar, at least ``MIN_OFFERS``."""
    return max(monitoring.min_offers, MIN_OFFERS)


def offer_values(observations: Sequence[Observation], catalog: Catalog, monitoring: Monitoring,
                 penalty: float) -> list[OfferValue]:
    """Every offer made in the window, valued; those working well first, best lower bound first."""
    by_offer, _ = offer_stats(observations)
    needed = min_offers(monitoring)
    out = []
    for oid, s in by_offer.items():
        value, low, high = mean_interval(net_values(observations, oid, penalty))
        limit = complaint_limit(oid, catalog, monitoring)
        good = s.offers >= needed and low > 0 and s.complaint_interval()[1] < limit
        out.append(OfferValue(s, value, low, high, limit, good))
    return sorted(out, key=lambda v: (not v.working_well, -v.low if math.isfinite(v.low) else math.inf, v.offer_id))


def _money(x: float) -> str:
    return f"{x:,.2f}" if math.isfinite(x) else "n/a"


def note(values: Sequence[OfferValue], window: MonitorWindow, penalty: float, owners: dict[str, str | None],
         needed: int = MIN_OFFERS) -> str:
    """The note as Markdown: the offers working well (with their owners), then every other
    offer made in the window, so a reader sees what did not make it and why."""
    good = [v for v in values if v.working_well]
    lines = [f"# Offers working well, {window.label}", "",
             (f"Lift over no offer per offer made: revenue minus {penalty:g} per complaint (the reward's penalty), "
              f"with its 95% interval. Working well: made at least {needed} times, the interval above 0, and the "
              "complaint rate's upper bound under the offer's limit."), ""]
    head = ["| offer | owner | offers | acceptance | complaints | lift per offer | 95% interval |",
            "|---|---|---|---|---|---|---|"]

    def row(v: OfferValue) -> str:
        s = v.stats
        return (f"| {v.offer_id} | {owners.get(v.offer_id) or '-'} | {s.offers} | {100 * s.acceptance_rate:.1f}% | "
                f"{s.complaints} ({100 * s.complaint_rate:.2f}%, limit {100 * v.limit:.1f}%) | {_money(v.value)} | "
                f"[{_money(v.low)}, {_money(v.high)}] |")

    if good:
        lines += [f"{len(good)} offer(s) working well: candidates to scale up.", ""] + head + [row(v) for v in good]
    else:
        lines += ["No offer's lift is significantly above no offer this week."]
    rest = [v for v in values if not v.working_well]
    if rest:
        lines += ["", "Other offers made in the window:", ""] + head + [row(v) for v in rest]
    return "\n".join(lines) + "\n"
