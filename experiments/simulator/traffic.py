"""Simulated traffic through the decision path, in process: the simulator's interactions
decided by a ``Decider`` (the same guardrails, sampling and log as the service) and
answered with the simulator's responses as outcome calls.

What the benchmarks and tests that need a realistic log or realistic requests use
(``experiments/bench/*``, ``tests/simlog.py``, ``tests/flows/test_end_to_end.py``); the demo
sends the same interactions over HTTP (``experiments/demo``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bandit.config.catalog import NO_OFFER, load_catalog
from bandit.decide.decider import Decider
from bandit.domain.context import DecisionRequest
from experiments.simulator.world import Interaction, SimState, Simulator, load_params

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "config" / "offers.yaml"
OUTCOME_DELAY = timedelta(minutes=5)


def simulator(seed: int = 0, per_day: int | None = None, catalog: Path = CATALOG,
              params: Path | None = None, complaint_penalty: float | None = None) -> Simulator:
    """The shipped simulated center (``simulator.yaml``) over ``catalog``, with
    ``per_day`` interactions a day instead of the file's."""
    p = load_params(params)
    if per_day is not None:
        p = p.model_copy(update={"calendar": p.calendar.model_copy(update={"interactions_per_day": per_day})})
    return Simulator(p, load_catalog(catalog), seed, complaint_penalty=complaint_penalty)


def interactions(sim: Simulator, n: int, first_day: int = 0) -> Iterator[Interaction]:
    """The first ``n`` interactions from day ``first_day`` on, day after day."""
    day = first_day
    while n > 0:
        today = sim.interactions(day)[:n]
        yield from today
        n -= len(today)
        day += 1


def requests(sim: Simulator, n: int) -> Iterator[DecisionRequest]:
    """``n`` varied decision requests as a channel sends them, without event ids (each one
    a new decision): for load and soak tests."""
    for inter in interactions(sim, n):
        yield inter.request.model_copy(update={"event_id": None})


@dataclass
class Tally:
    """What simulated traffic did."""

    decisions: int = 0
    offers: int = 0
    accepted: int = 0
    complaints: int = 0
    revenue: float = 0.0


def decide_and_respond(
    decider: Decider, sim: Simulator, stream: Iterable[Interaction], state: SimState | None = None,
    at: Callable[[int, Interaction], datetime] | None = None, delay: timedelta = OUTCOME_DELAY,
    progress: Callable[[int], None] | None = None,
) -> Tally:
    """Decide each interaction through ``decider`` at its time (``at(i, inter)``, default
    the interaction's own), then record the simulated customer's outcomes ``delay`` later."""
    state = state if state is not None else sim.new_state()
    t = Tally()
    for i, inter in enumerate(stream):
        now = at(i, inter) if at is not None else inter.ts
        d = decider.decide(inter.request, now=now)
        t.decisions += 1
        r = sim.respond(inter, d.offer_id, state)
        for kind, value in sim.outcomes(r):
            decider.record_outcome(d.event_id, kind, value=value, now=now + delay)
        if d.offer_id != NO_OFFER:
            t.offers += 1
            t.accepted += r.accepted
            t.complaints += r.complaint
            t.revenue += r.revenue
        if progress is not None:
            progress(i + 1)
    return t
