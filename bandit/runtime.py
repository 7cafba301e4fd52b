"""Assembling a decider from settings: the one factory every entry point uses."""

from __future__ import annotations

import logging

from bandit.config import LiveConfig
from bandit.decision import Decider, ModelSlot
from bandit.settings import Settings
from bandit.store import DecisionStore
from bandit.vw import ColdStart, Scorer, VWModel

log = logging.getLogger(__name__)


def initial_scorer(settings: Settings, live: LiveConfig) -> Scorer:
    """The configured model file if it loads, else the cold-start policy."""
    eps = live.current.policy.exploration.cold_start_epsilon
    if settings.model_path is not None:
        try:
            return VWModel.load(settings.model_path)
        except Exception as exc:  # noqa: BLE001 - a bad model file must not stop decisions
            log.error("model %s failed to load, serving cold start: %s", settings.model_path, exc)
    return ColdStart(eps)


def open_store(settings: Settings) -> DecisionStore:
    settings.ensure_home()
    return DecisionStore(settings.db_url)


def build_decider(settings: Settings, **kw: object) -> Decider:
    live = LiveConfig(settings)
    store = open_store(settings)
    return Decider(live, store, ModelSlot(initial_scorer(settings, live)), settings.secret, **kw)  # type: ignore[arg-type]
