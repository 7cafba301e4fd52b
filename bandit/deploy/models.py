"""Which model the service serves: a source, a last-known-good copy, and cold start.

A ``ModelSource`` says which version is current and materializes it as a local VW
model file: a plain file path now, the MLflow registry's champion alias later (an
adapter outside the core implements the same two methods). ``ModelManager``:

- at start, loads the source's current version; if the source is unreachable or
  the model broken, the local last-known-good copy; with neither, the cold-start
  policy, and says which in ``status``;
- polls the source, and swaps a new version in atomically between requests only
  after it loaded and scored a probe; a model that fails to load never replaces
  the one serving;
- keeps the last model that loaded under ``<home>/models/`` as last-known-good;
- serves every model, and cold start, with the exploration the policy file says now
  (``Exploration.tunable_args``, read through ``exploration`` at each load and poll): a
  policy file reloaded with another epsilon reaches the served model at the next poll,
  without a retrain.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Protocol

from bandit.config.policyfile import Exploration
from bandit.decide.decider import ModelSlot
from bandit.decide.features import offer_features
from bandit.decide.vw import COLD_START, ColdStart, VWModel, checksum_file, file_digest, file_version

log = logging.getLogger(__name__)


class ModelSource(Protocol):
    name: str

    def current_version(self) -> str | None:
        """The version that should be served, or ``None`` when there is none yet."""

    def fetch(self, version: str) -> Path:
        """A local VW model file for ``version``."""


class FileModelSource:
    """A model file on disk; its version is its content hash."""

    name = "file"

    def __init__(self, path: Path):
        self.path = Path(path)

    def current_version(self) -> str | None:
        return file_version(self.path) if self.path.is_file() else None

    def fetch(self, version: str) -> Path:
        return self.path


@dataclass
class ModelStatus:
    source: str  # "file" | "registry" | "last_known_good" | "cold_start"
    version: str
    loaded_at: float = field(default_factory=time.time)
    last_error: str | None = None
    exploration: str | None = None  # how the served model explores, when not as the policy file says

    def as_dict(self) -> dict:
        return {"source": self.source, "version": self.version, "loaded_at": self.loaded_at,
                "last_error": self.last_error, "exploration": self.exploration}


_PROBE_SHARED = {"context": {"channel=web": 1.0}}
_PROBE_ACTIONS = [offer_features(None), {"offer": {"id=probe": 1.0}}]


def load_checked(path: Path, version: str, exploration: Exploration | None = None) -> VWModel:
    """Load a model (exploring as ``exploration`` says, ``VWModel.load``) and make it score a
    probe: a file that loads but cannot predict is broken."""
    model = VWModel.load(path, version=version, exploration=exploration)
    pmf = model.pmf(_PROBE_SHARED, _PROBE_ACTIONS)
    if len(pmf) != 2:
        raise RuntimeError(f"model {version} does not score action-dependent examples")
    return model


class ModelManager:
    """``exploration`` gives the policy file's exploration as it is now (``LiveConfig``)."""

    def __init__(self, slot: ModelSlot, source: ModelSource | None, cache_dir: Path,
                 exploration: Callable[[], Exploration]):
        self.slot = slot
        self.source = source
        self.cache_dir = Path(cache_dir)
        self.exploration = exploration
        self._explored_with: Exploration | None = None  # what the serving scorer was built with
        self.status = ModelStatus("cold_start", COLD_START)
        self.load_failures = 0  # versions (or explorations) that failed to load: a metric
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def _good_file(self) -> Path:
        return self.cache_dir / "last-known-good.vw"

    @property
    def _good_meta(self) -> Path:
        return self.cache_dir / "last-known-good.json"

    def serving_file(self) -> Path | None:
        """A copy of the model file serving now (the last-known-good copy, which is the
        serving version), or ``None`` in cold start: what a model export hands out."""
        if self.status.source == "cold_start" or not self._good_file.is_file():
            return None
        return self._good_file

    def start(self) -> ModelStatus:
        """Initial load: source, else last-known-good, else cold start."""
        if self.refresh():
            return self.status
        error = self.status.last_error
        if self._good_file.is_file() and self._good_meta.is_file():
            try:
                meta = json.loads(self._good_meta.read_text())
                model = self._serve(self._good_file, meta["version"])
                self.status = ModelStatus("last_known_good", model.version, last_error=error,
                                          exploration=model.exploration_note)
                log.warning("serving last-known-good model %s (%s)", model.version, error)
                return self.status
            except Exception as exc:  # noqa: BLE001
                error = f"{error}; last-known-good unusable: {exc}" if error else f"last-known-good unusable: {exc}"
        self._cold_start()
        self.status = ModelStatus("cold_start", COLD_START, last_error=error)
        return self.status

    def _serve(self, path: Path, version: str) -> VWModel:
        """Load ``path`` with the exploration the policy file says now and swap it in."""
        exploration = self.exploration()
        model = load_checked(path, version, exploration)
        self.slot.swap(model)
        self._explored_with = exploration
        return model

    def _cold_start(self) -> None:
        exploration = self.exploration()
        self.slot.swap(ColdStart(exploration.cold_start_epsilon))
        self._explored_with = exploration

    def follow_exploration(self) -> bool:
        """Rebuild the serving scorer if the policy file's exploration changed since it was
        built (a reload); ``True`` if it did. The model reloads from the last-known-good copy,
        which is the serving version."""
        exploration = self.exploration()
        if exploration == self._explored_with:
            return False
        with self._lock:
            if self.status.source == "cold_start":
                self._cold_start()
            else:
                model = self._serve(self._good_file, self.status.version)
                self.status.exploration = model.exploration_note
        log.info("serving %s with the policy file's exploration: %s", self.status.version,
                 " ".join(exploration.vw_args()))
        return True

    def refresh(self) -> bool:
        """Check the source once; load and swap a new version. ``True`` if a source model serves."""
        if self.source is None:
            return False
        with self._lock:
            version = None
            try:
                version = self.source.current_version()
                if version is None:
                    self.status.last_error = f"{self.source.name}: no model available yet"
                    return False
                if version == self.status.version and self.status.source == self.source.name:
                    self.status.last_error = None  # e.g. a broken version was rolled back
                    return True
                path = self.source.fetch(version)
                model = self._serve(path, version)
            except Exception as exc:  # noqa: BLE001 - keep serving what serves
                which = f"{self.source.name} version {version}" if version else self.source.name
                self.status.last_error = f"{which}: {type(exc).__name__}: {exc}"
                self.load_failures += 1
                log.error("model refresh failed, keeping %s: %s", self.status.version, self.status.last_error)
                return False
            self.status = ModelStatus(self.source.name, version, exploration=model.exploration_note)
            self._keep_good(path, version)
            log.info("serving model %s from %s", version, self.source.name)
            return True

    def _keep_good(self, path: Path, version: str) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self._good_file.with_suffix(".tmp")
            shutil.copyfile(path, tmp)
            checksum_file(self._good_file).write_text(file_digest(tmp) + "\n")
            tmp.replace(self._good_file)
            self._good_meta.write_text(json.dumps({"version": version, "saved_at": time.time()}))
        except OSError as exc:
            log.warning("could not keep last-known-good copy: %s", exc)

    def start_polling(self, interval: float) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                self.refresh()
                try:
                    self.follow_exploration()
                except Exception as exc:  # noqa: BLE001 - the serving scorer stays; the next poll retries
                    log.error("could not apply the policy file's exploration to %s: %s", self.status.version, exc)
                    self.status.last_error = f"exploration not applied: {type(exc).__name__}: {exc}"
                    self.load_failures += 1

        self._thread = threading.Thread(target=loop, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
