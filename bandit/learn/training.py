"""Training a policy from a log in VW's DSJSON format.

Training reads DSJSON lines (the log's export: live decisions, and imported Personalizer
or Decision Service histories) with VW's native JSON parser, exactly as
``python -m vowpalwabbit --dsjson --cb_explore_adf`` would, then hands back a
``VWModel`` for serving, which scores through the same reader (``bandit.log.vwjson``):
one featurization, so the trained weights mean the same thing to live requests and to
the logged decisions evaluation scores.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import vowpalwabbit

from bandit.log.dsjson import dsjson_fields, dsjson_text
from bandit.log.reader import iter_learnable_features
from bandit.log.vwjson import READER_ARGS, context_text
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
                      events: int | None = None, predictions: Path | None = None) -> tuple[VWModel, int]:
    """Train on a DSJSON file with VW's own driver (``-d``), exactly as its command-line
    trainer does; returns the model and the number of events (counted when not given).
    With ``predictions``, VW writes there what it predicted for each event before learning
    it (``-p``: ``bandit.learn.progressive.driver_rows`` reads them).

    Why the driver: a Python loop handing VW one parsed event at a time ran at 0.38 of
    raw VW's events/s in ``experiments/bench/training.py``."""
    if events is None:
        with open(data) as fh:
            events = sum(1 for line in fh if line.strip())
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.vw"
        ws = vowpalwabbit.Workspace(" ".join(vw_argv(args, str(data), path, warm_start, predictions)))
        ws.finish()  # writes the model (-f)
        model = VWModel.load(path)
    return model, events


class TrainingFailed(RuntimeError):
    """VW's driver refused the stream (its own message, last lines of its standard error)."""


def vw_argv(args: list[str], data: str, model: Path, warm_start: Path | None = None,
            predictions: Path | None = None) -> list[str]:
    """VW's command line for training on DSJSON ``data`` into ``model``: the learner's
    ``args``, or with ``warm_start`` the saved model's own (``-i``; a saved model carries
    its arguments). One list for the file and the stream, so both train the same model.

    With ``predictions``, ``-p``: VW's prediction for each event, made before it learns it.
    Several passes' cache (``--cache``, which VW names ``<data>.cache``) is put beside the
    model: for the stream, ``data`` is ``/dev/stdin``, and ``/dev/stdin.cache`` was written
    into ``/dev`` (as root) and shared by every retrain running at once, or not writable."""
    argv = ["--quiet", *READER_ARGS, "-d", data, "-f", str(model)]
    if predictions is not None:
        argv += ["-p", str(predictions)]
    if warm_start:
        return argv + ["-i", str(warm_start)]
    cache = ["--cache_file", str(model.with_suffix(".cache"))]
    return argv + [x for a in args for x in (cache if a in ("--cache", "-c") else [a])]


def train_dsjson_stream(args: list[str], lines: Iterable[str], warm_start: Path | None = None,
                        chunk: int = 512, predictions: Path | None = None) -> tuple[VWModel, int]:
    """Train on DSJSON lines streamed into VW's own driver in a child process
    (``python -m vowpalwabbit ... -d /dev/stdin``); returns the model and the number of
    events. With ``predictions``, VW writes there its prediction for each event before it
    learns it (``vw_argv``).

    Why: the lines are made while VW learns, on the other core, and nothing is kept: not
    the window (``train_dsjson`` writes it to a file first, then VW reads it, one after
    the other), not the lines. The model is byte for byte the one ``train_dsjson_file``
    makes from the same lines (same driver, same arguments, ``vw_argv``). Lines are
    written ``chunk`` at a time (one pipe write each). ``TrainingFailed`` with VW's message
    if the driver stops; the lines already made are then lost, which a retrain reruns."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.vw"
        errors = Path(d) / "vw.stderr"
        with open(errors, "wb") as err:
            child = subprocess.Popen([sys.executable, "-m", "vowpalwabbit", *vw_argv(args, "/dev/stdin", path, warm_start, predictions)],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        assert child.stdin is not None
        n, pending = 0, []
        try:
            for line in lines:
                pending.append(line)
                if len(pending) >= chunk:
                    child.stdin.write(("\n".join(pending) + "\n").encode())
                    n, pending = n + len(pending), []
            if pending:
                child.stdin.write(("\n".join(pending) + "\n").encode())
                n += len(pending)
            child.stdin.close()
        except BrokenPipeError:
            pass  # VW stopped reading: its exit status and message say why
        finally:
            if not child.stdin.closed:  # the lines raised: VW ends on what it has, the error propagates
                try:
                    child.stdin.close()
                except BrokenPipeError:
                    pass
            code = child.wait()
        if code != 0:
            raise TrainingFailed(f"VW's driver exited with {code}: {errors.read_text(errors='replace')[-2000:].strip()}")
        model = VWModel.load(path)
    return model, n


def train_from_log(store: DecisionStore, policy: PolicyFile, since: float | None = None,
                   until: float | None = None, warm_start: Path | None = None) -> tuple[VWModel, int]:
    """Train a policy on the log's learnable decisions in ``[since, until)`` with the policy
    file's learner and reward settings: the lines ``dsjson_lines`` exports, streamed from the
    log (``bandit.log.reader.iter_learnable``) into VW's driver as they are made."""
    cfg = policy.reward
    lines = (dsjson_text(dsjson_fields(rec, outs, cfg), context_text(shared, actions))
             for rec, outs, shared, actions in iter_learnable_features(store.engine, cfg, since, until))
    return train_dsjson_stream(policy.vw_args(), lines, warm_start)
