"""The ``purge`` Prefect flow: the retention period kept (``bandit.log.retention.purge``).

Scheduled daily by ``flows serve`` (``OFFER_BANDIT_PURGE_CRON``). With no
``retention.days`` in the policy file it deletes nothing and says so; otherwise it
deletes, in batches of short transactions, the decisions (with their outcomes), contacts
and capacity uses older than the period, and publishes what it deleted as an artifact.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from bandit.config.loader import load_config
from bandit.config.settings import Settings, get_settings
from bandit.deploy.runtime import open_store
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
    if days is None:
        logger.info("retention.days is not set in the policy file: the log is kept for ever, nothing deleted")
        return {"days": None, "decisions": 0, "outcomes": 0, "contacts": 0, "uses": 0}
    before = (time.time() if as_of is None else as_of) - days * 86400
    store = open_store(s)
    try:
        removed = purge(store.engine, before, progress=lambda r: logger.info("%d decisions deleted so far",
                                                                             r.decisions))
    finally:
        store.close()
    logger.info("deleted what is older than %g days: %s", days, removed)
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=f"# Retention purge\n\nOlder than {days:g} days: {removed}.",
                             description="Retention purge")
    return {"days": days, "decisions": removed.decisions, "outcomes": removed.outcomes,
            "contacts": removed.contacts, "uses": removed.uses}
