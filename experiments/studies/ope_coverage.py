"""Do the off-policy intervals cover the truth when rewards are rare?

Simulated logs with a known true policy value and a reward rate near 0.5% (issue 14): 10
context types (uniform), 4 actions, Bernoulli rewards with means ``μ(x, a)`` drawn from
[0.1%, 1%]; a logging policy exploring with fixed per-context probabilities (each at
least 5%); a target policy that is mostly greedy on a noisy view of ``μ`` (0.85 on one
action, 0.05 on the others). The features are DSJSON objects (``{"c": {"type": "x3"}}``
shared, ``{"a": {"id": "a1"}}`` per action), so DR's reward model is the one
``offer-bandit evaluate`` uses: VW's regression on context x action, cross-fitted
(``bandit.learn.reward_model``).

For every seed, every estimator (IPS, SNIPS, DR) and every interval construction
(``bandit.learn.intervals``: normal, empirical likelihood, empirical Bernstein) it
checks whether the 95% interval holds the true value, and reports per cell the share of
seeds covered and the mean width.

    nice .venv/bin/python experiments/studies/ope_coverage.py                    # 200 seeds, n = 20,000
    nice .venv/bin/python experiments/studies/ope_coverage.py --seeds 200 --n 5000 --json out.json
    nice .venv/bin/python experiments/studies/ope_coverage.py --reward-model mean   # DR on action means

(``tests/learn/test_ope_coverage.py`` runs the same with fewer seeds.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bandit.learn.intervals import INTERVALS
from bandit.learn.ope import LoggedRounds, dr, ips, snips
from bandit.learn.reward_model import ActionMean, Decision, VWRegression, cross_fit

CONTEXTS, ACTIONS = 10, 4
ESTIMATORS = ("ips", "snips", "dr")


@dataclass(frozen=True)
class World:
    """The truth of one seed: reward means, logging and target probabilities."""

    mu: np.ndarray  # (CONTEXTS, ACTIONS)
    logging: np.ndarray  # (CONTEXTS, ACTIONS), rows sum to 1, each >= 0.05
    target: np.ndarray  # (CONTEXTS, ACTIONS)

    @property
    def truth(self) -> float:
        """``V(π) = E_x Σ_a π(a | x) μ(x, a)``, contexts uniform."""
        return float(np.mean((self.target * self.mu).sum(axis=1)))


def world(rng: np.random.Generator, low: float = 0.001, high: float = 0.01) -> World:
    mu = rng.uniform(low, high, (CONTEXTS, ACTIONS))
    raw = rng.dirichlet(np.ones(ACTIONS), CONTEXTS)
    logging = 0.05 + (1 - 0.05 * ACTIONS) * raw
    target = np.full((CONTEXTS, ACTIONS), 0.05)
    noisy = mu + rng.normal(0, (high - low) / 4, mu.shape)
    target[np.arange(CONTEXTS), np.argmax(noisy, axis=1)] = 1 - 0.05 * (ACTIONS - 1)
    return World(mu, logging, target)


def simulate(rng: np.random.Generator, w: World, n: int) -> tuple[LoggedRounds, np.ndarray, list[Decision]]:
    """A log of ``n`` rounds from ``w``: the rounds, the target's (n, ACTIONS) probabilities,
    and each round's features."""
    x = rng.integers(0, CONTEXTS, n)
    p0 = w.logging[x]
    a = np.minimum((rng.uniform(0, 1, (n, 1)) > np.cumsum(p0, axis=1)).sum(axis=1), ACTIONS - 1)
    r = (rng.uniform(0, 1, n) < w.mu[x, a]).astype(float)
    log = LoggedRounds(np.full(n, ACTIONS), a, p0[np.arange(n), a], r, logging=p0)
    actions = [{"a": {"id": f"a{k}"}} for k in range(ACTIONS)]
    decisions: list[Decision] = [({"c": {"type": f"x{int(xi)}"}}, actions) for xi in x]
    return log, w.target[x], decisions


def one_seed(seed: int, n: int, reward_model: str = "vw", folds: int = 3) -> dict[str, dict[str, tuple[bool, float]]]:
    """For each estimator and interval: (covered the truth, width)."""
    rng = np.random.default_rng(seed)
    w = world(rng)
    log, pi, decisions = simulate(rng, w, n)
    q = cross_fit(decisions, log, folds, make=VWRegression if reward_model == "vw" else ActionMean)
    out: dict[str, dict[str, tuple[bool, float]]] = {}
    for interval in INTERVALS:
        for e in (ips(log, pi, interval=interval), snips(log, pi, interval=interval),
                  dr(log, pi, q, interval=interval)):
            out.setdefault(e.estimator, {})[interval] = (bool(e.low <= w.truth <= e.high), e.high - e.low)
    return out


def study(seeds: range, n: int, reward_model: str = "vw", folds: int = 3, show: bool = False
          ) -> dict[str, dict[str, dict[str, float]]]:
    """Coverage (share of seeds) and mean width per estimator and interval."""
    covered = {e: {i: 0 for i in INTERVALS} for e in ESTIMATORS}
    widths = {e: {i: 0.0 for i in INTERVALS} for e in ESTIMATORS}
    for k, seed in enumerate(seeds):
        for e, by_interval in one_seed(seed, n, reward_model, folds).items():
            for i, (hit, width) in by_interval.items():
                covered[e][i] += hit
                widths[e][i] += width
        if show:
            print(f"\rseed {k + 1}/{len(seeds)}", end="", file=sys.stderr, flush=True)
    if show:
        print(file=sys.stderr)
    m = len(seeds)
    return {e: {i: {"coverage": covered[e][i] / m, "covered": covered[e][i], "seeds": m,
                    "mean_width": widths[e][i] / m} for i in INTERVALS} for e in ESTIMATORS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=200, help="simulated logs (default 200)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=20000, help="rounds per log (default 20,000)")
    ap.add_argument("--folds", type=int, default=3, help="cross-fitting folds of DR's reward model (default 3)")
    ap.add_argument("--reward-model", choices=("vw", "mean"), default="vw",
                    help="DR's reward model: VW regression on context x action (default) or action means")
    ap.add_argument("--json", type=Path, help="also write the table here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    result = study(seeds, args.n, args.reward_model, args.folds, show=True)
    rate = float(np.mean([world(np.random.default_rng(s)).mu.mean() for s in seeds]))
    print(f"{args.seeds} simulated logs of {args.n} rounds, mean reward rate {rate:.4f}, DR reward model "
          f"{args.reward_model} ({args.folds} folds); {time.perf_counter() - t0:.0f} s")
    print(f"{'estimator':<10}{'interval':<11}{'covered':>12}{'coverage':>10}{'mean width':>12}")
    for e, by_interval in result.items():
        for i, c in by_interval.items():
            print(f"{e:<10}{i:<11}{c['covered']:>8}/{c['seeds']:<3}{c['coverage']:>10.3f}{c['mean_width']:>12.5f}")
    if args.json:
        args.json.write_text(json.dumps({"seeds": args.seeds, "n": args.n, "reward_model": args.reward_model,
                                         "folds": args.folds, "result": result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
