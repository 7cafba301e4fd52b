"""Training a policy from a log in VW's DSJSON format.

Training reads DSJSON lines (the log's export: live decisions, and imported Personalizer
or Decision Service histories) with VW's native JSON parser, exactly as
``python -m vowpalwabbit --dsjson --cb_explore_adf`` would, then hands back a
``VWModel`` for serving, which scores through the same reader (``bandit.log.vwjson``):
one featurization, so the trained weights mean the same thing to live requests and to
the logged decisions evaluation scores.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import vowpalwabbit

from bandit.log.dsjson import dsjson_lines
from bandit.log.vwjson import READER_ARGS
from bandit.config.policyfile import PolicyFile
from bandit.log.store import DecisionStore
from bandit.decide.vw import VWModel


def train_dsjson(args: list[str], lines: Iterable[str], warm_start: Path | None = None) -> tuple[VWModel, int]:
    """Train on DSJSON lines; returns the model and how many events it learned from.

    ``warm_start`` continues from a saved model (its arguments are in the file);
    otherwise a fresh learner is built from ``args``. The lines are written to a
    temporary file for ``train_dsjson_file``.
    """
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "events.json"
        n = 0
        with open(data, "w") as fh:
            for line in lines:
                line = line.strip()
                if line:
                    fh.write(line + "\n")
                    n += 1
        model, _ = train_dsjson_file(args, data, warm_start, events=n)
    return model, n


def train_dsjson_file(args: list[str], data: Path, warm_start: Path | None = None,
                      events: int | None = None) -> tuple[VWModel, int]:
    """Train on a DSJSON file with VW's own driver (``-d``), exactly as its command-line
    trainer does; returns the model and the number of events (counted when not given).

    Why the driver: a Python loop handing VW one parsed event at a time ran at 0.38 of
    raw VW's events/s in ``experiments/bench/training.py``."""
    if events is None:
        with open(data) as fh:
            events = sum(1 for line in fh if line.strip())
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.vw"
        argv = ["--quiet", *READER_ARGS, "-d", str(data), "-f", str(path)]
        argv += ["-i", str(warm_start)] if warm_start else list(args)
        ws = vowpalwabbit.Workspace(" ".join(argv))
        ws.finish()  # writes the model (-f)
        model = VWModel.load(path)
    return model, events


def train_from_log(store: DecisionStore, policy: PolicyFile, since: float | None = None,
                   until: float | None = None, warm_start: Path | None = None) -> tuple[VWModel, int]:
    """Train a policy on the log with the policy file's learner and reward settings."""
    return train_dsjson(policy.vw_args(), dsjson_lines(store, policy.reward, since, until), warm_start)
