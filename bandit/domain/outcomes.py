"""The reward function: raw outcomes into the number the policy learns from.

Outcomes are stored raw; the reward is computed at training time, so the service
team can change the reward function and retrain on the same history. For a
decision made at time t whose chosen offer has margin m, with the outcomes that
arrived within the window ``t + window_hours`` (later ones are kept, not learned
from):

.. math::

    r = \\text{revenue} + \\text{declined} - \\text{penalty}\\cdot[\\text{complaint}]
        + w_{nps}\\,(\\text{nps} - 5) + \\sum \\text{reward values}

where revenue is the sum of ``converted`` values if any, else the ``accepted``
value (or m when the acceptance carries no value); ``declined`` adds
``declined_reward`` only when nothing was accepted. With no outcome in the window,
``r = default_reward``. VW minimizes cost, and ``cost = -r / scale``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field

from bandit.domain.context import Strict

OUTCOME_TYPES = ("accepted", "declined", "converted", "complaint", "nps", "reward")

# The outcome types that are contacts (the guardrails' contact history), and the kind each
# is recorded as.
CONTACT_KIND = {"declined": "declined", "accepted": "accepted", "converted": "accepted", "complaint": "complaint"}


@dataclass(frozen=True)
class Outcome:
    event_id: str
    type: str
    ts: float
    value: float | None = None
    score: float | None = None

    @property
    def dedupe(self) -> str:
        """Identity of an outcome: the same type, value and score twice is one outcome."""
        return f"{self.type}:{self.value!r}:{self.score!r}"


class RewardConfig(Strict):
    """How raw outcomes become the reward learned from (computed at training time)."""

    complaint_penalty: float = Field(300.0, ge=0, description="Subtracted once if any complaint arrives (see "
                                     "config/policy.yaml for why 300).")
    default_reward: float = Field(0.0, description="When no outcome arrives within the window.")
    declined_reward: float = 0.0
    window_hours: float = Field(72, gt=0, description="Outcomes later than this are kept, not learned from.")
    nps_weight: float = Field(0.0, description="Reward per NPS point above 0 (score 0..10 minus 5), 0 = unused.")
    scale: float = Field(100.0, gt=0, description="VW cost = -reward / scale (keeps costs near unit size).")


def in_window(outcomes: Sequence[Outcome], decided_ts: float, cfg: RewardConfig) -> list[Outcome]:
    limit = decided_ts + cfg.window_hours * 3600
    return [o for o in outcomes if o.ts <= limit]


def reward(outcomes: Sequence[Outcome], decided_ts: float, offer_value: float, cfg: RewardConfig) -> float:
    """The reward of one decision from its raw outcomes (see the module docstring)."""
    seen = in_window(outcomes, decided_ts, cfg)
    if not seen:
        return cfg.default_reward
    by_type: dict[str, list[Outcome]] = {}
    for o in seen:
        by_type.setdefault(o.type, []).append(o)
    r = 0.0
    if "converted" in by_type:
        r += sum(o.value or 0.0 for o in by_type["converted"])
    elif "accepted" in by_type:
        values = [o.value for o in by_type["accepted"] if o.value is not None]
        r += max(values) if values else offer_value
    elif "declined" in by_type:
        r += cfg.declined_reward
    if "complaint" in by_type:
        r -= cfg.complaint_penalty
    if cfg.nps_weight and "nps" in by_type:
        r += cfg.nps_weight * (by_type["nps"][-1].score - 5.0)  # type: ignore[operator]
    r += sum(o.value or 0.0 for o in by_type.get("reward", []))
    return r


def cost(r: float, cfg: RewardConfig) -> float:
    return -r / cfg.scale + 0.0  # never -0.0 in exports


def window_closed(decided_ts: float, as_of: float, cfg: RewardConfig) -> bool:
    """A decision is learnable once its reward window has passed (else its reward is unknown)."""
    return as_of >= decided_ts + cfg.window_hours * 3600
