"""``offer-bandit serve``: the service's command, contributed to the core's command line
through the entry point ``offer_bandit.commands`` (the core does not import the service).

Importing this module is cheap (no BentoML): ``offer-bandit --help`` stays instant."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bandit.cli import CommandLine, CommandSet, settings_from
from bandit.config.settings import TELEMETRY_OFF, Settings


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the BentoML service (``service.service:OfferBandit``) in this process."""
    s = settings_from(args)
    if not s.channel_keys() and not s.admin_keys():
        print("error: no API keys configured: set OFFER_BANDIT_API_KEYS (channel keys, comma separated) and "
              "OFFER_BANDIT_ADMIN_KEY, or OFFER_BANDIT_API_KEYS_FILE / OFFER_BANDIT_ADMIN_KEY_FILE", file=sys.stderr)
        return 2
    from bandit.config.loader import load_config
    from bandit.deploy.runtime import open_store

    load_config(s)  # fail here, clearly, rather than in a worker
    open_store(s).close()  # so does a log that needs `offer-bandit migrate` (an empty one is created)
    bentoml = Path(sys.executable).with_name("bentoml")
    argv = [str(bentoml), "serve", "service.service:OfferBandit", "--host", args.host, "--port", str(args.port)]
    os.execve(argv[0], argv, serve_env(s, dict(os.environ)))
    return 0  # not reached


def serve_env(s: Settings, env: dict[str, str]) -> dict[str, str]:
    """The service process's environment: ``env`` with the settings (the worker loads them
    again from there), telemetry off, and BentoML's home under ours unless set.

    Why its own BentoML home: every ``bentoml serve`` empties the Prometheus multiprocess
    directory under BentoML's home when it starts, so replicas (or any two services) on
    one host sharing the default ``~/bentoml`` wipe each other's metrics."""
    env = {**env, **s.environment(), **TELEMETRY_OFF}
    env.setdefault("BENTOML_HOME", str((s.home / "bentoml").resolve()))
    return env


def register(cli: CommandLine) -> None:
    sp = cli.add("serve", cmd_serve, "run the decision service (BentoML) over HTTP",
                 "Serve /decide, /outcome, /activate, /offers, the admin routes and the Personalizer-compatible "
                 "API (rank, reward, activate, multi-slot, management), with the API document at /docs.json and "
                 "its page at /. Needs OFFER_BANDIT_API_KEYS and OFFER_BANDIT_ADMIN_KEY (or their _FILE variants); "
                 "OFFER_BANDIT_CORS_ORIGINS lets browsers on those origins call it.")
    sp.add_argument("--port", type=int, default=3000)
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sp.add_argument("--model", type=Path, help="VW model file to serve and watch (env OFFER_BANDIT_MODEL_PATH); "
                    "default: the MLflow registry's champion (OFFER_BANDIT_MODEL_ALIAS of "
                    "OFFER_BANDIT_REGISTERED_MODEL)")


COMMANDS = CommandSet(order=10, register=register)
