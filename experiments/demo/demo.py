"""``make demo`` / ``offer-bandit demo``: the whole product, working, in minutes.

On the embedded defaults (SQLite log, SQLite MLflow, Prefect's ephemeral server), under
``<home>/demo``:

1. start the real service (``offer-bandit serve``, on a free port, with its own keys);
2. each simulated day, send the simulator's interactions (``experiments/simulator/world.py``)
   through ``/decide`` over HTTP, and the customers' responses through ``/outcome``;
   the same customers are also served, in this process, by ``no_offer``, uniform random,
   the rules heuristic and the oracle, each through the same decision path (guardrails,
   contact history, log) with its own log and its own simulated world;
3. each simulated night, run the ``retrain`` flow (the gate decides whether the candidate
   replaces the champion; the service picks a promotion up by itself) and the ``monitor``
   flow (offers drawing complaints are suspended), for real, under Prefect;
4. print a table per day, then the plots, the MLflow run ids and the commands that open
   the MLflow and Prefect UIs; ``--json`` writes the final table.

Time runs on the wall clock, as in production: the service stamps decisions itself, so a
whole demo is "now" for contact-history caps, and each night's retrain reads every
decision so far with every reward window taken as closed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bandit.config.catalog import NO_OFFER
from bandit.config.loader import Config, LiveConfig, load_config
from bandit.decide.decider import Decider, ModelSlot
from bandit.decide.features import Namespaces
from bandit.config.policyfile import ControlGroup
from bandit.config.settings import TELEMETRY_OFF, Settings
from bandit.log.store import DecisionStore
from bandit.decide.vw import ColdStart
from experiments.served import Server, free_port, serve_command
from experiments.simulator import Interaction, SimState, Simulator, load_params, outcomes

POLICIES = ("bandit", "no_offer", "random", "rules", "oracle")


@dataclass
class Tally:
    """What one policy did on one day (or in all)."""

    decisions: int = 0
    offers: int = 0
    accepted: int = 0
    complaints: int = 0
    revenue: float = 0.0

    def add(self, offer_id: str, accepted: bool, complaint: bool, revenue: float) -> None:
        self.decisions += 1
        self.offers += offer_id != NO_OFFER
        self.accepted += accepted
        self.complaints += complaint
        self.revenue += revenue

    def merge(self, other: "Tally") -> None:
        self.decisions += other.decisions
        self.offers += other.offers
        self.accepted += other.accepted
        self.complaints += other.complaints
        self.revenue += other.revenue

    def figures(self) -> dict[str, float]:
        n = max(self.decisions, 1)
        return {"decisions": self.decisions, "offer_rate": self.offers / n,
                "acceptance_rate": self.accepted / max(self.offers, 1), "revenue_per_interaction": self.revenue / n,
                "complaint_rate": self.complaints / n}


@dataclass
class Day:
    day: int
    tallies: dict[str, Tally] = field(default_factory=lambda: {p: Tally() for p in POLICIES})
    model: str = "cold-start"  # what served the bandit's decisions that day
    promoted: str | None = None  # what the night's retrain promoted
    verdict: str = ""
    suspended: list[str] = field(default_factory=list)
    runs: dict[str, str] = field(default_factory=dict)


class OracleScorer:
    """The simulator's best action for the interaction being decided (it knows the hidden
    probabilities): a baseline no real policy can beat, so regret can be reported."""

    version = "oracle"

    def __init__(self, sim: Simulator, state: SimState):
        self.sim, self.state = sim, state
        self.current: Interaction | None = None

    def pmf(self, shared: Namespaces, actions: list[Namespaces]) -> list[float]:
        ids = [next(k[3:] for k in a["offer"] if k.startswith("id=")) for a in actions]
        assert self.current is not None
        best = self.sim.oracle(self.current, ids, self.state)
        return [1.0 if i == best else 0.0 for i in ids]


class FixedScorer:
    """``no_offer`` always (the first eligible action is always ``no_offer``)."""

    version = "no_offer"

    def pmf(self, shared: Namespaces, actions: list[Namespaces]) -> list[float]:
        return [1.0] + [0.0] * (len(actions) - 1)


def baselines(settings: Settings, work: Path, sim: Simulator, states: dict[str, SimState]
              ) -> tuple[dict[str, Decider], OracleScorer]:
    """Each baseline through the decision path (guardrails, history, log), its own log."""
    cfg = load_config(settings)

    def with_control(share: float) -> Config:
        # floor 0: a baseline serves exactly its own choice (the floor is the bandit's exploration)
        return Config(cfg.catalog, cfg.policy.model_copy(update={
            "control": ControlGroup(share=share),
            "exploration": cfg.policy.exploration.model_copy(update={"floor": 0.0})}))

    oracle = OracleScorer(sim, states["oracle"])
    setups: dict[str, tuple[Config, Any]] = {  # no control group: each baseline serves everyone
        "no_offer": (with_control(0), FixedScorer()),
        "random": (with_control(0), ColdStart(1.0)),  # cold start at epsilon 1: uniform over the eligible
        "rules": (with_control(1), FixedScorer()),  # everyone in a rules control group
        "oracle": (with_control(0), oracle),
    }
    out = {}
    for name, (config, scorer) in setups.items():
        store = DecisionStore(f"sqlite:///{(work / f'{name}.db').resolve()}", sqlite_synchronous="NORMAL")
        out[name] = Decider(LiveConfig(settings, config), store, ModelSlot(scorer), settings.secret)
    return out, oracle


class Progress:
    """One line on stderr, rewritten: what the demo is doing and how far it got."""

    def __init__(self, total: int, width: int = 30):
        self.total, self.width, self.done, self.t0 = total, width, 0, time.time()

    def step(self, label: str, n: int = 1) -> None:
        self.done += n
        if sys.stderr.isatty() or self.done % 250 == 0 or self.done == self.total:
            frac = self.done / max(self.total, 1)
            bar = "#" * int(frac * self.width)
            print(f"\r[{bar:<{self.width}}] {frac:4.0%} {time.time() - self.t0:5.0f} s  {label:<40}",
                  end="", file=sys.stderr, flush=True)

    def note(self, label: str) -> None:
        self.step(label, 0)


# What the demo changes in the policy file, so that a few simulated days show learning:
# the shipped cold start explores little (10%), which is right for a real center and
# slow for a demo; and the gate asks for fewer held-out decisions. Printed at the start.
DEMO_OVERRIDES = {"exploration": {"cold_start_epsilon": 0.5}, "promotion": {"min_events": 500}}


def demo_policy(shipped: Path, out: Path) -> Path:
    """The shipped policy file with ``DEMO_OVERRIDES`` applied, validated, written to ``out``."""
    import yaml

    from bandit.config.policyfile import parse_policy

    raw = yaml.safe_load(shipped.read_text()) or {}
    for block, values in DEMO_OVERRIDES.items():
        raw[block] = {**raw.get(block, {}), **values}
    text = yaml.safe_dump(raw, sort_keys=False)
    parse_policy(text, str(out))
    out.write_text(text)
    return out


def run_demo(settings: Settings, days: int = 6, per_day: int | None = None, seed: int = 7, json_path: Path | None = None,
             params_path: Path | None = None, log: Callable[[str], None] = print) -> int:
    work = settings.home.resolve() / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    key, admin = secrets.token_hex(16), secrets.token_hex(16)  # the demo's own keys
    policy = demo_policy(settings.policy, work / "policy.yaml")
    # the demo's settings, loaded once and passed down: to the baselines, to each night's
    # flows (as their parameter) and, as its environment, to the service's process. A user's
    # own model file, log database or MLflow store is never the demo's.
    demo_settings = Settings(home=work, catalog=settings.catalog.resolve(), policy=policy, api_keys=key,
                             admin_key=admin, model_poll_seconds=1, salt=f"demo-{seed}",  # sampling replays from the seed
                             model_path=None, database_url=None, mlflow_tracking_uri=None)
    tools = {**TELEMETRY_OFF, "PREFECT_HOME": str(work / "prefect"),
             "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
             # the console shows the progress line and the tables; each flow run's own log lines
             # still reach Prefect's API (and its UI), only their echo on the terminal goes
             "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
             "MLFLOW_LOGGING_LEVEL": "ERROR"}  # and MLflow's notes on packaging each night's model
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFER_BANDIT_")}
    env.update({**demo_settings.environment(), **tools})
    os.environ.update(tools)  # Prefect and MLflow read their own configuration from the environment only
    (work / "prefect").mkdir()
    cfg = load_config(demo_settings)
    # the oracle optimises the reward the service learns: the policy file's complaint penalty
    sim = Simulator(load_params(params_path), cfg.catalog, seed, complaint_penalty=cfg.policy.reward.complaint_penalty)
    states = {p: SimState() for p in POLICIES}
    deciders, oracle = baselines(demo_settings, work, sim, states)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    per_day = per_day or len(sim.interactions(0))
    log(f"demo: {days} simulated days of {per_day} interactions (seed {seed}) under {work}; policy file "
        f"{settings.policy} with " + ", ".join(f"{b}.{k}: {v}" for b, kv in DEMO_OVERRIDES.items()
                                                for k, v in kv.items()))
    progress = Progress(days * per_day)
    progress.note("starting the service")
    server = Server(serve_command(port), env, url + "/readyz", work / "service.log")
    history: list[Day] = []
    try:
        from flows.monitor_flow import monitor_flow
        from flows.retrain_flow import retrain_flow

        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as http:
            for d in range(days):
                day = Day(d + 1, model=http.get("/readyz").json()["model"]["version"] or "cold-start")
                for inter in sim.interactions(d)[:per_day]:
                    serve_one(http, sim, inter, states["bandit"], day.tallies["bandit"])
                    for name, decider in deciders.items():
                        oracle.current = inter
                        decision = decider.decide(inter.request)
                        r = sim.respond(inter, decision.offer_id, states[name])
                        day.tallies[name].add(decision.offer_id, r.accepted, r.complaint, r.revenue)
                    progress.step(f"day {d + 1}: interactions")
                progress.note(f"night {d + 1}: retrain flow")
                r = retrain_flow(as_of=time.time() + 4 * 86400, window_days=30, settings=demo_settings)
                day.promoted = r["version"] if r["promoted"] else None
                day.verdict = "; ".join(r["reasons"])
                day.runs["retrain"] = r["run_id"]
                progress.note(f"night {d + 1}: monitor flow")
                m = monitor_flow(settings=demo_settings)
                day.suspended, day.runs["monitor"] = m["suspended"], m["run_id"]
                for offer_id in m["suspended"]:  # the kill switch holds for every policy, control included
                    for decider in deciders.values():
                        decider.store.set_suspended(offer_id, True, "suspended by the monitor flow")
                if day.promoted:
                    wait_for_model(http, f"{demo_settings.registered_model}/{day.promoted}")
                history.append(day)
                print(file=sys.stderr)
                log(table([day]) if d == 0 else table([day], header=False))
    finally:
        server.stop()
        for decider in deciders.values():
            decider.store.close()
    return finish(history, work, json_path, log)


def serve_one(http: httpx.Client, sim: Simulator, inter: Interaction, state: SimState, tally: Tally) -> None:
    """One interaction through the real service: decide, then the customer's outcomes."""
    body = inter.request.model_dump(mode="json", exclude_none=True)
    resp = http.post("/decide", json=body)
    resp.raise_for_status()
    offer_id = resp.json()["offer_id"]
    r = sim.respond(inter, offer_id, state)
    tally.add(offer_id, r.accepted, r.complaint, r.revenue)
    for type_, value in outcomes(r):
        out = {"event_id": inter.event_id, "type": type_, **({"value": value} if value is not None else {})}
        http.post("/outcome", json=out).raise_for_status()


def wait_for_model(http: httpx.Client, version: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if http.get("/readyz").json()["model"]["version"] == version:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the service did not pick up {version} within {timeout:.0f} s")


def table(days: Sequence[Day], header: bool = True) -> str:
    lines = []
    if header:
        lines.append(f"{'day':>3} {'policy':<9} {'decisions':>9} {'offer rate':>10} {'accept':>7} "
                     f"{'rev/interaction':>15} {'complaints':>10}  model / night")
    for day in days:
        for name in POLICIES:
            f = day.tallies[name].figures()
            note = ""
            if name == "bandit":
                note = f"{day.model}; " + (f"promoted {day.promoted}" if day.promoted else "not promoted")
                if day.suspended:
                    note += f"; suspended {', '.join(day.suspended)}"
            lines.append(f"{day.day if name == 'bandit' else '':>3} {name:<9} {f['decisions']:>9} "
                         f"{f['offer_rate']:>10.1%} {f['acceptance_rate']:>7.1%} {f['revenue_per_interaction']:>15.2f} "
                         f"{f['complaint_rate']:>10.2%}  {note}")
    return "\n".join(lines)


def finish(history: list[Day], work: Path, json_path: Path | None, log: Callable[[str], None]) -> int:
    # The final table: every day a trained model served the bandit's decisions (the cold
    # start days measure exploration, not the policy); the last day if none did.
    served = [d for d in history if d.model != "cold-start"] or history[-1:]
    totals = {p: Tally() for p in POLICIES}
    for d in served:
        for p in POLICIES:
            totals[p].merge(d.tallies[p])
    result = {"days": [{"day": d.day, "model": d.model, "promoted": d.promoted, "verdict": d.verdict,
                        "suspended": d.suspended, "runs": d.runs,
                        **{p: d.tallies[p].figures() for p in POLICIES}} for d in history],
              "policies": {p: totals[p].figures() for p in POLICIES},
              "policies_days": [d.day for d in served]}
    plot = work / "demo.png"
    plot_days(history, plot)
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2))
    b, rules, rnd, oracle = (result["policies"][p] for p in ("bandit", "rules", "random", "oracle"))
    log("")
    which = "served by a trained model" if served[0].model != "cold-start" else \
        "no trained model served yet: cold start; run more days"
    log(f"days {', '.join(map(str, result['policies_days']))} ({which}): "
        f"bandit {b['revenue_per_interaction']:.2f} revenue per interaction vs rules "
        f"{rules['revenue_per_interaction']:.2f} and random {rnd['revenue_per_interaction']:.2f}; complaint rate "
        f"{b['complaint_rate']:.2%} vs rules {rules['complaint_rate']:.2%} and random {rnd['complaint_rate']:.2%}; "
        f"oracle {oracle['revenue_per_interaction']:.2f} and {oracle['complaint_rate']:.2%}")
    log(f"plots: {plot}")
    log("MLflow runs: " + ", ".join(f"night {d.day} retrain {d.runs['retrain']}" for d in history))
    log(f"MLflow UI:  {Path(sys.executable).parent / 'mlflow'} ui --backend-store-uri sqlite:///{work / 'mlflow.db'}")
    log(f"Prefect UI: PREFECT_HOME={work / 'prefect'} {Path(sys.executable).parent / 'prefect'} server start")
    if json_path is not None:
        log(f"table as JSON: {json_path}")
    return 0


def plot_days(history: list[Day], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    x = [d.day for d in history]
    for ax, metric, title in ((fig.add_subplot(1, 2, 1), "revenue_per_interaction", "revenue per interaction"),
                              (fig.add_subplot(1, 2, 2), "complaint_rate", "complaint rate")):
        for p in POLICIES:
            ax.plot(x, [d.tallies[p].figures()[metric] for d in history], marker="o", label=p)
        ax.set_title(title)
        ax.set_xlabel("simulated day")
        ax.set_xticks(x)
    fig.axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
