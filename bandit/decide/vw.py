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

from bandit.config.policyfile import Exploration
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


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_version(path: Path) -> str:
    return "file:" + file_digest(path)[:12]


def checksum_file(model_file: Path) -> Path:
    """Where ``VWModel.save`` writes a model's SHA-256: beside it, ``<name>.sha256``."""
    return model_file.with_name(model_file.name + ".sha256")


class ModelIntegrityError(RuntimeError):
    """A model file does not match the checksum saved with it: truncated or altered.

    Why a checksum: VW reads a model's weights until the end of the file, so a model cut
    short (a copy interrupted, a disk full) loads without error and scores with part of
    its weights (measured: a trained model cut at 90% loaded and predicted)."""


_ENSEMBLES = ("bag", "cover")


def trained_explorer(arguments: str) -> tuple[str, int | None]:
    """The explorer (and ensemble size) a model's VW arguments name, as
    ``Exploration.structure`` says it: ``--cb_explore_adf`` alone is epsilon-greedy."""
    words = arguments.split()
    # regcbopt first: a regcb model loaded with --regcbopt runs with both flags and is optimistic
    for name in ("squarecb", "regcbopt", "regcb", "softmax", *_ENSEMBLES):
        flag = f"--{name}"
        if flag in words:
            if name in _ENSEMBLES:
                i = words.index(flag)
                return name, int(words[i + 1]) if i + 1 < len(words) and words[i + 1].isdigit() else None
            return name, None
    return "epsilon", None


def _explorer_text(structure: tuple[str, int | None]) -> str:
    name, size = structure
    return f"{name} {size}" if size is not None else name


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
        self.exploration_note: str | None = None

    @classmethod
    def fresh(cls, args: list[str]) -> "VWModel":
        return cls(args, version="untrained")

    @classmethod
    def load(cls, path: Path, version: str | None = None, exploration: Exploration | None = None) -> "VWModel":
        """Load a saved model; its VW arguments are stored in the file itself.

        With ``exploration`` (the policy file's), the model explores with its parameters
        (``Exploration.tunable_args``) when it was trained with the same explorer and
        ensemble size; otherwise it explores as trained, and ``exploration_note`` says why
        (VW refuses a different ensemble size, and reads another explorer's weights as
        nonsense: an epsilon-greedy model loaded with ``--bag 3`` scored every action alike)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        expected = checksum_file(path)
        if expected.is_file() and expected.read_text().strip() != file_digest(path):
            raise ModelIntegrityError(f"{path} does not match its checksum {expected.name}: truncated or altered")
        version = version or file_version(path)
        model = cls([], version=version, model_file=path)
        if exploration is None:
            return model
        trained = trained_explorer(model.arguments())
        if trained != exploration.structure():
            model.exploration_note = (f"explores as trained ({_explorer_text(trained)}); the policy file's "
                                      f"{_explorer_text(exploration.structure())} applies from the next retrain")
            return model
        tuned = exploration.tunable_args()
        return cls(tuned, version=version, model_file=path) if tuned else model

    def arguments(self) -> str:
        """The VW arguments the workspace runs with (those stored in the model file included)."""
        return str(self._ws.get_arguments())

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
        """Save the model, and its SHA-256 beside it (``checksum_file``: ``load`` refuses a
        copy that does not match); returns its content version."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with self._lock:
            self._ws.save(str(tmp))
        digest = file_digest(tmp)
        checksum_file(path).write_text(digest + "\n")
        tmp.replace(path)  # atomic: a reader never sees half a model
        self.version = "file:" + digest[:12]
        return self.version
