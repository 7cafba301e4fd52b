"""The flows' commands (``retrain``, ``rollback``, ``monitor``, ``flows serve``, ``tune``, ``evaluate``),
contributed to the core's command line through the entry point ``offer_bandit.commands``
(the core does not import the flows).

Each command loads its settings once, from its options over the environment, and passes
them to the flow as a parameter; the flow's steps get them from there. Prefect itself
is configured through its own environment variables (``PREFECT_HOME`` under our home
unless set), so those are set before Prefect is imported. Importing this module is
cheap (no Prefect, no MLflow): ``offer-bandit --help`` stays instant."""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bandit.cli import ENV_HELP, CommandLine, CommandSet, parse_time, positive, settings_from, share, timestamp
from bandit.config.settings import TELEMETRY_OFF, Settings
from bandit.learn.specs import PolicySpec
from bandit.learn.window import DEFAULT_HOLDOUT, DEFAULT_WINDOW_DAYS
from tracking.runs import unavailable

FLOWS_ENV_HELP = """
flows:
  PREFECT_API_URL            a Prefect server (e.g. http://127.0.0.1:4200/api from `prefect server start`);
                             unset: Prefect's ephemeral server, started in this process
  PREFECT_HOME               Prefect's state (default <home>/prefect)
"""


def prefect_environment(s: Settings, env: dict[str, str]) -> dict[str, str]:
    """Prefect's own configuration for flows run under these settings: its home under ours
    unless set, telemetry off, and time for the ephemeral server's first start (on a fresh
    ``PREFECT_HOME`` it can take longer than Prefect's 20 s)."""
    out = {**TELEMETRY_OFF, "PREFECT_HOME": env.get("PREFECT_HOME") or str((s.home / "prefect").resolve()),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS":
               env.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or "120"}
    return out


def configure_prefect(s: Settings, announce: bool = True) -> None:
    """Set Prefect's configuration in this process before Prefect is imported (Prefect
    reads it from the environment only)."""
    os.environ.update(prefect_environment(s, dict(os.environ)))
    s.ensure_home()
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
    if announce:
        where = os.environ.get("PREFECT_API_URL") or "Prefect's ephemeral server (starting; ~20 s)"
        print(f"running the flow under {where} ...", file=sys.stderr, flush=True)


def tracked(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``command`` with MLflow's store not answering said in one line (``TrackingUnavailable``,
    exit 3) instead of a traceback; any other error goes on as it is."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is MLflow's store not answering
            found = unavailable(exc, settings_from(args))
            if found is None:
                raise
            raise found from exc

    return run


def run_job(s: Settings, args: argparse.Namespace, steps: str, flow: str, params: dict[str, Any],
            announce: str | None = None, as_dict: Callable[[Any], dict[str, Any]] = asdict) -> dict[str, Any]:
    """Run a job once: its steps in this process (``--no-prefect``) or its Prefect flow, and
    its result as a dict (what the flow returns; the steps' result through ``as_dict``).
    ``steps`` and ``flow`` are ``module:function`` names, imported only for the way taken:
    ``--no-prefect`` never imports Prefect. ``announce`` is printed once Prefect is set up."""
    if not args.no_prefect:
        configure_prefect(s)
    if announce:
        print(announce, flush=True)
    module, name = (steps if args.no_prefect else flow).split(":")
    run = getattr(importlib.import_module(module), name)
    if args.no_prefect:
        return as_dict(run(s, **params))
    return run(settings=s, **params)


def cmd_retrain(args: argparse.Namespace) -> int:
    """One retrain (``flows.retrain``, as the Prefect flow unless --no-prefect): train on the
    window, evaluate off-policy, log to MLflow, register, promote only through the gate."""
    s = settings_from(args)
    params = {"as_of": timestamp(args.as_of), "window_days": args.window_days, "holdout": args.holdout,
              "warm_start": args.warm_start}
    r = run_job(s, args, "flows.retrain:retrain", "flows.retrain_flow:retrain_flow", params,
                announce=f"retraining on {args.window_days:g} days of the log (MLflow: {s.tracking_uri}) ...")
    if r["reused"]:
        print("this window was retrained before; its result:")
    print(f"trained on {r['trained_on']} decisions, evaluated on {r['evaluated_on']}; MLflow run {r['run_id']}")
    if r["version"] is None:
        print("nothing registered: " + "; ".join(r["reasons"]))
        return 1
    verdict = "promoted to champion" if r["promoted"] else "registered, not promoted"
    print(f"{s.registered_model} version {r['version']}: {verdict}: " + "; ".join(r["reasons"]))
    return 0


def cmd_flows_serve(args: argparse.Namespace) -> int:
    """Register retrain, monitor, tune, purge and working-well as scheduled Prefect deployments and run them."""
    s = settings_from(args, retrain_cron=args.retrain_cron, monitor_cron=args.monitor_cron,
                      tune_cron=args.tune_cron, purge_cron=args.purge_cron, working_well_cron=args.working_well_cron,
                      schedule_timezone=args.timezone)
    from bandit.config.loader import load_config

    cfg = load_config(s)  # a catalog or policy file the runs cannot load fails here, not in every run
    configure_prefect(s, announce=False)
    from flows.deployments import deployments, serve_flows

    deployments(s)  # a bad schedule fails here, before anything starts
    print(f"schedules ({s.schedule_timezone}): retrain '{s.retrain_cron}', monitor '{s.monitor_cron}', "
          f"tune '{s.tune_cron}', purge '{s.purge_cron}', working-well '{s.working_well_cron}'; Prefect API: {os.environ.get('PREFECT_API_URL') or 'ephemeral (in this process)'}",
          flush=True)
    # each scheduled run is a child process (`python -m prefect.engine`) that loads its
    # settings at its start: from this process's environment, which it inherits
    os.environ.update(s.environment())
    serve_flows(s, cfg.policy.notifications)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Move the champion alias back to the previous version (the service picks it up)."""
    from tracking.registry import Registry

    s = settings_from(args)
    was, now = Registry(s.tracking_uri, s.registered_model).rollback()
    print(f"{s.registered_model}: champion is version {now} again (was {was}; {was} is now 'previous')")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """One monitor run (``flows.monitor``): rates per offer and channel over the window,
    suspend offers over their complaint limit, lift over the control group, log to MLflow."""
    s = settings_from(args)
    params = {"as_of": timestamp(args.as_of), "window_hours": args.window_hours}
    r = run_job(s, args, "flows.monitor:monitor", "flows.monitor_flow:monitor_flow", params)
    print(f"window {r['window']} ({r['window_hours']:g} h): {r['decisions']} decisions, {r['offers']} offers made; "
          f"MLflow run {r['run_id']}")
    for b in r["breaches"]:
        print(f"SUSPENDED {b['offer_id']}: {b['reason']}")
    if not r["breaches"]:
        print("no offer over its complaint limit")
    for metric, d in (r["lift"] or {}).items():
        print(f"lift {metric}: {d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] "
              f"(bandit {d['bandit']:.4f}, control {d['control']:.4f})")
    if r["lift_note"]:
        print(r["lift_note"])
    return 0


def cmd_working_well(args: argparse.Namespace) -> int:
    """One working-well run (``flows.working_well``): value every offer made over the last
    --days, tell the owners of those clearly paying, log the note to MLflow."""
    s = settings_from(args)
    params = {"as_of": timestamp(args.as_of), "days": args.days}
    r = run_job(s, args, "flows.working_well:working_well", "flows.working_well_flow:working_well_flow", params)
    print(r["note"], end="")
    print(f"MLflow run {r['run_id']}" + (f"; notified: {', '.join(r['notified'])}" if r["notified"] else ""))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """One tuning run (``flows.tune``): train and evaluate a grid of VW settings off-policy
    on the window, log them to MLflow, print the ranking and the best as policy-file YAML.
    It recommends only: nothing is registered or promoted, the policy file is not touched."""
    s = settings_from(args)
    params = {"as_of": timestamp(args.as_of), "window_days": args.window_days, "holdout": args.holdout}
    r = run_job(s, args, "flows.tune:tune", "flows.tune_flow:tune_flow", params,
                announce=f"tuning on {args.window_days:g} days of the log (MLflow: {s.tracking_uri}) ...",
                as_dict=lambda result: result.summary())
    from flows.tune import EXPERIMENT
    print(r["report"])
    if r["best"] is None:
        print("no recommendation: " + "; ".join(r["reasons"]))
        return 1
    print(f"MLflow run {r['run_id']} (experiment {EXPERIMENT}); to adopt the best, edit {s.policy}")
    return 0


def policy_spec(text: str) -> PolicySpec:
    """argparse type: a policy spec (``bandit.learn.offline.parse_spec``); an unknown one is
    argparse's one-line error listing the valid forms (exit 2)."""
    from bandit.domain.errors import InvalidRequest
    from bandit.learn.specs import parse_spec

    try:
        return parse_spec(text)
    except InvalidRequest as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def _is_spec(text: str) -> bool:
    try:
        policy_spec(text)
    except argparse.ArgumentTypeError:
        return False
    return True


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Offline evaluation of the named policies on a stretch of the log (``flows.evaluate``)."""
    import time

    from bandit.cli import ProgressBar
    from flows.evaluate import run_evaluation

    if args.policy is not None and not args.policy.exists() and _is_spec(str(args.policy)):
        print(f"error: --policy names the policy file (YAML), not a policy to evaluate; name those without an "
              f"option: offer-bandit evaluate {args.policy} ...", file=sys.stderr)
        return 2
    s = settings_from(args)
    now = time.time()
    until = timestamp(args.until) if args.until is not None else now
    since = timestamp(args.since) if args.since is not None else until - args.days * 86400
    if since >= until:
        print(f"error: --since ({args.since or since}) must be before --until ({args.until or 'now'})", file=sys.stderr)
        return 2
    result, run_id = run_evaluation(s, args.policies, since, until, as_of=timestamp(args.as_of) or now,
                                    holdout=args.holdout, folds=args.folds, interval=args.interval,
                                    progress=None if args.quiet else ProgressBar(), json_path=args.json,
                                    mlflow=not args.no_mlflow, importance=args.importance)
    print(result.table())
    if args.json is not None:
        print(f"\nwrote {args.json}")
    if run_id is not None:
        print(f"MLflow run {run_id} (experiment offer-bandit-evaluate, {s.tracking_uri})")
    return 0


def window_options(sp: argparse.ArgumentParser) -> None:
    """The options of the flows that read a window of the log and hold part of it out."""
    sp.add_argument("--as-of", type=parse_time, help="end of the window, ISO 8601 (default: now)")
    sp.add_argument("--window-days", type=positive("days"), default=DEFAULT_WINDOW_DAYS,
                    help=f"length of the window (default {DEFAULT_WINDOW_DAYS:g})")
    sp.add_argument("--holdout", type=share, default=DEFAULT_HOLDOUT,
                    help=f"newest share held out for evaluation (default {DEFAULT_HOLDOUT:g})")
    sp.add_argument("--no-prefect", action="store_true", help="run the steps directly, without a Prefect flow run")


def register(cli: CommandLine) -> None:
    sp = cli.add("retrain", tracked(cmd_retrain),
                 "retrain once: train, evaluate off-policy, log to MLflow, promote through the gate",
                 "Train a candidate on the window of the log that ends at --as-of (the newest --holdout share "
                 "held out), compare it off-policy with the champion and the baselines, log the run to MLflow, "
                 "register it, and promote it to champion only if the policy file's promotion gate agrees. "
                 "Re-running the same window returns the earlier result.")
    window_options(sp)
    sp.add_argument("--warm-start", action="store_true", help="continue from the champion instead of a fresh learner")

    cli.add("rollback", tracked(cmd_rollback), "move the registry's champion alias back to the previous version")

    sp = cli.add("monitor", tracked(cmd_monitor), "judge offers over a sliding window; suspend those drawing complaints",
                 "Per offer and channel over the window of the log that ends at --as-of: acceptance rate, "
                 "complaint rate and revenue. An offer made at least monitoring.min_offers times whose complaint "
                 "rate exceeds its limit (the catalog's max_complaint_rate, else the policy file's) is suspended "
                 "through the kill switch. Also the bandit's lift over the control group, with 95% intervals. "
                 "The run and its report go to MLflow (experiment offer-bandit-monitor).")
    sp.add_argument("--as-of", type=parse_time, help="end of the window, ISO 8601 (default: now)")
    sp.add_argument("--window-hours", type=positive("hours"),
                    help="length of the window in hours (default: the policy file's monitoring.window_hours, 24)")
    sp.add_argument("--no-prefect", action="store_true", help="run the steps directly, without a Prefect flow run")

    sp = cli.add("working-well", tracked(cmd_working_well), "tell the owners of offers that clearly pay (weekly)",
                 "Per offer made over the --days of the log that end at --as-of: its lift over no offer per offer "
                 "made (revenue minus the reward's complaint penalty per complaint) with a 95% interval. Offers made "
                 "at least 30 times whose interval is above 0 and whose complaint rate's upper bound is under their "
                 "limit are working well: their owners and the operators get the note (the policy file's "
                 "notifications). The note goes to MLflow (experiment offer-bandit-monitor).")
    sp.add_argument("--as-of", type=parse_time, help="end of the window, ISO 8601 (default: now)")
    sp.add_argument("--days", type=positive("days"), default=7.0, help="length of the window in days (default 7)")
    sp.add_argument("--no-prefect", action="store_true", help="run the steps directly, without a Prefect flow run")

    flows = cli.group("flows", "scheduled Prefect deployments of retrain, monitor and tune",
                      "Prefect deployments of the flows.")
    sp = flows.add("serve", cmd_flows_serve,
                   "register the deployments with their schedules and run them as they come due",
                   "Register retrain (nightly), monitor (hourly), tune (weekly), purge (daily) and working-well (weekly) as "
                   "Prefect deployments with "
                   "cron schedules, and run each scheduled run in a subprocess until interrupted (Ctrl-C). Uses the "
                   "Prefect server at PREFECT_API_URL when set (watch the runs in its UI), else Prefect's "
                   "ephemeral server.", epilog=ENV_HELP + FLOWS_ENV_HELP)
    sp.add_argument("--retrain-cron", help="cron schedule of retrain (env OFFER_BANDIT_RETRAIN_CRON, default '0 2 * * *')")
    sp.add_argument("--monitor-cron", help="cron schedule of monitor (env OFFER_BANDIT_MONITOR_CRON, default '0 * * * *')")
    sp.add_argument("--tune-cron", help="cron schedule of tune (env OFFER_BANDIT_TUNE_CRON, default '0 3 * * 0')")
    sp.add_argument("--purge-cron", help="cron schedule of purge (env OFFER_BANDIT_PURGE_CRON, default '30 4 * * *')")
    sp.add_argument("--working-well-cron",
                    help="cron schedule of working-well (env OFFER_BANDIT_WORKING_WELL_CRON, default '0 8 * * 1')")
    sp.add_argument("--timezone", help="time zone of the schedules (env OFFER_BANDIT_SCHEDULE_TIMEZONE, default UTC)")

    sp = cli.add("tune", tracked(cmd_tune), "evaluate a grid of VW settings off-policy and recommend the best",
                 "Train one model per grid point (explorer, cb_type, interactions, learning rate) on the older "
                 "part of the window of the log that ends at --as-of, evaluate each one's exploring policy "
                 "off-policy on the newest --holdout share, log every point as a child run to MLflow (experiment "
                 "offer-bandit-tune), and print the ranking and the best setting, with its 95% interval, as "
                 "policy-file YAML. Nothing is registered or promoted: adopt it by editing the policy file.")
    window_options(sp)


    from bandit.learn.specs import DEFAULT_FOLDS, DEFAULT_INTERVAL, INTERVALS, POLICY_FORMS

    sp = cli.add("evaluate", cmd_evaluate, "evaluate any policies off-policy on a stretch of the log",
                 "Estimate, on the learnable decisions logged between --since and --until (default: the last 7 "
                 "days), what each POLICY would have earned per decision: IPS, SNIPS and DR with 95% intervals "
                 "(by default empirical likelihood allowing for the policy's largest weight, which holds with rare "
                 "rewards), the effective sample size, the "
                 "complaint rate and the offer rate; and each policy minus the first, paired on the same decisions. "
                 "A policyfile: is trained on the older part of the stretch and every policy is then judged on the "
                 "newest --holdout share. Prints a table, writes --json, and logs an MLflow run (experiment "
                 "offer-bandit-evaluate). POLICY forms: " + ", ".join(POLICY_FORMS) + ".")
    sp.add_argument("policies", nargs="+", type=policy_spec, metavar="POLICY",
                    help="a policy to evaluate (the first is the one the others are compared with): "
                    + ", ".join(POLICY_FORMS))
    sp.add_argument("--since", type=parse_time, help="start of the stretch, ISO 8601 (default: --days before --until)")
    sp.add_argument("--until", type=parse_time, help="end of the stretch, ISO 8601 (default: now)")
    sp.add_argument("--days", type=positive("days"), default=DEFAULT_WINDOW_DAYS,
                    help=f"length of the stretch when --since is not given (default {DEFAULT_WINDOW_DAYS:g})")
    sp.add_argument("--as-of", type=parse_time, help="decisions whose reward window closed by then count "
                    "(default: now)")
    sp.add_argument("--holdout", type=share, default=DEFAULT_HOLDOUT,
                    help=f"with a policyfile: the newest share judged on (default {DEFAULT_HOLDOUT:g})")
    sp.add_argument("--folds", type=int, choices=range(2, 6), default=DEFAULT_FOLDS, metavar="{2..5}",
                    help=f"cross-fitting folds of DR's reward model (default {DEFAULT_FOLDS})")
    sp.add_argument("--interval", choices=INTERVALS, default=DEFAULT_INTERVAL,
                    help=f"construction of the 95%% intervals (default {DEFAULT_INTERVAL})")
    sp.add_argument("--json", type=Path, help="also write the figures here as JSON")
    sp.add_argument("--importance", action="store_true",
                    help="also, per namespace, how much the first policyfile's value drops when it is retrained "
                    "without it (paired, with intervals); warns of features that look like ids or timestamps")
    sp.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    sp.add_argument("--quiet", action="store_true", help="no progress bar on stderr")


COMMANDS = CommandSet(order=20, register=register)
