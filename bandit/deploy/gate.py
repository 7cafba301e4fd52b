"""The promotion gate: a retrained candidate replaces the champion only on evidence.

Promote only when all hold, on the same held-out log (``bandit.learn.evaluation``):

- enough evidence: at least ``min_events`` evaluated decisions, and the candidate's
  effective sample size at least ``min_ess``;
- better: the lower 95% bound of the candidate's reward per decision *minus the
  champion's*, estimated on the same held-out rounds with a paired interval
  (``bandit.learn.ope.difference``, the configured estimator), is above ``margin``. Both
  policies are judged on one log, so they share its noise, and where they agree it cancels.
  (The former rule, the candidate's own lower bound above the champion's estimate, ignored
  that: on the demo's later nights the candidates' own intervals were two to three times
  as wide as the paired ones, so only a far better candidate could pass.);
- no more complaints: the candidate's estimated complaint rate is at or below the
  champion's and under the absolute cap ``max_complaint_rate``. A first model (no champion
  yet) is held to the cap alone: ``no_offer``'s complaint rate is zero by construction, and
  demanding it would mean never making an offer.

Otherwise the champion stays, and every reason is recorded. Pure: the flow that
calls it moves registry aliases and logs the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from bandit.learn.evaluation import Comparison
from bandit.config.policyfile import Promotion


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
    diff = comparison.difference(candidate, base_name, cfg.estimator)
    problems = []
    if comparison.n < cfg.min_events:
        problems.append(f"only {comparison.n} evaluated decisions, {cfg.min_events} needed")
    if cand.ess < cfg.min_ess:
        problems.append(f"candidate's effective sample size {cand.ess:.0f} is below {cfg.min_ess:.0f}")
    if diff is None:
        problems.append(f"no paired estimate of {candidate} minus {base_name} ({cfg.estimator}) to judge by")
    elif not diff.low > cfg.margin:
        problems.append(f"candidate minus {base_name}: {diff.value:+.4f} ({cfg.estimator}), lower bound "
                        f"{diff.low:+.4f} is not above margin {cfg.margin:g}")
    c_rate = cand.complaint_rate.value
    against_champion = base_name != "no_offer"
    b_rate = base.complaint_rate.value if against_champion else cfg.max_complaint_rate
    if against_champion and c_rate > b_rate:
        problems.append(f"candidate's complaint rate {c_rate:.4f} is above {base_name}'s {b_rate:.4f}")
    if c_rate > cfg.max_complaint_rate:
        problems.append(f"candidate's complaint rate {c_rate:.4f} is above the cap {cfg.max_complaint_rate:g}")
    if problems:
        return Verdict(False, problems)
    rate = (f"complaint rate {c_rate:.4f} <= {base_name}'s {b_rate:.4f} and <= {cfg.max_complaint_rate:g}"
            if against_champion else f"complaint rate {c_rate:.4f} <= the cap {cfg.max_complaint_rate:g}")
    assert diff is not None
    return Verdict(True, [f"candidate minus {base_name}: {diff.value:+.4f} ({cfg.estimator}), lower bound "
                          f"{diff.low:+.4f} > margin {cfg.margin:g}; {rate}; {comparison.n} decisions, "
                          f"ESS {cand.ess:.0f}"])
