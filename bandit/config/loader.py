"""The one place configuration is loaded, cross-checked and swapped.

``load_config`` reads the catalog and the policy file named by the settings and
checks them against each other. ``LiveConfig`` holds the configuration a running
process serves and replaces it only with one that loaded cleanly: an invalid
catalog never replaces a valid one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from bandit.config.catalog import Catalog, load_catalog
from bandit.domain.errors import ConfigError
from bandit.config.policyfile import PolicyFile, load_policy
from bandit.config.settings import Settings


@dataclass(frozen=True)
class Config:
    catalog: Catalog
    policy: PolicyFile


def check_together(catalog: Catalog, policy: PolicyFile, policy_source: str) -> list[str]:
    problems = []
    for oid in policy.guardrails.suspended_offers:
        if oid not in catalog.offers:
            problems.append(f"{policy_source}: field 'guardrails.suspended_offers': unknown offer id '{oid}'")
    return problems


def load_config(settings: Settings) -> Config:
    """Load both files, collecting the problems of both before raising."""
    problems: list[str] = []
    catalog = policy = None
    try:
        catalog = load_catalog(settings.catalog)
    except ConfigError as exc:
        problems += exc.problems
    try:
        policy = load_policy(settings.policy)
    except ConfigError as exc:
        problems += exc.problems
    if catalog is not None and policy is not None:
        problems += check_together(catalog, policy, str(settings.policy))
    if problems or catalog is None or policy is None:
        raise ConfigError(problems)
    return Config(catalog=catalog, policy=policy)


class LiveConfig:
    """The configuration a process serves; reloads are all-or-nothing."""

    def __init__(self, settings: Settings, config: Config | None = None):
        self._settings = settings
        self._lock = threading.Lock()
        self._config = config if config is not None else load_config(settings)

    @property
    def current(self) -> Config:
        return self._config

    def reload(self) -> Config:
        """Load again from disk; on any problem keep serving the old one and raise."""
        new = load_config(self._settings)
        with self._lock:
            self._config = new
        return new
