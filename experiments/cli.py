"""``offer-bandit demo``: the experiments' command, contributed to the core's command line
through the entry point ``offer_bandit.commands`` (the core does not import experiments)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bandit.cli import CommandLine, CommandSet, settings_from


def cmd_demo(args: argparse.Namespace) -> int:
    from experiments.demo.demo import run_demo

    return run_demo(settings_from(args), days=args.days, per_day=args.per_day, seed=args.seed, json_path=args.json,
                    params_path=args.params)


def register(cli: CommandLine) -> None:
    sp = cli.add("demo", cmd_demo, "the whole loop on simulated days: service, outcomes, nightly flows, baselines",
                 "Start the real service on the embedded defaults (under <home>/demo), send --days simulated days "
                 "of --per-day interactions from the contact-center simulator through /decide and /outcome over "
                 "HTTP, run the retrain and monitor flows under Prefect each night (the gate promotes, the service "
                 "picks the champion up), and print a table per day next to no_offer, uniform random, the rules "
                 "heuristic and the oracle on the same simulated customers; then the plot, the MLflow run ids and "
                 "the commands that open the MLflow and Prefect UIs.")
    sp.add_argument("--days", type=int, default=6, help="simulated days (default 6)")
    sp.add_argument("--per-day", type=int, help="interactions per day (default: all the simulator's, see "
                    "interactions_per_day in experiments/simulator/simulator.yaml)")
    sp.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    sp.add_argument("--json", type=Path, help="also write the final table here as JSON")
    sp.add_argument("--params", type=Path, help="simulator parameter file (default experiments/simulator/simulator.yaml)")


COMMANDS = CommandSet(order=30, register=register)
