"""Reproducible action sampling.

The service, not VW, draws the action, from a uniform number derived from the
event id: ``u = SHA-256(secret ":" event_id)[:8] / 2**64``. Given the logged
probabilities anyone holding the secret can replay exactly which action a decision
took, and a client cannot choose an event id to steer exploration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def uniform_from(event_id: str, secret: str) -> float:
    digest = hashlib.sha256(f"{secret}:{event_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sample_index(pmf: Sequence[float], u: float) -> int:
    """Inverse-CDF draw: the first index whose cumulative probability exceeds ``u``.

    Zero-probability actions are never drawn; rounding slack at the top falls to the
    last action with positive probability.
    """
    total = 0.0
    last_positive = 0
    for i, p in enumerate(pmf):
        if p > 0:
            last_positive = i
            total += p
            if u < total:
                return i
    return last_positive


def normalized(pmf: Sequence[float]) -> list[float]:
    """Clip negatives and renormalize (VW returns float32 values that need not sum to 1)."""
    clipped = [max(0.0, float(p)) for p in pmf]
    s = sum(clipped)
    if s <= 0:
        return [1.0 / len(clipped)] * len(clipped)
    return [p / s for p in clipped]


def baseline_pmf(n: int, epsilon: float) -> list[float]:
    """Cold-start exploration around ``no_offer`` (index 0): 1-ε+ε/n for it, ε/n for the rest."""
    if n == 1:
        return [1.0]
    share = epsilon / n
    return [1.0 - epsilon + share] + [share] * (n - 1)


def with_floor(pmf: Sequence[float], floor: float) -> list[float]:
    """The served pmf: ``(1 - floor) * pmf + floor / n`` for each of the ``n`` actions.

    Why: a deterministic explorer (RegCB-optimistic puts probability 1 on one action) frozen
    for a day logs no exploration at all, so off-policy evaluation, the promotion gate and
    ``tune`` have no rounds of any action the served model did not pick. The floor keeps
    every eligible action's probability at least ``floor / n`` (and the model's choice at
    least ``1 - floor``). It only ever spreads mass over the actions it is given, which are
    the guardrails' eligible ones, so it cannot reach an excluded offer; with ``no_offer``
    alone eligible the pmf stays ``[1.0]``. The result sums to 1 whenever ``pmf`` does, and
    it is what is sampled and logged, so the logged propensities are exact.
    """
    n = len(pmf)
    share = floor / n
    return [(1.0 - floor) * float(p) + share for p in pmf]
