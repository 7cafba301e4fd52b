"""Batch training study: how much a nightly retrain learns from one logged window, by how it
trains (one pass, several passes, ...), measured against the simulator's hidden truth.

The nightly retrain sees a whole window of logged decisions at once; an online learner sees
each once. This study asks what a batch setting buys, the way the nightly retrain trains
(``bandit.learn.training``: the window exported as DSJSON and read by VW's own driver):

1. a log: ``--days`` simulated days (``experiments/simulator``) decided in process through
   the decision path (``Decider``, SQLite) by an exploring logging policy (cold start with
   ``--epsilon``: ``no_offer`` gets ``1 - e + e/n``, each eligible offer ``e/n``), with the
   simulated customers' outcomes;
2. for each setting, a model trained on the whole log exactly as the retrain trains
   (``train_from_log``), with the policy file's learner plus the setting's extra VW
   arguments (``--passes N`` with a cache, for example); the policy file's ``retrain`` block is
   not applied, so ``one pass`` is the learner alone and ``coin`` what the retrain ships;
3. its true value on the next ``--eval-days`` days' interactions: for each interaction the
   decision path's probabilities (``score_request``: guardrails, features, VW) and the
   simulator's expected reward of each eligible action (``Simulator.expected``), so that
   ``value = sum over interactions of sum_a pi(a|x) * E[reward | x, a]``, free of the
   responses' noise; the same for the greedy choice (the policy without exploration), the
   rules heuristic and the oracle.

Prints, per setting: expected reward, revenue and complaint rate per interaction of the
exploring and the greedy policy, and the share of the oracle's reward.

    .venv/bin/python experiments/studies/batch_training.py [--days 3] [--seed 7] [--json out.json]
    .venv/bin/python experiments/studies/batch_training.py --setting "passes3=--passes 3"
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make ``bandit`` and ``experiments`` importable
    sys.path.insert(0, str(REPO))

from bandit.config.catalog import NO_OFFER  # noqa: E402
from bandit.config.loader import LiveConfig  # noqa: E402
from bandit.config.policyfile import PolicyFile  # noqa: E402
from bandit.config.settings import get_settings  # noqa: E402
from bandit.decide.control import rules_choice  # noqa: E402
from bandit.decide.decider import Decider, ModelSlot, score_request  # noqa: E402
from bandit.decide.vw import ColdStart, Scorer, VWModel  # noqa: E402
from bandit.domain.context import EMPTY_HISTORY  # noqa: E402
from bandit.learn.training import train_dsjson  # noqa: E402
from bandit.log.dsjson import dsjson_lines  # noqa: E402
from bandit.log.store import DecisionStore  # noqa: E402
from experiments.simulator.traffic import decide_and_respond, interactions, simulator  # noqa: E402
from experiments.simulator.world import Interaction, Simulator  # noqa: E402

DEFAULT_SETTINGS = {
    "one pass": "",
    "passes 3": "--passes 3",
    "coin": "--coin",  # the retrain's default (policy file ``retrain.optimizer: coin``)
    "coin passes 3": "--coin --passes 3",
}


@dataclass
class Value:
    """Expected totals of a policy over the evaluation interactions (the hidden truth)."""

    reward: float = 0.0
    revenue: float = 0.0
    complaints: float = 0.0
    offers: float = 0.0

    def add(self, pmf: Sequence[float], actions: Sequence[str], sim: Simulator, inter: Interaction) -> None:
        for p, a in zip(pmf, actions, strict=True):
            if p <= 0 or a == NO_OFFER:
                continue
            e = sim.expected(inter, a)
            self.reward += p * e.reward
            self.revenue += p * e.p_accept * e.revenue
            self.complaints += p * e.p_complaint
            self.offers += p

    def row(self, n: int, oracle: float) -> dict[str, float]:
        return {"reward": self.reward / n, "revenue": self.revenue / n, "complaint_rate": self.complaints / n,
                "offer_rate": self.offers / n, "of_oracle": self.reward / oracle if oracle else 0.0}


def build_log(work: Path, sim: Simulator, days: int, epsilon: float, policy: Path) -> DecisionStore:
    """``days`` simulated days decided by cold start with ``epsilon``, outcomes recorded."""
    settings = get_settings(home=work, catalog=REPO / "config/offers.yaml", policy=policy, salt="study")
    settings.ensure_home()
    store = DecisionStore(f"sqlite:///{work / 'decisions.db'}", sqlite_synchronous="OFF")
    decider = Decider(LiveConfig(settings), store, ModelSlot(ColdStart(epsilon)), settings.secret)
    per_day = len(sim.interactions(0))
    decide_and_respond(decider, sim, interactions(sim, days * per_day))
    return store


def options(args: list[str]) -> list[list[str]]:
    """VW arguments as options, each with its values (``["-l", "0.1"]``, ``["--coin"]``)."""
    out: list[list[str]] = []
    for a in args:
        if a.startswith("-") and not _number(a):
            out.append([a])
        else:
            out[-1].append(a)
    return out


def _number(a: str) -> bool:
    try:
        float(a)
    except ValueError:
        return False
    return True


def with_overrides(base: list[str], extra: str) -> list[str]:
    """``base`` VW arguments with ``extra``'s options replacing the same options (VW keeps the
    first of a repeated option), except ``--interactions``, which adds up."""
    new = options(extra.split())
    replaced = {o[0] for o in new if o[0] != "--interactions"}
    kept = [o for o in options(base) if o[0] not in replaced]
    return [a for o in kept + new for a in o]


def train(store: DecisionStore, policy: PolicyFile, extra: str) -> VWModel:
    """The retrain's training (the log as DSJSON through VW's driver) with ``extra`` VW arguments;
    passes need a cache file, which VW keeps next to the data."""
    args = with_overrides(policy.vw_args(), extra)
    if "--passes" in args:
        args += ["--cache", "--holdout_off"]
    model, _ = train_dsjson(args, dsjson_lines(store, policy.reward))
    return model


def evaluate(scorer: Scorer | None, sim: Simulator, evals: list[Interaction], policy: PolicyFile
             ) -> tuple[Value, Value]:
    """(exploring, greedy) expected value of ``scorer`` on ``evals``; ``None``: the rules."""
    explore, greedy = Value(), Value()
    for inter in evals:
        if scorer is None:
            elig, _, _, pmf, _ = score_request(inter.request, sim.catalog, policy, ColdStart(0.0), EMPTY_HISTORY,
                                               inter.ts)
            i = inter.request.interaction
            k = rules_choice(elig.eligible, sim.catalog, i.resolved.value, i.sentiment,
                             policy.control.rules_min_sentiment)
            pmf = [1.0 if j == k else 0.0 for j in range(len(elig.eligible))]
        else:
            elig, _, _, pmf, _ = score_request(inter.request, sim.catalog, policy, scorer, EMPTY_HISTORY, inter.ts)
        explore.add(pmf, elig.eligible, sim, inter)
        best = max(range(len(pmf)), key=lambda j: pmf[j])
        greedy.add([1.0 if j == best else 0.0 for j in range(len(pmf))], elig.eligible, sim, inter)
    return explore, greedy


def oracle_value(sim: Simulator, evals: list[Interaction], policy: PolicyFile) -> Value:
    v = Value()
    for inter in evals:
        elig, _, _, _, _ = score_request(inter.request, sim.catalog, policy, ColdStart(0.0), EMPTY_HISTORY, inter.ts)
        best = sim.oracle(inter, elig.eligible)
        v.add([1.0], [best], sim, inter)
    return v


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="batch_training.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--days", type=int, default=3, help="logged days to train on (default 3)")
    ap.add_argument("--eval-days", type=int, default=1, help="following days to evaluate on (default 1)")
    ap.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    ap.add_argument("--epsilon", type=float, default=0.5, help="the logging policy's cold-start epsilon (default 0.5)")
    ap.add_argument("--policy", type=Path, default=REPO / "config/policy.yaml",
                    help="policy file whose learner is trained (default config/policy.yaml)")
    ap.add_argument("--setting", action="append", default=None, metavar="NAME=VW ARGS",
                    help="a setting to try: a name, '=', extra VW arguments (repeatable; default: "
                         + ", ".join(f"'{k}={v}'" for k, v in DEFAULT_SETTINGS.items()) + ")")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = dict(DEFAULT_SETTINGS)
    if args.setting:
        settings = {}
        for s in args.setting:
            name, sep, extra = s.partition("=")
            if not sep or not name.strip():
                sys.exit(f"--setting: '{s}' is not NAME=VW ARGS")
            settings[name.strip()] = extra.strip()
    from bandit.config.policyfile import load_policy

    policy = load_policy(args.policy)
    sim = simulator(seed=args.seed, complaint_penalty=policy.reward.complaint_penalty)
    work = Path(tempfile.mkdtemp(prefix="batch-training-"))
    try:
        t0 = time.perf_counter()
        store = build_log(work, sim, args.days, args.epsilon, args.policy)
        print(f"log: {args.days} days, {store.count_decisions():,} decisions by cold start "
              f"(epsilon {args.epsilon}) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        per_day = len(sim.interactions(0))
        evals = [i for i in interactions(sim, args.eval_days * per_day, first_day=args.days)]
        n = len(evals)
        oracle = oracle_value(sim, evals, policy)
        rules, _ = evaluate(None, sim, evals, policy)
        rows: list[dict] = [{"policy": "oracle", **oracle.row(n, oracle.reward)},
                            {"policy": "rules", **rules.row(n, oracle.reward)}]
        for name, extra in settings.items():
            t0 = time.perf_counter()
            model = train(store, policy, extra)
            secs = time.perf_counter() - t0
            explore, greedy = evaluate(model, sim, evals, policy)
            rows.append({"policy": f"{name} (exploring)", "vw": extra, "train_s": secs,
                         **explore.row(n, oracle.reward)})
            rows.append({"policy": f"{name} (greedy)", "vw": extra, **greedy.row(n, oracle.reward)})
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nexpected per interaction on days {args.days + 1}..{args.days + args.eval_days} ({n} interactions), "
          f"seed {args.seed}; learner: {' '.join(policy.vw_args())}")
    print(f"{'policy':<28} {'reward':>8} {'revenue':>8} {'complaints':>10} {'offers':>7} {'of oracle':>9}")
    for r in rows:
        print(f"{r['policy']:<28} {r['reward']:>8.3f} {r['revenue']:>8.3f} {r['complaint_rate']:>10.3%} "
              f"{r['offer_rate']:>7.1%} {r['of_oracle']:>9.1%}")
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, "days": args.days, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
