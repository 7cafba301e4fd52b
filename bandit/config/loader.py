"""The one place configuration is loaded, cross-checked and swapped.

``load_config`` reads the catalog and the policy file named by the settings and
checks them against each other. ``LiveConfig`` holds the configuration a running
process serves and replaces it only with one that loaded cleanly: an invalid
catalog never replaces a valid one.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, replace

from bandit.config.catalog import Catalog, parse_catalog
from bandit.domain.errors import ConfigError, read_config_file
from bandit.config.policyfile import PolicyFile, parse_policy
from bandit.config.settings import Settings


@dataclass(frozen=True)
class Config:
    catalog: Catalog
    policy: PolicyFile
    policy_version: str = ""  # content hash, as the catalog's version
    texts: tuple[str, str] = ("", "")  # the catalog's and the policy file's text, as read
    sources: tuple[str, str] = ("", "")  # where they were read from
    published: int = 0  # the ``config_versions`` row it came from (0: the files, at start)

    @property
    def version(self) -> str:
        """What the fleet compares: the catalog's and the policy file's versions."""
        return f"{self.catalog.version}/{self.policy_version}"


def text_version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_together(catalog: Catalog, policy: PolicyFile, policy_source: str) -> list[str]:
    problems = []
    for oid in policy.guardrails.suspended_offers:
        if oid not in catalog.offers:
            problems.append(f"{policy_source}: field 'guardrails.suspended_offers': unknown offer id '{oid}'")
    return problems


def load_config(settings: Settings) -> Config:
    """Load both files, collecting the problems of both before raising."""
    assert settings.catalog is not None and settings.policy is not None  # found by Settings
    problems: list[str] = []
    texts = []
    for path, what in ((settings.catalog, "catalog"), (settings.policy, "policy file")):
        try:
            texts.append(read_config_file(path, what))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return config_from_texts(texts[0], texts[1], (str(settings.catalog), str(settings.policy)))


def config_from_texts(catalog_text: str, policy_text: str, sources: tuple[str, str], published: int = 0) -> Config:
    """Parse and cross-check a catalog and a policy file given as text (read from the files,
    or published through the log by a reload on another replica)."""
    problems: list[str] = []
    catalog = policy = None
    try:
        catalog = parse_catalog(catalog_text, sources[0])
    except ConfigError as exc:
        problems += exc.problems
    try:
        policy = parse_policy(policy_text, sources[1])
    except ConfigError as exc:
        problems += exc.problems
    if catalog is not None and policy is not None:
        problems += check_together(catalog, policy, sources[1])
    if problems or catalog is None or policy is None:
        raise ConfigError(problems)
    return Config(catalog=catalog, policy=policy, policy_version=text_version(policy_text),
                  texts=(catalog_text, policy_text), sources=sources, published=published)


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
        return self.apply(load_config(self._settings))

    def apply(self, new: Config) -> Config:
        """Serve ``new`` (loaded cleanly, from the files or from the log) from now on."""
        with self._lock:
            self._config = new
        return new

    def mark_published(self, config_id: int) -> Config:
        """The configuration serving now, marked as the one published under ``config_id``."""
        with self._lock:
            self._config = replace(self._config, published=config_id)
            return self._config
