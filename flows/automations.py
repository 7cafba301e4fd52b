"""Late runs and a stopped ``flows serve``, told by the Prefect server itself.

Why here and not in the flows' hooks: a failed run reports itself (``flows.hooks``), but a
run that never starts cannot, and neither can a ``flows serve`` process that died or hung.
Only the Prefect server sees those, so ``flows serve`` creates two Prefect automations on it
(idempotently, by name, replacing an older version of each):

- ``offer-bandit: flow run late``: a run of one of our deployments (tag ``offer-bandit``)
  enters the ``Late`` state (Prefect's late-runs service marks a scheduled run Late once it is
  ``PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS``, 15 s, past its start without being
  picked up);
- ``offer-bandit: flows serve not polling``: one of our deployments goes ``NOT_READY``
  (Prefect's foreman marks a served deployment not ready when its runner has not polled for
  ``PREFECT_SERVER_SERVICES_FOREMAN_DEPLOYMENT_LAST_POLLED_TIMEOUT_SECONDS``, 60 s).

Each sends a notification through a Prefect notification block, ``offer-bandit-operators``: a
custom webhook block posting ``{"text": ...}`` to the policy file's
``notifications.webhook_url`` (the Slack-compatible channel our own notices use). Prefect's
server sends it, so it arrives even when no process of ours is alive. Prefect has no SMTP
notification block of its own, so these two notices go to the webhook only; with no webhook
configured, ``flows serve`` says so and creates none. Needs a Prefect server with its
services running (``prefect server start``); the ephemeral server has no triggers service.
"""

from __future__ import annotations

from typing import Any

from bandit.config.notifications import Notifications

BLOCK = "offer-bandit-operators"
TAG = "offer-bandit"
LATE = "offer-bandit: flow run late"
NOT_POLLING = "offer-bandit: flows serve not polling"
RESOURCE_NAME = "{{ event.resource['prefect.resource.name'] }}"


def webhook_block(url: str) -> Any:
    """The notification block: a POST of ``{"text": "*subject*\\nbody"}``, as ``bandit.deploy.notify``
    posts its own notices, so the channel sees one format."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    return CustomWebhookNotificationBlock(name=BLOCK, url=url, method="POST",
                                          json_data={"text": "*{{subject}}*\n{{body}}"})


def automations(block_id: Any, deployment_ids: list[Any]) -> list[Any]:
    """The two automations, for ``deployment_ids`` (ours) and the block ``block_id``."""
    from prefect.automations import AutomationCore
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    late = AutomationCore(
        name=LATE, description="A scheduled offer-bandit run was not started on time: is `flows serve` running?",
        trigger=EventTrigger(expect={"prefect.flow-run.Late"}, posture=Posture.Reactive, threshold=1,
                             match={"prefect.resource.id": "prefect.flow-run.*"},
                             match_related={"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"}),
        actions=[SendNotification(
            block_document_id=block_id, subject=f"[offer-bandit] flow run {RESOURCE_NAME} is late",
            body=f"The scheduled run {RESOURCE_NAME} has not started. Is `offer-bandit flows serve` running "
                 "and polling? (Prefect UI: Flow Runs, state Late)")])
    not_polling = AutomationCore(
        name=NOT_POLLING, description="An offer-bandit deployment's runner stopped polling the Prefect API.",
        trigger=EventTrigger(expect={"prefect.deployment.not-ready"}, posture=Posture.Reactive, threshold=1,
                             match={"prefect.resource.id": [f"prefect.deployment.{d}" for d in deployment_ids]}),
        actions=[SendNotification(
            block_document_id=block_id, subject=f"[offer-bandit] deployment {RESOURCE_NAME} is not ready",
            body=f"Nothing has polled for {RESOURCE_NAME}'s runs: the `offer-bandit flows serve` process stopped "
                 "or hangs. Scheduled runs will not start until it is running again.")])
    return [late, not_polling]


def ensure_automations(cfg: Notifications, deployment_ids: list[Any]) -> list[str]:
    """Create (or replace) the block and the automations on the Prefect server at
    ``PREFECT_API_URL``; returns the automations' names, none when no webhook is configured."""
    if cfg.webhook_url is None or not deployment_ids:
        return []
    from prefect.client.orchestration import get_client

    block_id = webhook_block(cfg.webhook_url).save(BLOCK, overwrite=True)
    made = []
    with get_client(sync_client=True) as client:
        for automation in automations(block_id, deployment_ids):
            for old in client.read_automations_by_name(automation.name):
                client.delete_automation(old.id)
            client.create_automation(automation)
            made.append(automation.name)
    return made
