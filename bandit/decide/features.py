"""Featurization: interaction context and offers into Vowpal Wabbit namespaces.

The mapping (the learner's ``interactions`` pair namespaces by first letter):

=============  =====  ==========================================================
namespace      letter features
=============  =====  ==========================================================
``context``    c      ``channel=<c>``, ``rt=<request type>``, ``intent=<label>``,
                      ``resolved=<true|false|unknown>``, ``auth=<yes|no>``
``emotion``    e      ``sentiment:<-1..1>``, ``tone=<neg|neutral|pos>``; when no
                      sentiment was sent, ``tone=unknown`` alone
``user``       u      ``tier=<t>``, ``tenure=<0-6m|6-24m|24-60m|60m+>``,
                      ``region=<r>``, ``has=<product>`` per product held,
                      ``n_products:<log1p(count)>``
``history``    h      ``shown_30d:<log1p>``, ``declined_90d:<log1p>``,
                      ``accepted_365d:<log1p>``, ``complaint=<never|<90d|older>``
``xattrs``     x      channel-sent attributes: ``<key>=<value>`` for text and
                      booleans, ``<key>:<number>`` for numbers
``offer``      o      (per action) ``id=<offer>``, ``family=<family>``,
                      ``value:<log1p(margin)>``
=============  =====  ==========================================================

The raw customer id never becomes a feature. Features are plain dicts
``{namespace: {feature: value}}``: DSJSON context objects (``bandit.log.vwjson``), which
VW's own DSJSON reader turns into hashed features both when a model is trained on the
log's export and when it scores a request. Nothing here knows VW's input format, so
what these functions return can change freely: any namespaces of JSON values are read
the same way by training and scoring.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from bandit.config.catalog import NO_OFFER, Offer
from bandit.domain.context import DecisionRequest, History

Namespaces = dict[str, dict[str, float]]

_UNSAFE = re.compile(r"[\s|:]+")


def token(value: object) -> str:
    """A string safe inside a VW feature name (no spaces, pipes or colons)."""
    return _UNSAFE.sub("_", str(value).strip().lower()) or "_"


def _tenure_bucket(months: int) -> str:
    if months < 6:
        return "0-6m"
    if months < 24:
        return "6-24m"
    if months < 60:
        return "24-60m"
    return "60m+"


def _tone(sentiment: float) -> str:
    if sentiment < -0.2:
        return "neg"
    if sentiment > 0.2:
        return "pos"
    return "neutral"


def shared_features(request: DecisionRequest, history: History, now: datetime) -> Namespaces:
    c, i = request.customer, request.interaction
    context = {
        f"channel={request.channel.value}": 1.0,
        f"rt={i.request_type.value}": 1.0,
        f"resolved={i.resolved.value}": 1.0,
        f"auth={'yes' if c.authenticated else 'no'}": 1.0,
    }
    if i.intent:
        context[f"intent={token(i.intent)}"] = 1.0
    user = {
        f"tier={token(c.tier)}": 1.0,
        f"tenure={_tenure_bucket(c.tenure_months)}": 1.0,
        "n_products": math.log1p(len(c.products)),
    }
    if c.region:
        user[f"region={token(c.region)}"] = 1.0
    for p in c.products:
        user[f"has={token(p)}"] = 1.0

    def recent(events: tuple, days: int) -> float:
        since = now - timedelta(days=days)
        return math.log1p(sum(1 for e in events if e.at >= since))

    if history.last_complaint is None:
        complaint = "never"
    elif now - history.last_complaint < timedelta(days=90):
        complaint = "<90d"
    else:
        complaint = "older"
    hist = {
        "shown_30d": recent(history.shown, 30),
        "declined_90d": recent(history.declined, 90),
        "accepted_365d": recent(history.accepted, 365),
        f"complaint={complaint}": 1.0,
    }
    out: Namespaces = {
        "context": context,
        # an unobserved tone is a tone of its own, not neutral
        "emotion": ({"tone=unknown": 1.0} if i.sentiment is None
                    else {"sentiment": float(i.sentiment), f"tone={_tone(i.sentiment)}": 1.0}),
        "user": user,
        "history": hist,
    }
    if request.attributes:
        x: dict[str, float] = {}
        for k, v in request.attributes.items():
            if isinstance(v, bool) or isinstance(v, str):
                x[f"{token(k)}={token(v)}"] = 1.0
            elif math.isfinite(v):
                x[token(k)] = float(v)
        out["xattrs"] = x
    return out


def offer_features(offer: Offer | None) -> Namespaces:
    """Action features; ``None`` is the built-in ``no_offer``."""
    if offer is None:
        return {"offer": {f"id={NO_OFFER}": 1.0, f"family={NO_OFFER}": 1.0}}
    return {
        "offer": {
            f"id={token(offer.id)}": 1.0,
            f"family={token(offer.family)}": 1.0,
            "value": math.log1p(offer.value),
        }
    }

