"""``offer-bandit``: the command line.

The core knows its own commands (configuration, the log, one decision, training). The
packages above it contribute theirs through the entry-point group
``offer_bandit.commands`` (``serve`` from the service, ``retrain``, ``monitor``, ``tune``,
``rollback``, ``evaluate`` and ``flows`` from the flows, ``demo`` from the experiments), the way pytest
and flask find their plugins: the core never imports what sits above it. Every command
that makes a decision goes through ``bandit.deploy.runtime.build_decider`` and so through
the one decision path. Heavy imports happen inside commands, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from bandit.domain.errors import ConfigError, InvalidRequest, OfferBanditError, Unreachable
from bandit.learn import window
from bandit.config.settings import Settings, get_settings
from bandit.domain.outcomes import OUTCOME_TYPES
from bandit.log.store import STORE_ERRORS

ENV_HELP = """
environment (each overridable by the options above):
  OFFER_BANDIT_HOME          state directory (default ./.offer-bandit)
  OFFER_BANDIT_CATALOG       marketing's offer catalog (default: config/offers.yaml in the working
                             directory, else <home>/offers.yaml, else the packaged example)
  OFFER_BANDIT_POLICY        the service's policy file (default: found as the catalog, policy.yaml)
  OFFER_BANDIT_DATABASE_URL  decision log URL (default sqlite under the home)
  OFFER_BANDIT_SALT          secret for hashing customer ids (default <home>/salt)
  OFFER_BANDIT_MODEL_PATH    VW model file to serve (default: the registry's champion, else cold start)
  OFFER_BANDIT_MLFLOW_TRACKING_URI  MLflow store (default sqlite:///<home>/mlflow.db)
  OFFER_BANDIT_API_KEYS      service: channel keys, comma separated (or OFFER_BANDIT_API_KEYS_FILE)
  OFFER_BANDIT_ADMIN_KEY     service: admin key (or OFFER_BANDIT_ADMIN_KEY_FILE)
  OFFER_BANDIT_CORS_ORIGINS  service: origins browsers may call it from, comma separated, or * (default none)
"""



def settings_from(args: argparse.Namespace, **more: object) -> Settings:
    """The settings the command's options name (and ``more``, a command's own), over the
    environment's: loaded once per command and passed down from here."""
    return get_settings(
        home=args.home, catalog=args.catalog, policy=args.policy,
        database_url=args.database_url, model_path=getattr(args, "model", None), **more,
    )


def parse_time(text: str) -> datetime:
    """argparse type: an ISO 8601 time (UTC when it names no zone). A bad one is argparse's
    one-line error naming the option, not a traceback."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def timestamp(dt: datetime | None) -> float | None:
    """Seconds since the epoch, as the log keeps times; ``None`` stays ``None``."""
    return dt.timestamp() if dt else None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _option(check: Callable[[float], float]) -> Callable[[str], float]:
    """An argparse type from one of the domain's checks (``bandit.learn.window``): the same
    rule as the flows apply, its message as argparse's one-line error."""
    def parse(text: str) -> float:
        try:
            return check(_number(text))
        except InvalidRequest as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None
    return parse


share = _option(lambda v: window.share("share", v))
"""argparse type: a share strictly between 0 and 1."""


def positive(unit: str) -> Callable[[str], float]:
    """argparse type: a positive, finite number of ``unit``."""
    return _option(lambda v: window.positive("value", v, unit))


class ProgressBar:
    """A progress bar on stderr for long commands: ``bar(stage, done, total)`` redraws the
    stage's line (a count while ``total`` is unknown) and ends it when the stage is done.
    stdout stays the command's result alone."""

    WIDTH = 30

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._stage: str | None = None

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if self._stage is not None and stage != self._stage:
            self.stream.write("\n")
        self._stage = stage
        if total:
            filled = int(self.WIDTH * min(done, total) / total)
            line = f"{stage:<32} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}"
        else:
            line = f"{stage:<32} {done}"
        self.stream.write("\r" + line)
        if total is not None and done >= total:
            self.stream.write("\n")
            self._stage = None
        self.stream.flush()


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_validate(args: argparse.Namespace) -> int:
    from bandit.config.loader import load_config

    s = settings_from(args)
    cfg = load_config(s)
    found = s.config_sources
    print(f"catalog {s.catalog} ({found['catalog']}): {len(cfg.catalog.offers)} offers (+ no_offer), "
          f"version {cfg.catalog.version}")
    print(f"policy  {s.policy} ({found['policy']}): mode {cfg.policy.mode}, "
          f"exploration {cfg.policy.exploration.algorithm}")
    print("VW arguments: " + " ".join(cfg.policy.vw_args()))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from bandit.config.settings import hide_password

    s = settings_from(args)
    found = s.config_sources
    print_json({"home": str(s.home.resolve()),
                "catalog": {"path": str(s.catalog), "found": found["catalog"]},
                "policy": {"path": str(s.policy), "found": found["policy"]},
                "decision_log": hide_password(s.db_url), "mlflow_tracking_uri": hide_password(s.tracking_uri),
                "model_path": str(s.model_path) if s.model_path else None})
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Write the packaged example catalog and policy file (commented) to start from."""
    import shutil

    from bandit.config.settings import CATALOG_FILE, EXAMPLES, POLICY_FILE

    s = settings_from(args)
    target: Path = args.dir if args.dir is not None else s.home
    files = [(EXAMPLES / name, target / name) for name in (CATALOG_FILE, POLICY_FILE)]
    there = [str(dest) for _, dest in files if dest.exists()]
    if there and not args.force:  # both or neither: never half a configuration
        print(f"error: {' and '.join(there)} already there; --force replaces them", file=sys.stderr)
        return 2
    target.mkdir(parents=True, exist_ok=True)
    for src, dest in files:
        shutil.copyfile(src, dest)
    print(f"wrote {files[0][1]} (the catalog: what may be offered) and {files[1][1]} (the policy file: when)")
    if target.resolve() == s.home.resolve():
        print("every command using this home finds them (offer-bandit info shows which files are used)")
    else:
        print(f"use them as the home's configuration: --home {target} (or OFFER_BANDIT_HOME={target}), or name "
              f"them: --catalog {files[0][1]} --policy {files[1][1]}")
    print(f"check a change with: offer-bandit validate --home {target}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the decision log's schema to this code's revision (``--check``: only say
    whether the log can be opened as it is: exit 0 it can, 1 an upgrade is due, 3 the
    database does not answer, as for every command)."""
    from bandit.log.migrations import HEAD, current, display_url, refusal, upgrade

    s = settings_from(args)
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
    decision = build_decider(settings_from(args)).decide(request, now=args.now)
    print_json(decision.model_dump())
    return 0


def cmd_outcome(args: argparse.Namespace) -> int:
    from bandit.deploy.runtime import build_decider

    receipt = build_decider(settings_from(args)).record_outcome(
        args.event_id, args.type, value=args.value, score=args.score, now=args.now
    )
    print("recorded" if receipt.recorded else "duplicate: already recorded, nothing written")
    if not receipt.counts:
        print("note: the decision is not activated yet; this outcome counts once it is (offer-bandit activate)")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    from bandit.deploy.runtime import build_decider

    new = build_decider(settings_from(args)).activate(args.event_id, now=args.now)
    print("activated" if new else "already active")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bandit.config.loader import load_config
    from bandit.log.dsjson import export_dsjson
    from bandit.deploy.runtime import open_store

    s = settings_from(args)
    cfg = load_config(s).policy.reward
    with open(args.file, "w") as out:
        stats = export_dsjson(open_store(s), out, cfg, timestamp(args.since), timestamp(args.until))
    print(f"wrote {stats.written} events to {args.file} ({stats.skipped_inactive} never activated, left out)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from bandit.config.loader import load_config
    from bandit.log.dsjson import DSJSONError, import_dsjson
    from bandit.deploy.runtime import open_store

    s = settings_from(args)
    cfg = load_config(s).policy.reward
    try:
        with open(args.file, "rb") as fh:  # decoded line by line, so that bad bytes name their line
            stats = import_dsjson(open_store(s), fh, cfg)
    except DSJSONError as exc:
        print(f"error: {args.file}: {exc} (nothing imported)", file=sys.stderr)
        return 2
    print(f"read {stats.read} events from {args.file}: {stats.new} new, {stats.read - stats.new} already in the log")
    if stats.not_learned:
        print(f"{stats.not_learned} marked _skipLearn (never shown): kept in the log, never learned from")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bandit.config.loader import load_config
    from bandit.deploy.runtime import open_store
    from bandit.learn.training import train_from_log

    s = settings_from(args)
    policy = load_config(s).policy
    model, n = train_from_log(open_store(s), policy, timestamp(args.since), timestamp(args.until), args.warm_start)
    if n == 0:
        print("error: no activated decisions in the log for that window; nothing trained", file=sys.stderr)
        return 1
    version = model.save(args.out)
    print(f"trained on {n} events; saved {args.out} ({version})")
    print(f"serve it with: OFFER_BANDIT_MODEL_PATH={args.out}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase one customer's decisions, outcomes and contact history (by the salted key)."""
    from bandit.deploy.runtime import build_decider

    removed = build_decider(settings_from(args)).forget(args.customer, requested_by=args.requested_by)
    if not (removed.decisions or removed.contacts):
        print("nothing to erase: the log holds no rows of this customer")
    else:
        print(f"erased {removed}; audited (without the customer's id)")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete what is older than the retention period (``--days``, else the policy file's)."""
    import time

    from bandit.config.loader import load_config
    from bandit.deploy.runtime import open_store
    from bandit.log.retention import purge

    s = settings_from(args)
    days = args.days if args.days is not None else load_config(s).policy.retention.days
    if days is None:
        print("error: no retention period: set retention.days in the policy file, or give --days", file=sys.stderr)
        return 2
    store = open_store(s)
    try:
        removed = purge(store.engine, time.time() - days * 86400, progress=lambda r: print(
            f"  ... {r.decisions} decisions deleted so far", file=sys.stderr, flush=True))
    finally:
        store.close()
    print(f"deleted what is older than {days:g} days: {removed}")
    return 0


SETTINGS_OPTIONS = (
    ("--home", Path, "state directory (env OFFER_BANDIT_HOME)"),
    ("--catalog", Path, "offer catalog YAML (env OFFER_BANDIT_CATALOG)"),
    ("--policy", Path, "policy file YAML (env OFFER_BANDIT_POLICY)"),
    ("--database-url", str, "decision log URL (env OFFER_BANDIT_DATABASE_URL)"),
)

ENTRY_POINTS = "offer_bandit.commands"


class CommandLine:
    """Where commands are added: the core's, and each plugin's through its ``CommandSet``.

    Every command gets the settings options (``--home``, ``--catalog``, ``--policy``,
    ``--database-url``) and the environment epilog, so all of them resolve state alike."""

    def __init__(self, sub: Any, common: argparse.ArgumentParser):
        self._sub = sub
        self.common = common

    def add(self, name: str, fn: Callable[[argparse.Namespace], int], help_: str, description: str | None = None,
            epilog: str = ENV_HELP) -> argparse.ArgumentParser:
        sp = self._sub.add_parser(name, parents=[self.common], help=help_, description=description or help_,
                                  epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(fn=fn)
        return sp

    def group(self, name: str, help_: str, description: str) -> CommandLine:
        """A command with subcommands of its own (``offer-bandit flows serve``)."""
        gp = self._sub.add_parser(name, help=help_, description=description)
        return CommandLine(gp.add_subparsers(dest=f"{name}_command", required=True, metavar="SUBCOMMAND"),
                           self.common)


@dataclass(frozen=True)
class CommandSet:
    """What a package above the core contributes to ``offer-bandit``: an entry point in the
    group ``offer_bandit.commands`` names one of these. ``order`` places its commands in
    ``--help`` (the core's own come first); ``register`` adds them."""

    order: int
    register: Callable[[CommandLine], None]


def plugins() -> list[CommandSet]:
    """The installed command sets, in their order. A plugin whose package cannot be
    imported (an optional dependency missing) is reported on stderr, not hidden; the
    core's commands still work."""
    found = []
    for ep in entry_points(group=ENTRY_POINTS):
        try:
            found.append(ep.load())
        except ImportError as exc:
            print(f"offer-bandit: the commands of {ep.value} are unavailable: {exc}", file=sys.stderr)
    return sorted(found, key=lambda c: c.order)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("settings")
    for flag, type_, help_ in SETTINGS_OPTIONS:
        g.add_argument(flag, type=type_, help=help_)

    p = argparse.ArgumentParser(
        prog="offer-bandit",
        description="Point-of-service offer decisioning: guarded, exploring, logged contextual bandit.",
        epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli = CommandLine(p.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)
    core_commands(cli)
    for commands in plugins():
        commands.register(cli)
    return p


def core_commands(cli: CommandLine) -> None:
    """The core's own commands."""
    sp = cli.add("init", cmd_init, "write an example catalog and policy file to start from",
                 "Write the packaged example catalog (offers.yaml) and policy file (policy.yaml), commented, "
                 "into DIR (default: the home). A home's files are found by every command that uses it "
                 "(--home, OFFER_BANDIT_HOME) when the working directory has no config/ of its own.")
    sp.add_argument("dir", nargs="?", type=Path, metavar="DIR", help="where to write them (default: the home)")
    sp.add_argument("--force", action="store_true", help="replace files already there")
    cli.add("validate", cmd_validate, "check the catalog and the policy file; list every problem")
    cli.add("info", cmd_info, "show where state and configuration are resolved from",
            "Print the home, which catalog and policy file are used and where they were found (setting, "
            "working directory, home or packaged example), the decision log, the MLflow store and the model.")

    sp = cli.add("migrate", cmd_migrate, "upgrade the decision log's schema to this version's revision",
                 "Upgrade the decision log (--database-url, else OFFER_BANDIT_DATABASE_URL, else the SQLite file "
                 "under the home) to this version's schema revision with Alembic, and print the revision it was "
                 "found at and the one it is at. A log made before revisions existed is checked and stamped at the "
                 "baseline first. Safe to run from several places at once (they wait for one another). The "
                 "service and every command refuse a log that needs this, and create an empty one at the current "
                 "revision by themselves. Back the log up first.")
    sp.add_argument("--check", action="store_true",
                    help="change nothing; exit 0 if the log can be opened as it is (current, or empty), "
                    "1 if it needs migrating, 3 if its database does not answer")

    sp = cli.add("decide", cmd_decide, "make one decision from a JSON request (file or - for stdin)",
                 "Make one guarded, exploring, logged decision and print it as JSON.")
    sp.add_argument("request", help="JSON file with the decision request, or - for stdin")
    sp.add_argument("--model", type=Path, help="VW model file (env OFFER_BANDIT_MODEL_PATH)")
    sp.add_argument("--now", type=parse_time, help="decision time, ISO 8601 (default: now)")

    sp = cli.add("outcome", cmd_outcome, "record an outcome for a logged decision")
    sp.add_argument("event_id")
    sp.add_argument("type", choices=OUTCOME_TYPES)
    sp.add_argument("--value", type=float, help="revenue (accepted, converted) or reward value")
    sp.add_argument("--score", type=float, help="NPS score 0..10 (nps)")
    sp.add_argument("--now", type=parse_time, help="outcome time, ISO 8601 (default: now)")

    sp = cli.add("activate", cmd_activate, "activate a decision made with defer_activation")
    sp.add_argument("event_id")
    sp.add_argument("--now", type=parse_time, help="activation time, ISO 8601 (default: now)")

    sp = cli.add("export-dsjson", cmd_export, "export the joined log as VW DSJSON",
                 "Write activated decisions with their rewards as VW DSJSON, one event per line; "
                 "`python -m vowpalwabbit --dsjson --cb_explore_adf -d FILE` trains from it.")
    sp.add_argument("file", type=Path)
    sp.add_argument("--since", type=parse_time, help="first decision time, ISO 8601")
    sp.add_argument("--until", type=parse_time, help="end of the window (exclusive), ISO 8601")

    sp = cli.add("import-dsjson", cmd_import, "import a DSJSON history (ours, Personalizer's, Decision Service's)",
                 "Check a whole DSJSON file (contextual-bandit events, each line's features as VW's own reader "
                 "reads them), then add its events to the log; ids already present are skipped, and "
                 "_skipLearn events are kept but never learned from.")
    sp.add_argument("file", type=Path)

    sp = cli.add("forget", cmd_forget, "erase one customer's rows from the log (decisions, outcomes, contacts)",
                 "Finds the customer's rows by the salted customer key the log stores, deletes them in one "
                 "transaction and writes an audit row (when, how many rows, --requested-by) that does not say "
                 "whose. Running it again is a no-op. The MLflow runs' datasets hold no customer key.")
    sp.add_argument("--customer", required=True, help="the customer's id, as the channels send it")
    sp.add_argument("--requested-by", help="who asked (a ticket or a name), kept in the audit row")

    sp = cli.add("purge", cmd_purge, "delete what is older than the retention period",
                 "Deletes decisions (with their outcomes), contacts and capacity uses older than --days "
                 "(default: the policy file's retention.days), in batches of short transactions; on PostgreSQL "
                 "it first makes the day partitions of the week ahead and drops the days entirely past the "
                 "retention whole. The purge flow does this on a schedule (offer-bandit flows serve).")
    sp.add_argument("--days", type=positive("days"), help="retention in days (default: the policy file's)")

    sp = cli.add("train", cmd_train, "train a VW policy on the log and save it")
    sp.add_argument("--out", type=Path, required=True, help="model file to write")
    sp.add_argument("--since", type=parse_time, help="first decision time, ISO 8601")
    sp.add_argument("--until", type=parse_time, help="end of the window (exclusive), ISO 8601")
    sp.add_argument("--warm-start", type=Path, help="continue from this model file")


EXIT_UNREACHABLE = 3
"""The exit status of a command whose database does not answer (``migrate --check``: 0
current, 1 an upgrade due, 3 unreachable), told apart from bad input (2)."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except ConfigError as exc:
        print("configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except OfferBanditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except STORE_ERRORS as exc:
        cause = getattr(exc, "orig", None) or exc
        first = next((line for line in str(cause).splitlines() if line.strip()), type(cause).__name__)
        print(f"error: the decision log's database does not answer: {first.strip()}", file=sys.stderr)
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
