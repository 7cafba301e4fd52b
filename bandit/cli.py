"""``offer-bandit``: the command line.

Every command that makes a decision goes through ``bandit.deploy.runtime.build_decider``
and so through the one decision path. Heavy imports happen inside commands, so
``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bandit.domain.errors import ConfigError, OfferBanditError
from bandit.config.settings import Settings, get_settings

ENV_HELP = """
environment (each overridable by the options above):
  OFFER_BANDIT_HOME          state directory (default ./.offer-bandit)
  OFFER_BANDIT_CATALOG       marketing's offer catalog (default config/offers.yaml)
  OFFER_BANDIT_POLICY        the service's policy file (default config/policy.yaml)
  OFFER_BANDIT_DATABASE_URL  decision log URL (default sqlite under the home)
  OFFER_BANDIT_SALT          secret for hashing customer ids (default <home>/salt)
  OFFER_BANDIT_MODEL_PATH    VW model file to serve (default: the registry's champion, else cold start)
  OFFER_BANDIT_MLFLOW_TRACKING_URI  MLflow store (default sqlite:///<home>/mlflow.db)
  OFFER_BANDIT_API_KEYS      service: channel keys, comma separated (or OFFER_BANDIT_API_KEYS_FILE)
  OFFER_BANDIT_ADMIN_KEY     service: admin key (or OFFER_BANDIT_ADMIN_KEY_FILE)
"""


FLOWS_ENV_HELP = """
flows:
  PREFECT_API_URL            a Prefect server (e.g. http://127.0.0.1:4200/api from `prefect server start`);
                             unset: Prefect's ephemeral server, started in this process
  PREFECT_HOME               Prefect's state (default <home>/prefect)
"""


def _settings(args: argparse.Namespace) -> Settings:
    return get_settings(
        home=args.home, catalog=args.catalog, policy=args.policy,
        database_url=args.database_url, model_path=getattr(args, "model", None),
    )


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _ts(text: str | None) -> float | None:
    dt = _when(text)
    return dt.timestamp() if dt else None


def _share(text: str) -> float:
    """argparse type: a share strictly between 0 and 1."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def _positive(text: str) -> float:
    """argparse type: a positive, finite number."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_validate(args: argparse.Namespace) -> int:
    from bandit.config.loader import load_config

    s = _settings(args)
    cfg = load_config(s)
    print(f"catalog {s.catalog}: {len(cfg.catalog.offers)} offers (+ no_offer), version {cfg.catalog.version}")
    print(f"policy  {s.policy}: mode {cfg.policy.mode}, exploration {cfg.policy.exploration.algorithm}")
    print("VW arguments: " + " ".join(cfg.policy.vw_args()))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    s = _settings(args)
    _print({"home": str(s.home.resolve()), "catalog": str(s.catalog), "policy": str(s.policy),
            "decision_log": s.db_url.split("@")[-1], "model_path": str(s.model_path) if s.model_path else None})
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the decision log's schema to this code's revision (``--check``: only say
    whether the log can be opened as it is)."""
    from bandit.log.migrations import HEAD, current, display_url, refusal, upgrade

    s = _settings(args)
    s.ensure_home()
    where = f"decision log {display_url(s.db_url)}"
    if args.check:
        state = current(s.db_url)
        if state.revision == HEAD:
            print(f"{where}: at revision {HEAD}, current")
            return 0
        if state.empty:
            print(f"{where}: empty; it is created at revision {HEAD} when first opened")
            return 0
        print(refusal(s.db_url, state))
        return 1
    before, after = upgrade(s.db_url)
    if before.revision == after:
        print(f"{where}: already at revision {after}; nothing to do")
    else:
        print(f"{where}: upgraded from {before.described} to revision {after}")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bandit.domain.context import DecisionRequest
    from bandit.deploy.runtime import build_decider

    text = sys.stdin.read() if args.request == "-" else Path(args.request).read_text()
    try:
        request = DecisionRequest.model_validate_json(text)
    except ValidationError as exc:
        for e in exc.errors():
            print(f"error: field '{'.'.join(map(str, e['loc']))}': {e['msg']}", file=sys.stderr)
        return 2
    decision = build_decider(_settings(args)).decide(request, now=_when(args.now))
    _print(decision.model_dump())
    return 0


def cmd_outcome(args: argparse.Namespace) -> int:
    from bandit.deploy.runtime import build_decider

    new = build_decider(_settings(args)).record_outcome(
        args.event_id, args.type, value=args.value, score=args.score, now=_when(args.now)
    )
    print("recorded" if new else "duplicate: already recorded, nothing written")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    from bandit.deploy.runtime import build_decider

    new = build_decider(_settings(args)).activate(args.event_id, now=_when(args.now))
    print("activated" if new else "already active")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bandit.config.loader import load_config
    from bandit.log.dsjson import export_dsjson
    from bandit.deploy.runtime import open_store

    s = _settings(args)
    cfg = load_config(s).policy.reward
    with open(args.file, "w") as out:
        stats = export_dsjson(open_store(s), out, cfg, _ts(args.since), _ts(args.until))
    print(f"wrote {stats.written} events to {args.file} ({stats.skipped_inactive} never activated, left out)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from bandit.config.loader import load_config
    from bandit.log.dsjson import DSJSONError, import_dsjson
    from bandit.deploy.runtime import open_store

    s = _settings(args)
    cfg = load_config(s).policy.reward
    try:
        with open(args.file) as fh:
            stats = import_dsjson(open_store(s), fh, cfg)
    except DSJSONError as exc:
        print(f"error: {args.file}: {exc} (nothing imported)", file=sys.stderr)
        return 2
    print(f"read {stats.read} events from {args.file}: {stats.new} new, {stats.read - stats.new} already in the log")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bandit.config.loader import load_config
    from bandit.deploy.runtime import open_store
    from bandit.learn.training import train_from_log

    s = _settings(args)
    policy = load_config(s).policy
    model, n = train_from_log(open_store(s), policy, _ts(args.since), _ts(args.until), args.warm_start)
    if n == 0:
        print("error: no activated decisions in the log for that window; nothing trained", file=sys.stderr)
        return 1
    version = model.save(args.out)
    print(f"trained on {n} events; saved {args.out} ({version})")
    print(f"serve it with: OFFER_BANDIT_MODEL_PATH={args.out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the BentoML service (``service.service:OfferBandit``) in this process."""
    import os

    s = _settings(args)
    env = serve_env(s, dict(os.environ))
    if not s.channel_keys() and not s.admin_keys():
        print("error: no API keys configured: set OFFER_BANDIT_API_KEYS (channel keys, comma separated) and "
              "OFFER_BANDIT_ADMIN_KEY, or OFFER_BANDIT_API_KEYS_FILE / OFFER_BANDIT_ADMIN_KEY_FILE", file=sys.stderr)
        return 2
    from bandit.config.loader import load_config

    load_config(s)  # fail here, clearly, rather than in a worker
    from bandit.deploy.runtime import open_store

    open_store(s).close()  # so does a log that needs `offer-bandit migrate` (an empty one is created)
    bentoml = Path(sys.executable).with_name("bentoml")
    argv = [str(bentoml), "serve", "service.service:OfferBandit", "--host", args.host, "--port", str(args.port)]
    os.execve(argv[0], argv, env)
    return 0  # not reached


def serve_env(s: Settings, env: dict[str, str]) -> dict[str, str]:
    """The service's environment: the settings, and BentoML's home under ours unless set.

    Why its own BentoML home: every ``bentoml serve`` empties the Prometheus multiprocess
    directory under BentoML's home when it starts, so replicas (or any two services) on
    one host sharing the default ``~/bentoml`` wipe each other's metrics."""
    env = _export(s, env)
    env.setdefault("BENTOML_HOME", str((s.home / "bentoml").resolve()))
    return env


def _export(s: Settings, env: dict[str, str]) -> dict[str, str]:
    """The settings as environment variables (for a child process, or for flows, which read
    their settings from the environment), with every tool's telemetry off."""
    for name, value in (("OFFER_BANDIT_HOME", s.home.resolve()), ("OFFER_BANDIT_CATALOG", s.catalog.resolve()),
                        ("OFFER_BANDIT_POLICY", s.policy.resolve()), ("OFFER_BANDIT_DATABASE_URL", s.database_url),
                        ("OFFER_BANDIT_MODEL_PATH", s.model_path)):
        if value is not None:
            env[name] = str(value)
    env.update(DO_NOT_TRACK="1", BENTOML_DO_NOT_TRACK="True", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               MLFLOW_DISABLE_TELEMETRY="true", MLFLOW_ENABLE_TELEMETRY="false")
    env.setdefault("PREFECT_HOME", str((s.home / "prefect").resolve()))
    # the ephemeral server's first start on a fresh PREFECT_HOME can take longer than 20 s
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    return env


def _flow_settings(args: argparse.Namespace) -> Settings:
    """Settings for running a Prefect flow in this process: exported to the environment
    before Prefect is imported, so the flow (and Prefect's home) see the same ones."""
    import os

    s = _settings(args)
    if args.no_prefect:
        return s  # the steps run in this process with these settings; nothing to export
    os.environ.update(_export(s, dict(os.environ)))
    s.ensure_home()
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
    if args.fn is not cmd_flows_serve:
        where = os.environ.get("PREFECT_API_URL") or "Prefect's ephemeral server (starting; ~20 s)"
        print(f"running the flow under {where} ...", file=sys.stderr, flush=True)
    return s


def cmd_retrain(args: argparse.Namespace) -> int:
    """One retrain (``flows.retrain``, as the Prefect flow unless --no-prefect): train on the
    window, evaluate off-policy, log to MLflow, register, promote only through the gate."""
    from dataclasses import asdict

    s = _flow_settings(args)
    params = {"as_of": _ts(args.as_of), "window_days": args.window_days, "holdout": args.holdout,
              "warm_start": args.warm_start}
    print(f"retraining on {args.window_days:g} days of the log (MLflow: {s.tracking_uri}) ...", flush=True)
    if args.no_prefect:
        from flows.retrain import retrain

        r = asdict(retrain(s, **params))
    else:
        from flows.retrain_flow import retrain_flow

        r = retrain_flow(**params)
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
    """Register retrain, monitor and tune as scheduled Prefect deployments and run them."""
    import os

    for flag, name in (("retrain_cron", "OFFER_BANDIT_RETRAIN_CRON"), ("monitor_cron", "OFFER_BANDIT_MONITOR_CRON"),
                       ("tune_cron", "OFFER_BANDIT_TUNE_CRON"), ("timezone", "OFFER_BANDIT_SCHEDULE_TIMEZONE")):
        if getattr(args, flag) is not None:
            os.environ[name] = getattr(args, flag)
    args.no_prefect = False
    s = _flow_settings(args)
    from flows.deployments import deployments, serve_flows

    deployments(s)  # a bad schedule fails here, before anything starts
    print(f"schedules ({s.schedule_timezone}): retrain '{s.retrain_cron}', monitor '{s.monitor_cron}', "
          f"tune '{s.tune_cron}'; Prefect API: {os.environ.get('PREFECT_API_URL') or 'ephemeral (in this process)'}",
          flush=True)
    serve_flows(s)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Move the champion alias back to the previous version (the service picks it up)."""
    from flows.registry import Registry

    s = _settings(args)
    was, now = Registry(s.tracking_uri, s.registered_model).rollback()
    print(f"{s.registered_model}: champion is version {now} again (was {was}; {was} is now 'previous')")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    """One monitor run (``flows.monitor``): rates per offer and channel over the window,
    suspend offers over their complaint limit, lift over the control group, log to MLflow."""
    from dataclasses import asdict

    s = _flow_settings(args)
    params = {"as_of": _ts(args.as_of), "window_hours": args.window_hours}
    if args.no_prefect:
        from flows.monitor import monitor

        r = asdict(monitor(s, **params))
    else:
        from flows.monitor_flow import monitor_flow

        r = monitor_flow(**params)
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


def cmd_tune(args: argparse.Namespace) -> int:
    """One tuning run (``flows.tune``): train and evaluate a grid of VW settings off-policy
    on the window, log them to MLflow, print the ranking and the best as policy-file YAML.
    It recommends only: nothing is registered or promoted, the policy file is not touched."""
    from flows.tune import EXPERIMENT

    s = _flow_settings(args)
    params = {"as_of": _ts(args.as_of), "window_days": args.window_days, "holdout": args.holdout}
    print(f"tuning on {args.window_days:g} days of the log (MLflow: {s.tracking_uri}) ...", flush=True)
    if args.no_prefect:
        from flows.tune import tune

        r = tune(s, **params).summary()
    else:
        from flows.tune_flow import tune_flow

        r = tune_flow(**params)
    print(r["report"])
    if r["best"] is None:
        print("no recommendation: " + "; ".join(r["reasons"]))
        return 1
    print(f"MLflow run {r['run_id']} (experiment {EXPERIMENT}); to adopt the best, edit {s.policy}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from experiments.demo import run_demo

    return run_demo(_settings(args), days=args.days, per_day=args.per_day, seed=args.seed, json_path=args.json,
                    params_path=args.params)


def _window_options(sp: argparse.ArgumentParser) -> None:
    """The options of the flows that read a window of the log and hold part of it out."""
    sp.add_argument("--as-of", help="end of the window, ISO 8601 (default: now)")
    sp.add_argument("--window-days", type=_positive, default=7.0, help="length of the window (default 7)")
    sp.add_argument("--holdout", type=_share, default=0.2, help="newest share held out for evaluation (default 0.2)")
    sp.add_argument("--no-prefect", action="store_true", help="run the steps directly, without a Prefect flow run")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("settings")
    g.add_argument("--home", type=Path, help="state directory (env OFFER_BANDIT_HOME)")
    g.add_argument("--catalog", type=Path, help="offer catalog YAML (env OFFER_BANDIT_CATALOG)")
    g.add_argument("--policy", type=Path, help="policy file YAML (env OFFER_BANDIT_POLICY)")
    g.add_argument("--database-url", help="decision log URL (env OFFER_BANDIT_DATABASE_URL)")

    p = argparse.ArgumentParser(
        prog="offer-bandit",
        description="Point-of-service offer decisioning: guarded, exploring, logged contextual bandit.",
        epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Any, help_: str, description: str | None = None) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help_, description=description or help_,
                            epilog=ENV_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(fn=fn)
        return sp

    add("validate", cmd_validate, "check the catalog and the policy file; list every problem")
    add("info", cmd_info, "show where state and configuration are resolved from")

    sp = add("migrate", cmd_migrate, "upgrade the decision log's schema to this version's revision",
             "Upgrade the decision log (--database-url, else OFFER_BANDIT_DATABASE_URL, else the SQLite file "
             "under the home) to this version's schema revision with Alembic, and print the revision it was "
             "found at and the one it is at. A log made before revisions existed is checked and stamped at the "
             "baseline first. Safe to run from several places at once (they wait for one another). The "
             "service and every command refuse a log that needs this, and create an empty one at the current "
             "revision by themselves. Back the log up first.")
    sp.add_argument("--check", action="store_true",
                    help="change nothing; exit 0 if the log can be opened as it is (current, or empty), "
                    "1 if it needs migrating")

    sp = add("decide", cmd_decide, "make one decision from a JSON request (file or - for stdin)",
             "Make one guarded, exploring, logged decision and print it as JSON.")
    sp.add_argument("request", help="JSON file with the decision request, or - for stdin")
    sp.add_argument("--model", type=Path, help="VW model file (env OFFER_BANDIT_MODEL_PATH)")
    sp.add_argument("--now", help="decision time, ISO 8601 (default: now)")

    sp = add("outcome", cmd_outcome, "record an outcome for a logged decision")
    sp.add_argument("event_id")
    sp.add_argument("type", choices=["accepted", "declined", "converted", "complaint", "nps", "reward"])
    sp.add_argument("--value", type=float, help="revenue (accepted, converted) or reward value")
    sp.add_argument("--score", type=float, help="NPS score 0..10 (nps)")
    sp.add_argument("--now", help="outcome time, ISO 8601 (default: now)")

    sp = add("activate", cmd_activate, "activate a decision made with defer_activation")
    sp.add_argument("event_id")
    sp.add_argument("--now", help="activation time, ISO 8601 (default: now)")

    sp = add("export-dsjson", cmd_export, "export the joined log as VW DSJSON",
             "Write activated decisions with their rewards as VW DSJSON, one event per line; "
             "`python -m vowpalwabbit --dsjson --cb_explore_adf -d FILE` trains from it.")
    sp.add_argument("file", type=Path)
    sp.add_argument("--since", help="first decision time, ISO 8601")
    sp.add_argument("--until", help="end of the window (exclusive), ISO 8601")

    sp = add("import-dsjson", cmd_import, "import a DSJSON history (ours, Personalizer's, Decision Service's)",
             "Validate a whole DSJSON file, then add its events to the log; ids already present are skipped.")
    sp.add_argument("file", type=Path)

    sp = add("train", cmd_train, "train a VW policy on the log and save it")
    sp.add_argument("--out", type=Path, required=True, help="model file to write")
    sp.add_argument("--since", help="first decision time, ISO 8601")
    sp.add_argument("--until", help="end of the window (exclusive), ISO 8601")
    sp.add_argument("--warm-start", type=Path, help="continue from this model file")

    sp = add("serve", cmd_serve, "run the decision service (BentoML) over HTTP",
             "Serve /decide, /outcome, /activate, /offers, the admin routes and the Personalizer-compatible "
             "API. Needs OFFER_BANDIT_API_KEYS and OFFER_BANDIT_ADMIN_KEY (or their _FILE variants).")
    sp.add_argument("--port", type=int, default=3000)
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sp.add_argument("--model", type=Path, help="VW model file to serve and watch (env OFFER_BANDIT_MODEL_PATH); default: the MLflow registry's champion (OFFER_BANDIT_MODEL_ALIAS of OFFER_BANDIT_REGISTERED_MODEL)")

    sp = add("retrain", cmd_retrain, "retrain once: train, evaluate off-policy, log to MLflow, promote through the gate",
             "Train a candidate on the window of the log that ends at --as-of (the newest --holdout share held "
             "out), compare it off-policy with the champion and the baselines, log the run to MLflow, register "
             "it, and promote it to champion only if the policy file's promotion gate agrees. Re-running the same "
             "window returns the earlier result.")
    _window_options(sp)
    sp.add_argument("--warm-start", action="store_true", help="continue from the champion instead of a fresh learner")

    add("rollback", cmd_rollback, "move the registry's champion alias back to the previous version")

    sp = add("monitor", cmd_monitor, "judge offers over a sliding window; suspend those drawing complaints",
             "Per offer and channel over the window of the log that ends at --as-of: acceptance rate, "
             "complaint rate and revenue. An offer made at least monitoring.min_offers times whose complaint "
             "rate exceeds its limit (the catalog's max_complaint_rate, else the policy file's) is suspended "
             "through the kill switch. Also the bandit's lift over the control group, with 95% intervals. "
             "The run and its report go to MLflow (experiment offer-bandit-monitor).")
    sp.add_argument("--as-of", help="end of the window, ISO 8601 (default: now)")
    sp.add_argument("--window-hours", type=_positive,
                    help="length of the window in hours (default: the policy file's monitoring.window_hours, 24)")
    sp.add_argument("--no-prefect", action="store_true", help="run the steps directly, without a Prefect flow run")

    fp = sub.add_parser("flows", help="scheduled Prefect deployments of retrain, monitor and tune",
                        description="Prefect deployments of the flows.")
    fsub = fp.add_subparsers(dest="flows_command", required=True, metavar="SUBCOMMAND")
    sp = fsub.add_parser(
        "serve", parents=[common], help="register the deployments with their schedules and run them as they come due",
        description="Register retrain (nightly), monitor (hourly) and tune (weekly) as Prefect deployments with "
        "cron schedules, and run each scheduled run in a subprocess until interrupted (Ctrl-C). Uses the Prefect "
        "server at PREFECT_API_URL when set (watch the runs in its UI), else Prefect's ephemeral server.",
        epilog=ENV_HELP + FLOWS_ENV_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.set_defaults(fn=cmd_flows_serve)
    sp.add_argument("--retrain-cron", help="cron schedule of retrain (env OFFER_BANDIT_RETRAIN_CRON, default '0 2 * * *')")
    sp.add_argument("--monitor-cron", help="cron schedule of monitor (env OFFER_BANDIT_MONITOR_CRON, default '0 * * * *')")
    sp.add_argument("--tune-cron", help="cron schedule of tune (env OFFER_BANDIT_TUNE_CRON, default '0 3 * * 0')")
    sp.add_argument("--timezone", help="time zone of the schedules (env OFFER_BANDIT_SCHEDULE_TIMEZONE, default UTC)")

    sp = add("tune", cmd_tune, "evaluate a grid of VW settings off-policy and recommend the best",
             "Train one model per grid point (explorer, cb_type, interactions, learning rate) on the older part "
             "of the window of the log that ends at --as-of, evaluate each one's exploring policy off-policy on "
             "the newest --holdout share, log every point as a child run to MLflow (experiment "
             "offer-bandit-tune), and print the ranking and the best setting, with its 95% interval, as "
             "policy-file YAML. Nothing is registered or promoted: adopt it by editing the policy file.")
    _window_options(sp)

    sp = add("demo", cmd_demo, "the whole loop on simulated days: service, outcomes, nightly flows, baselines",
             "Start the real service on the embedded defaults (under <home>/demo), send --days simulated days of "
             "--per-day interactions from the contact-center simulator through /decide and /outcome over HTTP, run "
             "the retrain and monitor flows under Prefect each night (the gate promotes, the service picks the "
             "champion up), and print a table per day next to no_offer, uniform random, the rules heuristic and "
             "the oracle on the same simulated customers; then the plot, the MLflow run ids and the commands that "
             "open the MLflow and Prefect UIs.")
    sp.add_argument("--days", type=int, default=6, help="simulated days (default 6)")
    sp.add_argument("--per-day", type=int, help="interactions per day (default: all the simulator's, see "
                    "interactions_per_day in experiments/simulator.yaml)")
    sp.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    sp.add_argument("--json", type=Path, help="also write the final table here as JSON")
    sp.add_argument("--params", type=Path, help="simulator parameter file (default experiments/simulator.yaml)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except ConfigError as exc:
        print("configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except OfferBanditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
