"""Memory of a retrain's evaluation at contact-center scale: the policies as (n, K) matrices
against the same policies over each decision's eligible actions only (``bandit.learn.ope.Ragged``).

What the evaluate step of ``flows.retrain`` computes once the held-out decisions are
columns: every policy's IPS, SNIPS and DR (normal intervals, DR's per-action mean reward
model), its offer rate, the candidate's paired difference with ``no_offer``, the offer mix
by request type and the candidate's lift per request type. On a synthetic window of
``--decisions`` decisions (1 to 11 eligible actions, about 3.3 on average, as the
simulator's log has), with four policies: a candidate (random probabilities), ``no_offer``,
uniform, and a one-hot rule. Each way runs in a process of its own, so its peak resident
set is its own:

- ``matrices``: the policies, DR's reward model and the logged policy as (n, K) matrices,
  as ``Columns.matrices`` made them before (with ``--repo`` pointing at a checkout of an
  older commit, that commit's estimators too);
- ``ragged``: the same over the eligible actions only (this commit's ``Columns.matrices``).

Prints each way's seconds, peak RSS and the RSS before the evaluation (the inputs built).

    python experiments/bench/ope_memory.py [--decisions 10000000] [--ways matrices,ragged] [--repo DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def inputs(n: int, seed: int = 5):  # noqa: ANN201 - plain arrays
    """The window's columns: eligible-action counts, codes, chosen, propensities, rewards,
    request types, and the four policies' probabilities over the eligible actions, flat."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_actions = np.minimum(1 + rng.binomial(10, 0.23, n), 11).astype(np.int32)
    m = int(n_actions.sum())
    starts = np.concatenate([[0], np.cumsum(n_actions, dtype=np.int64)[:-1]])
    first = np.zeros(m, dtype=bool)
    first[starts] = True
    position = np.arange(m) - np.repeat(starts, n_actions)
    codes = np.where(first, 0, 1 + rng.integers(0, 24, m)).astype(np.int32)  # no_offer first, 24 offers
    chosen = (rng.random(n) * n_actions).astype(np.int64)
    propensity = 1.0 / n_actions
    reward = np.where(rng.random(n) < 0.1, 1.0, 0.0)
    raw = rng.random(m) + 0.01
    candidate = raw / np.repeat(np.add.reduceat(raw, starts), n_actions)
    no_offer = first.astype(float)
    uniform = np.repeat(1.0 / n_actions, n_actions)
    rule = (position == np.repeat(np.minimum(1, n_actions - 1), n_actions)).astype(float)
    groups = rng.integers(0, 4, n)
    return (n_actions, codes, chosen, propensity, reward, groups,
            {"candidate": candidate, "no_offer": no_offer, "uniform": uniform, "rules": rule})


def run(way: str, n: int) -> dict[str, float]:
    """One way's evaluation, in this process."""
    import numpy as np
    import pandas as pd

    from bandit.learn.evaluation import ActionIds, EvalSet, evaluate
    from bandit.learn.ope import LoggedRounds, mean_reward_model
    from bandit.learn.segments import LOGGED, logged_matrix, offer_mix, segment_lift

    n_actions, codes, chosen, propensity, reward, groups, flat = inputs(n)
    names = ["no_offer"] + [f"offer-{k}" for k in range(24)]
    offsets = np.concatenate([[0], np.cumsum(n_actions, dtype=np.int64)])
    offers = ActionIds(codes, offsets, names)
    rounds = LoggedRounds(n_actions.astype(int), chosen, propensity, reward)
    complaints = LoggedRounds(n_actions.astype(int), chosen, propensity, np.zeros(n))
    evals = EvalSet((), rounds, complaints, offers=offers)
    group_names = np.array(["billing", "cancel", "support", "upgrade"], dtype=object)[groups]
    segments = pd.DataFrame({"request_type": pd.Categorical(group_names)})
    rss_inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    if way == "matrices":
        width = int(n_actions.max())
        rows = np.repeat(np.arange(n), n_actions)
        cols = np.arange(len(rows)) - np.repeat(offsets[:-1], n_actions)
        policies = {}
        for name, values in flat.items():
            pi = np.zeros((n, width))
            pi[rows, cols] = values
            policies[name] = pi
        del rows, cols
        q_hat = mean_reward_model(rounds, offers)
        logged = logged_matrix(rounds)
    else:
        from bandit.learn.ope import Ragged
        from bandit.learn.segments import logged_policy

        policies = {name: Ragged(values, n_actions) for name, values in flat.items()}
        q_hat = None
        logged = logged_policy(rounds)
    comparison = evaluate(evals, {k: (lambda _e, pi=pi: pi) for k, pi in policies.items()},
                          paired=[("candidate", "no_offer")], q_hat=q_hat)
    offer_mix(group_names, offers, {LOGGED: logged, **policies})
    segment_lift(segments, rounds, policies["candidate"], dimensions=["request_type"])
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "inputs_mb": rss_inputs, "candidate_dr": comparison.policies["candidate"].reward["dr"].value,
            "mean_actions": float(n_actions.mean())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--decisions", type=int, default=10_000_000, help="decisions in the evaluated window")
    p.add_argument("--ways", default="matrices,ragged", help="matrices, ragged, or both (comma-separated)")
    p.add_argument("--repo", type=Path, default=REPO, help="checkout whose bandit package evaluates (default: this one)")
    p.add_argument("--run", nargs=2, metavar=("WAY", "REPO"), help=argparse.SUPPRESS)  # the child
    args = p.parse_args()
    if args.run:
        sys.path.insert(0, args.run[1])
        print(json.dumps(run(args.run[0], args.decisions)))
        return 0
    ways = args.ways.split(",")
    if args.decisions < 1 or not set(ways) <= {"matrices", "ragged"}:
        p.error("--decisions must be positive and --ways matrices and/or ragged")
    print(f"{'way':<10} {'seconds':>8} {'peak MB':>9} {'inputs MB':>10}  (decisions {args.decisions:,})")
    for way in ways:
        out = subprocess.run([sys.executable, __file__, "--decisions", str(args.decisions), "--run", way,
                              str(args.repo.resolve())], check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{way:<10} {r['seconds']:>8.1f} {r['peak_mb']:>9,.0f} {r['inputs_mb']:>10,.0f}  "
              f"(candidate DR {r['candidate_dr']:.6f}; {r['mean_actions']:.2f} eligible actions a decision)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
