"""A Personalizer-style DSJSON history with every kind of feature a history holds: string,
number and boolean values, nested objects, arrays of numbers and of objects, several
namespaces and a top-level feature, action ids in ``_tag``, in a top-level ``id`` and in
an ``id`` inside a namespace, ``_skipLearn`` events, and no ``_ob`` (ours only)."""

import json
import random
from datetime import datetime, timedelta

ACTIONS = [
    {"_tag": "news", "Article": {"topic": "politics", "words": 800, "breaking": True}},
    {"Offer": {"id": "a1", "price": 3, "premium": True, "colors": [1, 0, 1]}},
    {"id": "sports", "Article": {"topic": "sports", "words": 350, "breaking": False}},
    {"Offer": {"id": "a3", "price": 12.5, "premium": False, "bundle": {"items": 2, "kind": "family plan"}}},
]
IDS = ["news", "a1", "sports", "a3"]
BEST = {"morning": 0, "evening": 1}  # the action that pays, by the string feature timeOfDay


def context(rng: random.Random) -> dict:
    """The shared features of one event."""
    return {
        "GUser": {"timeOfDay": rng.choice(["morning", "evening"]), "vip": rng.random() < 0.3,
                  "visits": rng.randint(0, 9), "device": {"os": rng.choice(["mac os", "windows"]), "mobile": True},
                  "recent": [round(rng.random(), 3), None, rng.randint(0, 3)]},
        "Session": {"pages": [{"kind": "shop", "secs": rng.randint(1, 90)}, {"kind": "help"}],
                    "referrer": None},
        "weekday": rng.choice(["Mon", "Tue", "Sat"]),
    }


def personalizer_history(n: int, start: datetime, seed: int = 7, skip_every: int = 10) -> list[str]:
    """``n`` events a minute apart from ``start``; every ``skip_every``-th is ``_skipLearn``
    (a deferred event never activated: no cost, every other one without ``_label_cost``)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        c = context(rng)
        chosen = rng.randrange(len(ACTIONS))
        ts = start + timedelta(minutes=i)
        reward = 1.0 if chosen == BEST[c["GUser"]["timeOfDay"]] else 0.0
        obj: dict = {
            "_label_cost": -reward, "_label_probability": 0.25, "_label_Action": chosen + 1, "_labelIndex": chosen,
            "o": [{"v": reward, "EventId": f"p{i}", "ActionTaken": True}],
            "Timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "4Z",  # Personalizer: 7 digits
            "Version": "1", "EventId": f"p{i}",
            "a": [chosen + 1, *(k + 1 for k in range(len(ACTIONS)) if k != chosen)], "p": [0.25] * 4,
            "c": {**c, "_multi": ACTIONS}, "VWState": {"m": "5b2e3c/7a1d"},
        }
        if skip_every and i % skip_every == skip_every - 1:
            obj["_skipLearn"] = True
            obj.pop("o")
            if i % (2 * skip_every) == skip_every - 1:
                obj.pop("_label_cost")
        lines.append(json.dumps(obj))
    return lines
