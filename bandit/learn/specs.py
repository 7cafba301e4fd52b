"""What ``offer-bandit evaluate`` accepts: policy specs and its defaults.

Apart from ``bandit.learn.offline`` so that the command line can list the forms and
check a spec without importing VW (``offer-bandit --help`` stays instant).
"""

from __future__ import annotations

from dataclasses import dataclass

from bandit.domain.errors import InvalidRequest
from bandit.learn.intervals import INTERVALS  # re-exported: the command line lists the constructions

POLICY_FORMS = ("champion", "registry:<version>", "model:<path>", "policyfile:<path>", "no_offer", "uniform",
                "rules", "fixed:<offer id>")
"""What the POLICY arguments of ``offer-bandit evaluate`` accept."""
_PLAIN = ("champion", "no_offer", "uniform", "rules")
_WITH_ARGUMENT = ("registry", "model", "policyfile", "fixed")
DEFAULT_FOLDS = 3
"""Cross-fitting folds of DR's reward model (``bandit.learn.reward_model``): each model learns
from two thirds of the rounds."""
DEFAULT_INTERVAL = "el_wmax"
"""Empirical likelihood with a pseudo-round at the policy's largest possible weight: of the
constructions measured, the one that held 95% coverage with a 0.5% reward rate
(experiments/README.md, "Off-policy evaluation"; plain empirical likelihood and the normal
interval fell short)."""


@dataclass(frozen=True)
class PolicySpec:
    """One POLICY argument: its text (the policy's name in the report), kind and argument."""

    text: str
    kind: str
    argument: str | None = None

    @property
    def needs_registry(self) -> bool:
        return self.kind in ("champion", "registry")


def parse_spec(text: str) -> PolicySpec:
    """``text`` as a policy spec; ``InvalidRequest`` naming ``policy`` and listing the valid
    forms otherwise."""
    kind, colon, argument = text.partition(":")
    if not colon and kind in _PLAIN:
        return PolicySpec(text, kind)
    if colon and kind in _WITH_ARGUMENT and argument.strip():
        return PolicySpec(text, kind, argument.strip())
    raise InvalidRequest("policy", f"unknown policy {text!r}; valid forms: {', '.join(POLICY_FORMS)}")
