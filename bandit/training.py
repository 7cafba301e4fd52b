"""Training a policy from a log in VW's DSJSON format.

Training reads DSJSON lines (our own export, or a Personalizer or Decision Service
history) with VW's native JSON parser, exactly as
``python -m vowpalwabbit --dsjson --cb_explore_adf`` would, then hands back a
``VWModel`` for serving: DSJSON and our text features hash identically, so the
trained weights apply unchanged to live requests.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import vowpalwabbit

from bandit.dsjson import dsjson_lines
from bandit.policyfile import PolicyFile
from bandit.store import DecisionStore
from bandit.vw import VWModel


def train_dsjson(args: list[str], lines: Iterable[str], warm_start: Path | None = None) -> tuple[VWModel, int]:
    """Train on DSJSON lines; returns the model and how many events it learned from.

    ``warm_start`` continues from a saved model (its arguments are in the file);
    otherwise a fresh learner is built from ``args``.
    """
    argv = ["--quiet", "--dsjson"] + (["-i", str(warm_start)] if warm_start else ["--no_stdin", *args])
    ws = vowpalwabbit.Workspace(" ".join(argv))
    n = 0
    try:
        for line in lines:
            exs = ws.parse(line)
            ws.learn(exs)
            ws.finish_example(exs)
            n += 1
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "model.vw"
            ws.save(str(path))
            model = VWModel.load(path)
    finally:
        ws.finish()
    return model, n


def train_from_log(store: DecisionStore, policy: PolicyFile, since: float | None = None,
                   until: float | None = None, warm_start: Path | None = None) -> tuple[VWModel, int]:
    """Train a policy on the log with the policy file's learner and reward settings."""
    return train_dsjson(policy.vw_args(), dsjson_lines(store, policy.reward, since, until), warm_start)
