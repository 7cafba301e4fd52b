"""The Vowpal Wabbit policy: ``--cb_explore_adf`` over the eligible offers only.

A scorer turns (shared features, action features) into a probability mass over
exactly the actions it is given, which are the guardrails' eligible offers; so the
mass is over eligible offers only. Two scorers exist:

- ``ColdStart``: no model yet; explores around ``no_offer`` as the baseline.
- ``VWModel``: a VW workspace, from VW arguments (fresh) or a saved model file.

Both take the features as DSJSON context objects (``bandit.log.vwjson.Features``): live
features from ``bandit.decide.features`` and an imported history's alike. ``VWModel``
reads them with VW's own DSJSON reader, the one training reads the log with, so what a
model learned and what it scores are featurized once, by VW.

A VW workspace is not thread-safe, so prediction and learning hold a lock.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import vowpalwabbit

from bandit.decide.sampling import baseline_pmf, normalized
from bandit.log.vwjson import READER_ARGS, Features, Label, event

COLD_START = "cold-start"


class Scorer(Protocol):
    version: str

    def pmf(self, shared: Features, actions: Sequence[Features]) -> list[float]: ...


class ColdStart:
    """The policy before any model exists: ``no_offer`` with 1-ε, the rest share ε."""

    version = COLD_START

    def __init__(self, epsilon: float):
        self.epsilon = epsilon

    def pmf(self, shared: Features, actions: Sequence[Features]) -> list[float]:
        return baseline_pmf(len(actions), self.epsilon)


def file_version(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "file:" + h.hexdigest()[:12]


class VWModel:
    """A VW contextual bandit over action-dependent features."""

    def __init__(self, args: list[str], version: str, model_file: Path | None = None):
        argv = [*args, *READER_ARGS, "--quiet"]
        if model_file is not None:
            argv += ["-i", str(model_file)]
        self._ws = vowpalwabbit.Workspace(" ".join(argv))
        self._lock = threading.Lock()
        self.args = list(args)
        self.version = version

    @classmethod
    def fresh(cls, args: list[str]) -> "VWModel":
        return cls(args, version="untrained")

    @classmethod
    def load(cls, path: Path, version: str | None = None) -> "VWModel":
        """Load a saved model; its VW arguments are stored in the file itself."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        return cls([], version=version or file_version(path), model_file=path)

    def pmf(self, shared: Features, actions: Sequence[Features]) -> list[float]:
        """The exploring policy's probabilities over ``actions``; a context VW's reader
        cannot read raises ``RuntimeError`` with VW's message."""
        line = event(shared, actions)
        with self._lock:
            out = self._ws.predict(line)
        if not isinstance(out, list) or len(out) != len(actions):
            raise RuntimeError(f"VW returned {out!r} for {len(actions)} actions")
        return normalized(out)

    def learn(self, shared: Features, actions: Sequence[Features], chosen: int, cost: float, prob: float) -> None:
        line = event(shared, actions, Label(chosen, cost, prob))
        with self._lock:
            self._ws.learn(line)

    def save(self, path: Path) -> str:
        """Save the model; returns its content version."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with self._lock:
            self._ws.save(str(tmp))
        tmp.replace(path)  # atomic: a reader never sees half a model
        self.version = file_version(path)
        return self.version
