"""The control group: the holdout that shows the bandit's lift in production.

Simulation cannot prove lift; a holdout can. A stable share of customers is served by
a fixed control policy (the rules-only marketing heuristic, or ``no_offer``) instead of
the model. Membership is a pure function of the customer key (already an HMAC of the
customer id) and the group's salt, so a customer stays in the same group on every
channel and replica, and nobody can tell from the log who is in it without the secret.

The control policy sees exactly what the guardrails let through, and its decisions are
logged like any other, with their probabilities (deterministic: 1 for its choice) and
the model's own probabilities under ``payload.shadow``, flagged ``mode = control``.
``bandit.learn.evaluation.rules_policy`` replays the same rule off-policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bandit.config.catalog import NO_OFFER, Catalog
from bandit.config.policyfile import ControlGroup


def in_control(customer_key: str, cfg: ControlGroup) -> bool:
    """``u(customer) < share`` with ``u`` uniform on [0, 1) from SHA-256(salt, key):
    the same customer always lands in the same group for the same salt."""
    if cfg.share <= 0:
        return False
    digest = hashlib.sha256(f"{cfg.salt}\x00{customer_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < cfg.share


def rules_choice(action_ids: Sequence[str], catalog: Catalog, resolved: str | None, sentiment: float | None,
                 min_sentiment: float) -> int:
    """The hand-written marketing heuristic, as an index into ``action_ids``: when the
    issue is resolved (``"true"``) and the tone is at least ``min_sentiment``, the eligible
    offer with the highest value; otherwise ``no_offer`` (index 0)."""
    if resolved != "true" or sentiment is None or sentiment < min_sentiment:
        return 0
    offers = [(catalog.offers[a].value, k) for k, a in enumerate(action_ids) if a != NO_OFFER and a in catalog.offers]
    return max(offers)[1] if offers else 0


def control_pmf(action_ids: Sequence[str], catalog: Catalog, resolved: str | None, sentiment: float | None,
                cfg: ControlGroup) -> list[float]:
    """The control policy's probabilities over the eligible actions (``no_offer`` first)."""
    k = 0 if cfg.policy == "no_offer" else rules_choice(action_ids, catalog, resolved, sentiment,
                                                         cfg.rules_min_sentiment)
    return [1.0 if i == k else 0.0 for i in range(len(action_ids))]
