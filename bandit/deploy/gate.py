"""The promotion gate: a retrained candidate replaces the champion only on evidence.

Promote only when all hold, on the same held-out log (``bandit.learn.evaluation``):

- enough evidence: at least ``min_events`` evaluated decisions, and the candidate's
  effective sample size at least ``min_ess``;
- better, by the configured ``rule``:

  - ``paired`` (the default): the candidate's estimated reward per decision is above the
    champion's, and the lower 95% bound of the paired difference
    ``candidate - champion`` (``bandit.learn.ope.difference``: both policies judged on the
    same held-out rounds, so they share the log's noise, and where they agree it cancels)
    is above ``-non_inferiority_margin``. Why not superiority (the bound above 0): on the
    1,200 to 2,400 held-out decisions of a night, a candidate a little better than the
    champion almost never shows it with 95% confidence, so the loop stopped improving after
    its first model; a candidate that is estimated better and is not credibly worse by
    more than the margin is let through, and the complaint checks below still hold it.
  - ``personalizer``: Azure Personalizer's Auto-Optimize rule, for comparison: the
    candidate's estimate above the champion's and its own lower bound above the champion's
    own lower bound (unpaired intervals).

- no more complaints: the upper 95% bound of the candidate's complaint rate is under the
  cap ``max_complaint_rate``, and its estimated complaint rate is at most the champion's
  plus ``complaint_tolerance``. A first model (no champion yet) is judged against
  ``no_offer`` and held to the cap alone: ``no_offer``'s complaint rate is zero by
  construction, and demanding it would mean never making an offer.

Otherwise the champion stays, and every reason is recorded. Pure: the flow that
calls it moves registry aliases and logs the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from bandit.config.policyfile import Promotion
from bandit.learn.evaluation import Comparison, PolicyEvaluation


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reasons: list[str]  # why not (empty when promoted), or why, when promoted

    def summary(self) -> str:
        return ("promote: " if self.promote else "keep the champion: ") + "; ".join(self.reasons)


def gate(comparison: Comparison, cfg: Promotion, candidate: str = "candidate",
         champion: str | None = "champion") -> Verdict:
    """Decide from a comparison holding ``candidate`` and (unless there is none yet)
    ``champion``. With no champion, the candidate must beat ``no_offer`` instead: a first
    model is promoted only if it does better than making no offers at all."""
    cand = comparison.policies[candidate]
    base_name = champion if champion is not None and champion in comparison.policies else "no_offer"
    base = comparison.policies[base_name]
    problems = []
    if comparison.n < cfg.min_events:
        problems.append(f"only {comparison.n} evaluated decisions, {cfg.min_events} needed")
    if cand.ess < cfg.min_ess:
        problems.append(f"candidate's effective sample size {cand.ess:.0f} is below {cfg.min_ess:.0f}")
    better, why = (_paired if cfg.rule == "paired" else _personalizer)(comparison, cfg, candidate, base_name)
    if not better:
        problems.append(why)
    problems += _complaints(cand, base if base_name != "no_offer" else None, base_name, cfg)
    if problems:
        return Verdict(False, problems)
    c = cand.complaint_rate
    rate = f"complaint rate {c.value:.4f} (upper bound {c.high:.4f} <= the cap {cfg.max_complaint_rate:g}"
    if base_name != "no_offer":
        rate += f"; {base_name}'s {base.complaint_rate.value:.4f} + {cfg.complaint_tolerance:g}"
    return Verdict(True, [f"{why}; {rate}); {comparison.n} decisions, ESS {cand.ess:.0f}"])


def _paired(comparison: Comparison, cfg: Promotion, candidate: str, base: str) -> tuple[bool, str]:
    """Estimate above the base's, paired lower bound of the difference above -margin."""
    diff = comparison.difference(candidate, base, cfg.estimator)
    if diff is None:
        return False, f"no paired estimate of {candidate} minus {base} ({cfg.estimator}) to judge by"
    floor = -cfg.non_inferiority_margin or 0.0  # not "-0"
    said = (f"{candidate} minus {base}: {diff.value:+.4f} ({cfg.estimator}), paired lower bound {diff.low:+.4f}")
    if not diff.value > 0:
        return False, f"{said}: the estimate is not above {base}'s"
    if not diff.low > floor:
        return False, f"{said} is not above {floor:+g} (-non_inferiority_margin)"
    return True, f"{said} > {floor:+g}"


def _personalizer(comparison: Comparison, cfg: Promotion, candidate: str, base: str) -> tuple[bool, str]:
    """Personalizer's Auto-Optimize: estimate and own lower bound above the base's."""
    c, b = comparison.policies[candidate].reward[cfg.estimator], comparison.policies[base].reward[cfg.estimator]
    said = (f"{candidate} {c.value:+.4f} [{c.low:+.4f}, {c.high:+.4f}] vs {base} {b.value:+.4f} "
            f"[{b.low:+.4f}, {b.high:+.4f}] ({cfg.estimator})")
    if not (c.value > b.value and c.low > b.low):
        return False, f"{said}: estimate and lower bound not both above {base}'s"
    return True, said


def _complaints(cand: PolicyEvaluation, champion: PolicyEvaluation | None, champion_name: str,
                cfg: Promotion) -> list[str]:
    """The complaint checks: the upper bound under the cap, and (against a champion) the
    estimate at most the champion's plus the tolerance."""
    out = []
    c = cand.complaint_rate
    if c.high > cfg.max_complaint_rate:
        out.append(f"candidate's complaint rate {c.value:.4f} has upper bound {c.high:.4f}, above the cap "
                   f"{cfg.max_complaint_rate:g}")
    if champion is not None and c.value > champion.complaint_rate.value + cfg.complaint_tolerance:
        out.append(f"candidate's complaint rate {c.value:.4f} is above {champion_name}'s "
                   f"{champion.complaint_rate.value:.4f} + {cfg.complaint_tolerance:g}")
    return out
