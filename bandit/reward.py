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

from bandit.policyfile import RewardConfig
from bandit.store import Outcome

OUTCOME_TYPES = ("accepted", "declined", "converted", "complaint", "nps", "reward")


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
