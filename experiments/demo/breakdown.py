"""Where a demo run's complaints came from: each policy's decisions on the days a trained
model served the bandit, broken down by context (tone, resolution, request type, offer,
offer by intent, explored), with the simulator's expected complaints and revenue (its
hidden probabilities: the same decisions without the dice of the outcomes, so a few
hundred decisions already say something).

    .venv/bin/python experiments/demo/breakdown.py [--home .offer-bandit] [--by tone,offer_intent]

Reads ``<home>/demo`` as ``offer-bandit demo`` left it: the bandit's log (``decisions.db``,
written by the service) and the baselines' (``rules.db``, ``random.db``, ``oracle.db``);
the seed comes from the event ids (``sim-<seed>-<day>-<i>``), the model-served days from
the bandit's log (decisions not made by ``cold-start``), the complaint penalty from the
demo's policy file. Expected complaints count the customers' complaints from before day 0
(their channel sends them), not those during the run (the cooldown guardrail blocks an
offer to such a customer anyway). ``explored``: the bandit took an action other than its
most probable one.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bandit.config.catalog import NO_OFFER, load_catalog
from bandit.config.policyfile import load_policy
from experiments.simulator import Interaction, Simulator, load_params

REPO = Path(__file__).resolve().parents[2]
LOGS = {"bandit": "decisions.db", "rules": "rules.db", "random": "random.db", "oracle": "oracle.db"}


TONES = ("<0", "0-0.1", "0.1-0.2", "0.2-0.3", ">=0.3")


def tone(s: float) -> str:
    return TONES[0] if s < 0 else TONES[1] if s < 0.1 else TONES[2] if s < 0.2 else TONES[3] if s < 0.3 else TONES[4]


GROUPS: dict[str, Callable[[dict[str, Any], str, str], str]] = {
    "tone": lambda i, offer, how: tone(i["sentiment"]),
    "resolved": lambda i, offer, how: str(i["resolved"]),
    "request_type": lambda i, offer, how: i["request_type"],
    "offer": lambda i, offer, how: offer,
    "offer_intent": lambda i, offer, how: f"{offer} / {i.get('intent')}",  # which request each offer went to
    "explored": lambda i, offer, how: how,
}


def _rows(db: Path, keep: Callable[[str], bool]) -> list[tuple[str, str, dict[str, Any], bool]]:
    con = sqlite3.connect(db)
    try:
        complained = {e for (e,) in con.execute("select event_id from outcomes where type = 'complaint'")}
        return [(eid, chosen, json.loads(payload), eid in complained) for eid, chosen, payload in
                con.execute("select event_id, chosen_id, payload from decisions order by ts") if keep(eid)]
    finally:
        con.close()


def breakdown(work: Path, by: Sequence[str] = ("tone", "resolved", "offer", "explored"),
              catalog: Path | None = None, params: Path | None = None) -> dict[str, Any]:
    """Per policy: totals and, per grouping in ``by``, each group's decisions, offers,
    expected complaints and revenue, and realised complaints (the bandit's only: the
    baselines' outcomes are not logged)."""
    con = sqlite3.connect(work / LOGS["bandit"])
    try:  # as the demo's final table: the days a trained model served, else the last day
        logged = con.execute("select event_id, model_version from decisions").fetchall()
    finally:
        con.close()
    served = {int(e.split("-")[2]) for e, version in logged if version != "cold-start"}
    seed = int(logged[0][0].split("-")[1])
    days = sorted(served) or [max(int(e.split("-")[2]) for e, _ in logged)]
    policy = load_policy(work / "policy.yaml")
    sim = Simulator(load_params(params), load_catalog(catalog or REPO / "config/offers.yaml"), seed,
                    complaint_penalty=policy.reward.complaint_penalty)
    inters: dict[str, Interaction] = {i.event_id: i for d in days for i in sim.interactions(d)}
    out: dict[str, Any] = {"seed": seed, "days": [d + 1 for d in days], "policies": {}}
    for name, db in LOGS.items():
        total = {"decisions": 0, "offers": 0, "expected_complaints": 0.0, "expected_revenue": 0.0,
                 "complaints": 0}
        mine = [g for g in by if g != "explored" or name == "bandit"]  # the baselines do not explore
        groups: dict[str, dict[str, dict[str, float]]] = {g: defaultdict(lambda: dict.fromkeys(total, 0)) for g in mine}
        for eid, chosen, payload, complained in _rows(work / db, lambda e: e in inters):
            e = sim.expected(inters[eid], chosen)
            pmf, k = payload.get("pmf") or [1.0], payload.get("chosen_index", 0)
            how = "greedy" if pmf[k] == max(pmf) else "explored"
            add = {"decisions": 1, "offers": chosen != NO_OFFER, "expected_complaints": e.p_complaint,
                   "expected_revenue": e.p_accept * e.revenue, "complaints": int(complained)}
            interaction = payload["context"]["interaction"]
            for key, v in add.items():
                total[key] += v
                for g in mine:
                    groups[g][GROUPS[g](interaction, chosen, how)][key] += v
        out["policies"][name] = {"total": total, "groups": {g: dict(v) for g, v in groups.items()}}
    return out


def render(result: dict[str, Any]) -> str:
    lines = [f"seed {result['seed']}, days {', '.join(map(str, result['days']))} (the bandit served by a trained "
             "model); expected = from the simulator's hidden probabilities"]
    for name, p in result["policies"].items():
        t = p["total"]
        n = max(t["decisions"], 1)
        lines += ["", f"{name}: {t['decisions']} decisions, {t['offers'] / n:.1%} offers, expected complaint rate "
                  f"{t['expected_complaints'] / n:.2%}, expected revenue per interaction "
                  f"{t['expected_revenue'] / n:.2f}" + (f", realised complaints {t['complaints']}" if name == "bandit"
                                                         else ""),
                  f"  {'group':<48} {'decisions':>9} {'offers':>7} {'exp. complaints':>15} {'share':>6} "
                  f"{'per offer':>9} {'exp. revenue':>12} {'share':>6}"]
        for g, rows in p["groups"].items():
            for key, r in sorted(rows.items(), key=lambda kv: (TONES.index(kv[0]) if g == "tone" else 0, kv[0])):
                c, rev = r["expected_complaints"], r["expected_revenue"]
                lines.append(f"  {g + ' ' + key:<48} {r['decisions']:>9} {r['offers']:>7} {c:>15.2f} "
                             f"{c / max(t['expected_complaints'], 1e-9):>6.0%} {c / max(r['offers'], 1):>9.2%} "
                             f"{rev:>12.0f} {rev / max(t['expected_revenue'], 1e-9):>6.0%}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, default=Path(".offer-bandit"), help="the demo's --home (default: the demo's)")
    ap.add_argument("--by", default="tone,resolved,offer,explored", help=f"groupings, of {', '.join(GROUPS)}")
    ap.add_argument("--catalog", type=Path, help="catalog the demo ran with (default config/offers.yaml)")
    ap.add_argument("--params", type=Path, help="simulator parameters the demo ran with (default the shipped ones)")
    ap.add_argument("--json", type=Path, help="also write the breakdown here as JSON")
    args = ap.parse_args(argv)
    by = [g for g in args.by.split(",") if g]
    unknown = [g for g in by if g not in GROUPS]
    if unknown:
        ap.error(f"unknown grouping(s) {unknown}; use {', '.join(GROUPS)}")
    result = breakdown(args.home / "demo", by, args.catalog, args.params)
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
