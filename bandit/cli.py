"""``offer-bandit``: the command line.

Every command that makes a decision goes through ``bandit.runtime.build_decider``
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

from bandit.errors import ConfigError, OfferBanditError
from bandit.settings import Settings, get_settings

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


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_validate(args: argparse.Namespace) -> int:
    from bandit.config import load_config

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


def cmd_decide(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bandit.context import DecisionRequest
    from bandit.runtime import build_decider

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
    from bandit.runtime import build_decider

    new = build_decider(_settings(args)).record_outcome(
        args.event_id, args.type, value=args.value, score=args.score, now=_when(args.now)
    )
    print("recorded" if new else "duplicate: already recorded, nothing written")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    from bandit.runtime import build_decider

    new = build_decider(_settings(args)).activate(args.event_id, now=_when(args.now))
    print("activated" if new else "already active")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bandit.config import load_config
    from bandit.dsjson import export_dsjson
    from bandit.runtime import open_store

    s = _settings(args)
    cfg = load_config(s).policy.reward
    with open(args.file, "w") as out:
        stats = export_dsjson(open_store(s), out, cfg, _ts(args.since), _ts(args.until))
    print(f"wrote {stats.written} events to {args.file} ({stats.skipped_inactive} never activated, left out)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from bandit.config import load_config
    from bandit.dsjson import DSJSONError, import_dsjson
    from bandit.runtime import open_store

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
    from bandit.config import load_config
    from bandit.runtime import open_store
    from bandit.training import train_from_log

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
    env = dict(os.environ)
    for name, value in (("OFFER_BANDIT_HOME", s.home), ("OFFER_BANDIT_CATALOG", s.catalog),
                        ("OFFER_BANDIT_POLICY", s.policy), ("OFFER_BANDIT_DATABASE_URL", s.database_url),
                        ("OFFER_BANDIT_MODEL_PATH", s.model_path)):
        if value is not None:
            env[name] = str(value)
    env.update(DO_NOT_TRACK="1", BENTOML_DO_NOT_TRACK="True")
    if not s.channel_keys() and not s.admin_keys():
        print("error: no API keys configured: set OFFER_BANDIT_API_KEYS (channel keys, comma separated) and "
              "OFFER_BANDIT_ADMIN_KEY, or OFFER_BANDIT_API_KEYS_FILE / OFFER_BANDIT_ADMIN_KEY_FILE", file=sys.stderr)
        return 2
    from bandit.config import load_config

    load_config(s)  # fail here, clearly, rather than in a worker
    bentoml = Path(sys.executable).with_name("bentoml")
    argv = [str(bentoml), "serve", "service.service:OfferBandit", "--host", args.host, "--port", str(args.port)]
    os.execve(argv[0], argv, env)
    return 0  # not reached


def cmd_retrain(args: argparse.Namespace) -> int:
    """One retrain (``flows.retrain``): train on the window, evaluate off-policy, log to
    MLflow, register, promote only through the gate."""
    from flows.retrain import retrain

    s = _settings(args)
    print(f"retraining on {args.window_days:g} days of the log (MLflow: {s.tracking_uri}) ...", flush=True)
    r = retrain(s, as_of=_ts(args.as_of), window_days=args.window_days,
                holdout=args.holdout, warm_start=args.warm_start)
    if r.reused:
        print("this window was retrained before; its result:")
    print(f"trained on {r.trained_on} decisions, evaluated on {r.evaluated_on}; MLflow run {r.run_id}")
    if r.version is None:
        print("nothing registered: " + "; ".join(r.reasons))
        return 1
    verdict = "promoted to champion" if r.promoted else "registered, not promoted"
    print(f"{s.registered_model} version {r.version}: {verdict}: " + "; ".join(r.reasons))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Move the champion alias back to the previous version (the service picks it up)."""
    from flows.registry import Registry

    s = _settings(args)
    was, now = Registry(s.tracking_uri, s.registered_model).rollback()
    print(f"{s.registered_model}: champion is version {now} again (was {was}; {was} is now 'previous')")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from experiments.loop import run_loop

    return run_loop(_settings(args), days=args.days, per_day=args.per_day, seed=args.seed)


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
    sp.add_argument("--as-of", help="end of the window, ISO 8601 (default: now)")
    sp.add_argument("--window-days", type=float, default=7.0, help="length of the window (default 7)")
    sp.add_argument("--holdout", type=float, default=0.2, help="newest share held out for evaluation (default 0.2)")
    sp.add_argument("--warm-start", action="store_true", help="continue from the champion instead of a fresh learner")

    add("rollback", cmd_rollback, "move the registry's champion alias back to the previous version")

    sp = add("demo", cmd_demo, "run a small simulated loop: decide, outcomes, train, decide again",
             "Simulated days of interactions through the decision path, retraining each night, "
             "with a table of what happened. State goes to the home directory.")
    sp.add_argument("--days", type=int, default=4)
    sp.add_argument("--per-day", type=int, default=1500)
    sp.add_argument("--seed", type=int, default=7)
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
