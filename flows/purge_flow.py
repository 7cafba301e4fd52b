"""The ``purge`` Prefect flow: the retention period kept (``bandit.log.retention.purge``).

Scheduled daily by ``flows serve`` (``OFFER_BANDIT_PURGE_CRON``). On PostgreSQL it first
creates the log's day partitions for the week ahead (``bandit.log.partitions``), whatever
the retention. With no ``retention.days`` in the policy file it deletes nothing and says
so; otherwise it deletes the decisions (with their outcomes), contacts and capacity uses
older than the period (PostgreSQL: dropping the days entirely past it, then the rest in
batches of short transactions), and publishes what it deleted as an artifact.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from bandit.config.loader import load_config
from bandit.config.settings import Settings, get_settings
from bandit.deploy.runtime import open_store
from bandit.log.partitions import ensure_ahead
from bandit.log.retention import purge
from flows.hooks import FAILURE_HOOKS

ARTIFACT_KEY = "purge-report"


@flow(name="purge", log_prints=True, **FAILURE_HOOKS)
def purge_flow(as_of: float | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Delete what is older than the policy file's ``retention.days`` before ``as_of``
    (default: now)."""
    logger = get_run_logger()
    s = settings or get_settings()
    days = load_config(s).policy.retention.days
    now = time.time() if as_of is None else as_of
    store = open_store(s)
    try:
        if days is None:
            created = ensure_ahead(store.engine, now)  # the days to come are ready all the same
            logger.info("retention.days is not set in the policy file: the log is kept for ever, nothing deleted; "
                        "%d partitions created ahead", len(created))
            return {"days": None, "decisions": 0, "outcomes": 0, "contacts": 0, "uses": 0}
        removed = purge(store.engine, now - days * 86400, now=now,
                        progress=lambda r: logger.info("%d decisions deleted so far", r.decisions))
    finally:
        store.close()
    logger.info("deleted what is older than %g days: %s", days, removed)
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=f"# Retention purge\n\nOlder than {days:g} days: {removed}.",
                             description="Retention purge")
    return {"days": days, "decisions": removed.decisions, "outcomes": removed.outcomes,
            "contacts": removed.contacts, "uses": removed.uses}
