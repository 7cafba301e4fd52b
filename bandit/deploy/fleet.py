"""A fleet that agrees: a reload on any replica reaches every replica within seconds.

Behind a load balancer an operator's ``POST /admin/reload`` reaches one replica. That
replica loads the files, and if they load cleanly publishes their text to the log's
``config_versions`` (``publish``); every replica's ``ConfigFollower`` polls the newest id
every ``config_refresh_seconds`` and serves the published texts once they parse here too.
A publication older than the replica's start is not adopted: at start a replica serves its
own files (keep them the same on every replica: a shared volume, a config map), so a
restart never brings back an older reload. Each replica says what it serves (``/readyz``
``config``, the metric ``offer_bandit_config_info``), so a disagreement shows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bandit.config.loader import Config, LiveConfig, config_from_texts
from bandit.domain.errors import ConfigError
from bandit.log.store import STORE_ERRORS, DecisionStore

log = logging.getLogger(__name__)


def publish(config: LiveConfig, store: DecisionStore, published_by: str | None = None) -> Config:
    """Make what ``config`` serves (just reloaded) the fleet's: appended to the log."""
    cfg = config.current
    config_id = store.publish_config(cfg.texts[0], cfg.texts[1], cfg.catalog.version, cfg.policy_version,
                                     cfg.sources, published_by)
    return config.mark_published(config_id)


class ConfigFollower:
    """Serves the newest configuration published after this process started."""

    def __init__(self, config: LiveConfig, store: DecisionStore, on_change: Callable[[Config], None]):
        self.config, self.store, self.on_change = config, store, on_change
        self.since = store.latest_config_id()  # publications before the start are not adopted
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Adopt a newer publication, if any; ``True`` if the configuration changed."""
        latest = self.store.latest_config_id()
        if latest <= max(self.since, self.config.current.published):
            return False
        row = self.store.published_config(latest)
        if row is None:
            return False
        try:
            new = config_from_texts(row["catalog_text"], row["policy_text"],
                                    (f"published #{latest}: {row['catalog_source']}",
                                     f"published #{latest}: {row['policy_source']}"), published=latest)
        except ConfigError as exc:  # valid where it was published, not here (another code version)
            self.since = latest
            self.last_error = f"published configuration #{latest} does not load here: {exc.problems[0]}"
            log.error("%s", self.last_error)
            return False
        self.config.apply(new)
        self.last_error = None
        log.info("serving the configuration published as #%d (catalog %s, policy %s)", latest,
                 new.catalog.version, new.policy_version)
        self.on_change(new)
        return True

    def start(self, interval: float) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.check()
                except STORE_ERRORS as exc:  # the log down: the next poll tries again (the health check says so)
                    log.warning("could not read the published configuration: %s", exc)

        self._thread = threading.Thread(target=loop, name="config-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
