"""Assembling a decider from settings: the one factory every entry point uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bandit.config.loader import LiveConfig
from bandit.decide.decider import Decider, ModelSlot
from bandit.deploy.models import FileModelSource, ModelManager, ModelSource
from bandit.config.settings import Settings
from bandit.log.store import DecisionStore
from bandit.decide.vw import ColdStart


@dataclass
class Runtime:
    settings: Settings
    config: LiveConfig
    store: DecisionStore
    models: ModelManager
    decider: Decider


def open_store(settings: Settings) -> DecisionStore:
    settings.ensure_home()
    return DecisionStore(settings.db_url, suspension_refresh=settings.suspension_refresh_seconds,
                         sqlite_synchronous=settings.sqlite_synchronous, pool_size=settings.database_pool_size)


def default_source(settings: Settings) -> ModelSource | None:
    return FileModelSource(settings.model_path) if settings.model_path else None


def build_runtime(settings: Settings, source: ModelSource | None = None, **decider_kw: Any) -> Runtime:
    """Configuration, log, model (source, else last-known-good, else cold start) and decider."""
    live = LiveConfig(settings)
    store = open_store(settings)
    slot = ModelSlot(ColdStart(live.current.policy.exploration.cold_start_epsilon))
    manager = ModelManager(slot, source if source is not None else default_source(settings),
                           settings.home / "models", lambda: live.current.policy.exploration)
    manager.start()
    decider = Decider(live, store, slot, settings.secret, **decider_kw)
    return Runtime(settings, live, store, manager, decider)


def build_decider(settings: Settings, **kw: Any) -> Decider:
    return build_runtime(settings, **kw).decider
