"""State hooks of the flows: a run that fails or crashes tells the operators at once.

Prefect calls these in the flow run's process when its final state is Failed or Crashed
(``on_failure``, ``on_crashed``). The notice goes wherever the policy file's
``notifications`` section says (``bandit.deploy.notify``); that section is read on its own
(``notifications_of``), so a run that failed *because* the policy file is broken elsewhere
still reports it. A hook cannot fail the run twice: a notice that cannot be delivered is
logged with its reason (and the run keeps its Failed state, which the Prefect UI shows).
"""

from __future__ import annotations

import logging
from typing import Any

from bandit.config.notifications import notifications_of
from bandit.config.settings import Settings, get_settings
from bandit.deploy.notify import NotificationError, flow_failure_notice, send

log = logging.getLogger("offer_bandit.flows")


def run_settings(parameters: dict[str, Any] | None) -> Settings:
    """The settings the run used: the ones it was given (the command line passes its own;
    Prefect keeps them as the run's parameters, secrets excluded), else the environment's."""
    given = (parameters or {}).get("settings")
    if isinstance(given, Settings):
        return given
    if isinstance(given, dict):
        return get_settings(**{k: v for k, v in given.items() if k in ("home", "catalog", "policy") and v is not None})
    return get_settings()


def notify_operators(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_failure`` / ``on_crashed``: send the operators a notice naming the flow, the run,
    its state and its message."""
    settings = run_settings(getattr(flow_run, "parameters", None))
    assert settings.policy is not None  # found by Settings
    try:
        text = settings.policy.read_text()
    except OSError as exc:
        log.error("flow %s run %s %s: cannot read %s to find where to notify: %s",
                  flow.name, flow_run.name, state.name, settings.policy, exc)
        return
    cfg = notifications_of(text)
    if cfg is None:
        log.error("flow %s run %s %s: %s's notifications section is not valid: nobody notified",
                  flow.name, flow_run.name, state.name, settings.policy)
        return
    notice = flow_failure_notice(flow.name, flow_run.name, state.name, state.message)
    try:
        done = send(notice, cfg, settings.smtp_login())
    except NotificationError as exc:
        log.error("%s", exc)
        return
    if not done:
        log.warning("flow %s run %s %s: no notification channel configured (policy file's notifications)",
                    flow.name, flow_run.name, state.name)


FAILURE_HOOKS: dict[str, Any] = {"on_failure": [notify_operators], "on_crashed": [notify_operators]}
