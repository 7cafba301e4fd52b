"""Scheduled flows: ``offer-bandit flows serve`` registers retrain, monitor, tune, purge and working-well as
Prefect deployments with their schedules and runs them as they come due.

``prefect.serve`` keeps one long-lived process that polls the Prefect API for scheduled
runs of its deployments and executes each in a subprocess, so no work pool or worker
has to be set up: against a local Prefect server (``PREFECT_API_URL``, e.g. from
``prefect server start``) every run shows in its UI; without one, Prefect's ephemeral
server runs inside this process (nothing to install, nothing to watch but the logs).
Schedules come from the settings (``OFFER_BANDIT_RETRAIN_CRON`` and friends), so an
operator changes them without touching code.
"""

from __future__ import annotations

from typing import Any

from bandit.config.notifications import Notifications
from bandit.domain.errors import OfferBanditError
from bandit.config.settings import Settings

# The deployments' names, as `prefect deployment run <flow>/<name>` takes them.
DEPLOYMENT = "offer-bandit"


def deployments(settings: Settings, paused: bool = False) -> list[Any]:
    """One ``RunnerDeployment`` per flow, each with its cron schedule from the settings.
    A cron expression that does not parse is an error naming the setting."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.deployments.runner import EntrypointType

    from flows.monitor_flow import monitor_flow
    from flows.purge_flow import purge_flow
    from flows.retrain_flow import retrain_flow
    from flows.tune_flow import tune_flow
    from flows.working_well_flow import working_well_flow

    out = []
    for flow, setting, description in (
        (retrain_flow, "retrain_cron", "Nightly: train on the last window of the log, evaluate, promote through the gate."),
        (monitor_flow, "monitor_cron", "Hourly: complaint rates per offer and channel; suspend offers over their limit."),
        (tune_flow, "tune_cron", "Weekly: evaluate a grid of VW settings off-policy; recommend the best."),
        (purge_flow, "purge_cron", "Daily: delete what is older than the policy file's retention.days."),
        (working_well_flow, "working_well_cron", "Weekly: tell the owners of offers that clearly pay (lift over no offer)."),
    ):
        cron = getattr(settings, setting)
        try:
            schedule = CronSchedule(cron=cron, timezone=settings.schedule_timezone)
        except ValueError as exc:  # pydantic's ValidationError: say which setting, in one line
            why = "; ".join(e["msg"] for e in exc.errors()) if hasattr(exc, "errors") else str(exc)
            raise OfferBanditError(f"OFFER_BANDIT_{setting.upper()}={cron!r} with OFFER_BANDIT_SCHEDULE_TIMEZONE="
                                   f"{settings.schedule_timezone!r}: {why}") from exc
        # by module path: the runner's subprocess imports the installed package, wherever
        # `flows serve` was started from
        out.append(flow.to_deployment(name=DEPLOYMENT, schedules=[schedule], paused=paused,
                                      description=description, tags=["offer-bandit"],
                                      entrypoint_type=EntrypointType.MODULE_PATH))
    return out


def serve_flows(settings: Settings, notifications: Notifications) -> list[str]:
    """Register the deployments, create the automations that tell the operators of late runs
    and of this process no longer polling (``flows.automations``), then run the deployments
    as they come due, until interrupted. What ``prefect.serve`` does, with the automations
    created between registering and starting (they need the deployments' ids)."""
    import asyncio

    from prefect.runner import Runner

    from flows.automations import ensure_automations

    deps = deployments(settings)
    runner = Runner(pause_on_shutdown=True)
    ids = [runner.add_deployment(d) for d in deps]
    made = ensure_automations(notifications, ids)
    print("automations on the Prefect server: " + (", ".join(made) if made else
          "none (late runs and a stopped `flows serve` are told through notifications.webhook_url only)"),
          flush=True)
    try:
        asyncio.run(runner.start())
    except KeyboardInterrupt:
        pass
    return made
