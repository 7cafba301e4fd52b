"""Learner comparison: the VW policy under each explorer against a peer library's
contextual bandits, on the same simulated stream.

What is compared
----------------
* ``vw-<explorer>``: the service's own learner, ``bandit.decide.vw.VWModel`` with
  ``--cb_explore_adf`` and the policy file's defaults (``bandit.config.policyfile.PolicyFile``),
  once per explorer the policy file offers (epsilon, softmax, bag, cover, squarecb,
  regcb, regcbopt; ``--explorers`` picks some), all with ``cb_type mtr`` (the one every
  explorer accepts, ``bandit.config.policyfile.vw_accepts``). The row whose VW arguments
  are the shipped policy file's (``config/policy.yaml``) is the shipped learner: marked
  ``(shipped)`` in the table and ``"shipped": true`` in the JSON. The pmf comes from VW, the action is drawn by
  ``bandit.decide.sampling.sample_index`` from a seeded uniform, and the model learns from the
  chosen action's cost ``-reward / scale`` and its probability, as in ``bandit.log.dsjson``.
* ``mabwiser-linucb`` / ``mabwiser-lints``: MABWiser's ``LearningPolicy.LinUCB`` and
  ``LearningPolicy.LinTS`` (the ``peers`` extra: ``pip install '.[peers]'``; ``make``
  installs every extra). Choices made for them, documented here because they matter:

  - arms are every catalog offer plus ``no_offer``; at decision time
    ``predict_expectations`` scores all arms and the argmax is taken over the
    *eligible* arms only, so the guardrails bind them exactly as they bind VW;
  - the context is a fixed-length numeric vector (``ContextEncoder``) built from the
    same shared features VW sees (``bandit.decide.features.shared_features``): one-hot channel,
    request type, intent, resolution, authentication, tone bucket, tier, tenure bucket,
    region, products held and complaint status, plus sentiment, the number of products,
    the contact-history counts and a bias term. The channel-sent attributes
    (``xattrs``: a refill's prices) are left out: they exist for one intent only and
    their dollar scale would dominate an unscaled ridge regression. Each arm has its own
    ridge model over this vector (disjoint LinUCB), the linear counterpart of VW's
    ``offer`` x context interactions;
  - the reward learned is the same as VW's, ``reward / scale`` (in hundreds), so the
    ``alpha`` exploration widths are on the same scale as the costs VW sees;
  - ``alpha``: LinUCB runs once per alpha of ``--linucb-alphas`` (default 0.1, 0.25, 0.5,
    1, 2; the library's default is 1), and the one with the lowest regret is the peer to
    beat (marked ``(best alpha)``; ``verdict`` compares the shipped learner with it);
    LinTS uses 0.25, picked on a different seed (1) than the reported one,
    because with the library's 1.0 it samples so widely that it explores far too long
    here (about 40% more regret on seed 1).
    The VW explorers run at the policy file's settings (``--vw-learning-rate`` and
    ``--policy`` try others);
  - MABWiser must be fitted before it can predict, so each learner is fitted on an
    empty batch first (every arm at its ridge prior, where LinUCB is optimistic about
    all arms alike); after that ``partial_fit`` runs every ``--batch`` interactions
    (default 50) to keep the run fast, so the peers learn with a short delay that VW,
    learning after every interaction, does not have.
* Fixed references: ``oracle`` (the best eligible action on the simulator's hidden
  model, ``Simulator.oracle``), ``uniform`` (uniform over the eligible actions),
  ``rules`` (``bandit.decide.control.rules_choice``: the highest-margin eligible offer when the
  issue is resolved and the tone is at least the control group's ``rules_min_sentiment``)
  and ``no_offer`` (never offer: the zero line).

How
---
The stream is the simulator's (``experiments/simulator/world.py``): ``--days`` days of
``--per-day`` interactions, the same interactions for every learner. Each learner runs
the stream alone with its own ``SimState`` and its own contact log, so complaints and
declines it provokes change only its own future, through the simulator (a customer who
complained complains more readily) and through the guardrails, which see the channel's
history merged with what this learner's log knows (offers shown, declined, accepted,
the last complaint), as the service's decision path does (``bandit.decide.decider``). Outcomes
are known at once (no reward window). For each interaction: the guardrails give the
eligible actions (``bandit.decide.guardrails.eligible_offers`` with the policy file's guardrails:
``--policy``, default ``PolicyFile()``); with
``no_offer`` alone eligible nothing is decided or learned (as in the service); otherwise
the learner picks one, the simulator responds (common random numbers: two learners
making the same offer to the same interaction see the same dice), and the learner learns.

Metrics, per learner over the whole stream:

* ``reward``: realised revenue - complaint_penalty x complaints (the penalty is the policy
  file's, 300), the reward the service learns from; ``revenue`` alone;
* ``complaint rate`` = complaints / interactions, ``offer rate`` = offers / interactions,
  ``accept rate`` = acceptances / offers;
* ``expected reward``: the sum of the simulator's expected reward of each chosen action;
* ``regret``: sum over interactions of (the oracle's expected reward - the chosen
  action's expected reward), both on the hidden model (``Simulator.expected``) in the
  learner's own state: expected rather than realised regret, so it is free of the dice's
  noise (one complaint moves realised reward by 100). The oracle's is 0 by definition.

Outputs (``--out``, default ``experiments/results/``, git-ignored): the Markdown table
(``compare_learners.md``, also printed), a plot of cumulative regret and cumulative
realised reward over interactions for every learner (``compare_learners.png``) and, with
``--json PATH``, the rows as JSON.

Reproduce
---------
::

    .venv/bin/python experiments/studies/compare_learners.py            # 7 days x 2000, seed 7
    .venv/bin/python experiments/studies/compare_learners.py --seeds 7,11,42   # a table a seed + verdicts
    .venv/bin/python experiments/studies/compare_learners.py --days 1 --per-day 500 --seed 3
    .venv/bin/python experiments/studies/compare_learners.py --policy experiments/studies/learner_steps/0_former_default.yaml \
        --explorers epsilon --no-peers --out /tmp/former

Everything is seeded (the stream, each learner's sampling uniforms, VW's
``--random_seed``, MABWiser's ``seed``): the same arguments give the same table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: make ``bandit`` and ``experiments`` importable
    sys.path.insert(0, str(REPO))

from bandit.config.catalog import NO_OFFER, Catalog, load_catalog  # noqa: E402
from bandit.domain.context import Channel, History, OfferEvent, RequestType, Resolved  # noqa: E402
from bandit.decide.control import rules_choice  # noqa: E402
from bandit.decide.features import Namespaces, offer_features, shared_features, token  # noqa: E402
from bandit.decide.guardrails import eligible_offers  # noqa: E402
from bandit.config.policyfile import Exploration, PolicyFile, load_policy, vw_accepts  # noqa: E402
from bandit.decide.sampling import sample_index, with_floor  # noqa: E402
from bandit.decide.vw import VWModel  # noqa: E402
from experiments.simulator import Interaction, SimParams, SimState, Simulator, load_params  # noqa: E402
from experiments.simulator.world import _seed as sim_seed  # noqa: E402

DEFAULT_OUT = REPO / "experiments" / "results"
CATALOG = REPO / "config" / "offers.yaml"
SHIPPED_POLICY = REPO / "config" / "policy.yaml"
# LinUCB's exploration width, tried over a small grid so the peer is at its best (the
# library's default is 1.0); the best of them is the one the shipped learner must match.
LINUCB_ALPHAS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0)
CB_TYPE = "mtr"  # the cb_type every explorer accepts (bandit.config.policyfile.CB_TYPES_FOR)
EXPLORERS: tuple[str, ...] = typing.get_args(Exploration.model_fields["algorithm"].annotation)
PEERS_HINT = ("MABWiser is not installed, so its LinUCB and LinTS rows are skipped. It is the 'peers' "
              "extra: pip install '.[peers]' (make installs every extra).")
# Labels bandit.decide.features writes for the bucketed features (its module docstring).
TENURE_BUCKETS = ("0-6m", "6-24m", "24-60m", "60m+")
TONES = ("neg", "neutral", "pos")
COMPLAINT_STATUS = ("never", "<90d", "older")
DROPPED_NAMESPACES = frozenset({"xattrs"})  # see the module docstring (MABWiser context)


def _seed(*parts: object) -> int:
    """A stable 32-bit seed (MABWiser takes no more): the top half of the simulator's."""
    return sim_seed(*parts) >> 32


# -- one decision --------------------------------------------------------------------------


@dataclass
class Step:
    """What a learner sees of one interaction: the context and the eligible actions
    (``no_offer`` first). Features are built on demand: the references need none."""

    inter: Interaction
    eligible: tuple[str, ...]
    history: History
    catalog: Catalog
    _shared: Namespaces | None = None
    _actions: list[Namespaces] | None = None
    vector: np.ndarray | None = None  # the MABWiser context, kept from choose for learn

    @property
    def shared(self) -> Namespaces:
        if self._shared is None:
            self._shared = shared_features(self.inter.request, self.history, self.inter.ts)
        return self._shared

    @property
    def actions(self) -> list[Namespaces]:
        if self._actions is None:
            self._actions = [offer_features(self.catalog.get(a)) for a in self.eligible]
        return self._actions


class Policy(Protocol):
    """A learner or a fixed reference. ``choose`` returns (index into ``step.eligible``,
    its probability); ``learn`` gets the realised reward (revenue - penalty x complaint)."""

    name: str
    kind: str

    def choose(self, step: Step) -> tuple[int, float]: ...

    def learn(self, step: Step, index: int, prob: float, reward: float) -> None: ...


# -- the VW policy -------------------------------------------------------------------------


def shipped_vw_args() -> list[str]:
    """The VW arguments of the shipped policy file (``config/policy.yaml``): the learner the
    product runs unless a center changes it."""
    return load_policy(SHIPPED_POLICY).vw_args()


class VWPolicy:
    """The service's learner (``VWModel``) under one explorer, learning after every decision
    (``batch`` 1) or, as the service does, in batches: with ``batch`` 2,000 (a simulated day)
    the model is frozen for a day and learns the day's decisions at its end.

    It serves what the service serves: the model's pmf with the policy file's
    ``exploration.floor`` (``bandit.decide.sampling.with_floor``), and learns the served
    probability. ``shipped``: its VW arguments are the shipped policy file's (``shipped_vw_args``)."""

    kind = "VW cb_explore_adf"

    def __init__(self, explorer: str, policy: PolicyFile, seed: int, shipped_args: Sequence[str] = (),
                 batch: int = 1):
        if not vw_accepts(explorer, CB_TYPE):
            raise ValueError(f"VW does not train {explorer} with cb_type {CB_TYPE}")
        pf = policy.model_copy(update={"exploration": policy.exploration.model_copy(update={"algorithm": explorer}),
                                       "learner": policy.learner.model_copy(update={"cb_type": CB_TYPE})})
        self.name = f"vw-{explorer}"
        self.shipped = list(shipped_args) == pf.vw_args()
        self.args = [*pf.vw_args(), "--random_seed", str(seed % 2**31)]
        self.model = VWModel.fresh(self.args)
        self.scale = policy.reward.scale
        self.rng = random.Random(_seed(seed, self.name))
        self.floor = policy.exploration.floor
        self.batch = batch
        self.pending: list[tuple[Step, int, float, float]] = []

    def choose(self, step: Step) -> tuple[int, float]:
        pmf = with_floor(self.model.pmf(step.shared, step.actions), self.floor)
        k = sample_index(pmf, self.rng.random())
        return k, pmf[k]

    def learn(self, step: Step, index: int, prob: float, reward: float) -> None:
        self.pending.append((step, index, prob, -reward / self.scale + 0.0))
        if len(self.pending) >= self.batch:
            for st, i, p, c in self.pending:
                self.model.learn(st.shared, st.actions, i, c, p)
            self.pending.clear()


# -- the peer library ----------------------------------------------------------------------


def mabwiser() -> ModuleType | None:
    """``mabwiser.mab`` if the ``peers`` extra is installed, else ``None``."""
    try:
        return importlib.import_module("mabwiser.mab")
    except ImportError:
        return None


class ContextEncoder:
    """The shared features as a fixed-length vector for MABWiser's linear models.

    The vocabulary is fixed up front from the feature schema (``bandit.decide.features``) and the
    simulated center's names (tiers, regions, products, intents), because a ridge model's
    dimension cannot grow. A feature outside it is dropped and remembered in ``unknown``
    (the test checks it stays empty, so a new feature cannot silently go missing)."""

    def __init__(self, params: SimParams):
        names = ["bias"]
        names += [f"context:channel={c.value}" for c in Channel]
        names += [f"context:rt={t.value}" for t in RequestType]
        names += [f"context:resolved={r.value}" for r in Resolved]
        names += ["context:auth=yes", "context:auth=no"]
        names += [f"context:intent={token(i)}" for rt in params.request_types.values() for i in rt.intents]
        names += ["emotion:sentiment", *(f"emotion:tone={t}" for t in TONES)]
        names += [f"user:tier={token(t)}" for t in params.population.tiers]
        names += [f"user:tenure={b}" for b in TENURE_BUCKETS]
        names += ["user:n_products", *(f"user:region={token(r)}" for r in params.population.regions)]
        names += [f"user:has={token(p)}" for p in params.population.products]
        names += ["history:shown_30d", "history:declined_90d", "history:accepted_365d"]
        names += [f"history:complaint={s}" for s in COMPLAINT_STATUS]
        self.names = list(dict.fromkeys(names))
        self.index = {n: k for k, n in enumerate(self.names)}
        self.unknown: set[str] = set()

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, shared: Namespaces) -> np.ndarray:
        x = np.zeros(len(self.names))
        x[0] = 1.0
        for ns, feats in shared.items():
            if ns in DROPPED_NAMESPACES:
                continue
            for f, v in feats.items():
                k = self.index.get(f"{ns}:{f}")
                if k is None:
                    self.unknown.add(f"{ns}:{f}")
                else:
                    x[k] = v
        return x


class MABWiserPolicy:
    """A MABWiser linear bandit (LinUCB or LinTS): argmax of ``predict_expectations`` over
    the eligible arms, ``partial_fit`` every ``batch`` decisions (module docstring)."""

    kind = "MABWiser"

    def __init__(self, mab: ModuleType, which: str, alpha: float, arms: Sequence[str], encoder: ContextEncoder,
                 scale: float, batch: int, seed: int, name_alpha: bool = False):
        lp = {"linucb": mab.LearningPolicy.LinUCB, "lints": mab.LearningPolicy.LinTS}[which](alpha=alpha)
        self.name = f"mabwiser-{which}" + (f" a={alpha:g}" if name_alpha else "")
        self.alpha = alpha
        self.model = mab.MAB(arms=list(arms), learning_policy=lp, seed=_seed(seed, f"mabwiser-{which}"))
        # Fit on nothing, so that every arm starts at its ridge prior and predict works at once.
        self.model.fit(decisions=[], rewards=[], contexts=np.zeros((0, len(encoder))))
        self.encoder, self.scale, self.batch = encoder, scale, batch
        self._x: list[np.ndarray] = []
        self._arms: list[str] = []
        self._rewards: list[float] = []

    def choose(self, step: Step) -> tuple[int, float]:
        x = self.encoder.encode(step.shared)
        scores = self.model.predict_expectations(x.reshape(1, -1))
        k = max(range(len(step.eligible)), key=lambda i: scores[step.eligible[i]])  # first on ties
        step.vector = x
        return k, 1.0

    def learn(self, step: Step, index: int, prob: float, reward: float) -> None:
        assert step.vector is not None, "learn before choose"
        self._x.append(step.vector)
        self._arms.append(step.eligible[index])
        self._rewards.append(reward / self.scale)
        if len(self._arms) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self._arms:
            self.model.partial_fit(decisions=self._arms, rewards=self._rewards, contexts=np.vstack(self._x))
            self._x, self._arms, self._rewards = [], [], []


# -- fixed references ----------------------------------------------------------------------


class Oracle:
    name, kind = "oracle", "reference"

    def __init__(self, sim: Simulator):
        self.sim = sim
        self.state: SimState | None = None  # set by the runner: the oracle's own state

    def choose(self, step: Step) -> tuple[int, float]:
        return step.eligible.index(self.sim.oracle(step.inter, step.eligible, self.state)), 1.0

    def learn(self, step: Step, index: int, prob: float, reward: float) -> None:
        pass


class Uniform:
    name, kind = "uniform", "reference"

    def __init__(self, seed: int):
        self.rng = random.Random(_seed(seed, self.name))

    def choose(self, step: Step) -> tuple[int, float]:
        n = len(step.eligible)
        return min(n - 1, int(self.rng.random() * n)), 1.0 / n

    def learn(self, step: Step, index: int, prob: float, reward: float) -> None:
        pass


class Rules:
    name, kind = "rules", "reference"

    def __init__(self, catalog: Catalog, min_sentiment: float):
        self.catalog, self.min_sentiment = catalog, min_sentiment

    def choose(self, step: Step) -> tuple[int, float]:
        i = step.inter.request.interaction
        return rules_choice(step.eligible, self.catalog, i.resolved.value, i.sentiment, self.min_sentiment), 1.0

    def learn(self, step: Step, index: int, prob: float, reward: float) -> None:
        pass


class NoOffer:
    name, kind = "no_offer", "reference"

    def choose(self, step: Step) -> tuple[int, float]:
        return 0, 1.0

    def learn(self, step: Step, index: int, prob: float, reward: float) -> None:
        pass


# -- a learner's own contact log -----------------------------------------------------------


@dataclass
class ContactLog:
    """What this learner's decision log knows of each customer (what ``DecisionStore.history``
    would return): offers shown, declined, accepted, and the last complaint."""

    shown: dict[str, list[OfferEvent]] = field(default_factory=dict)
    declined: dict[str, list[OfferEvent]] = field(default_factory=dict)
    accepted: dict[str, list[OfferEvent]] = field(default_factory=dict)
    last_complaint: dict[str, datetime] = field(default_factory=dict)

    def history(self, inter: Interaction) -> History:
        """The channel-sent history merged with the log's (as ``Decider`` merges them)."""
        cid = inter.customer.id
        if cid not in self.shown:
            return inter.request.history
        own = History(shown=tuple(self.shown[cid]), declined=tuple(self.declined.get(cid, ())),
                      accepted=tuple(self.accepted.get(cid, ())), last_complaint=self.last_complaint.get(cid))
        return own.merged(inter.request.history)

    def record(self, inter: Interaction, offer_id: str, accepted: bool, complaint: bool) -> None:
        if offer_id == NO_OFFER:
            return
        cid, ev = inter.customer.id, OfferEvent(offer_id=offer_id, at=inter.ts)
        self.shown.setdefault(cid, []).append(ev)
        (self.accepted if accepted else self.declined).setdefault(cid, []).append(ev)
        if complaint:
            self.last_complaint[cid] = inter.ts


# -- running -------------------------------------------------------------------------------


@dataclass
class Result:
    """One learner's totals over the stream, and its cumulative curves for the plot."""

    name: str
    kind: str
    shipped: bool = False  # the shipped policy file's learner
    alpha: float | None = None  # a MABWiser learner's exploration width
    interactions: int = 0
    decisions: int = 0  # interactions with more than no_offer eligible
    offers: int = 0
    accepted: int = 0
    complaints: int = 0
    revenue: float = 0.0
    expected_reward: float = 0.0
    regret: float = 0.0
    min_step_regret: float = 0.0  # the most negative per-interaction regret (must be ~0)
    seconds: float = 0.0
    cum_regret: list[float] = field(default_factory=list, repr=False)
    cum_reward: list[float] = field(default_factory=list, repr=False)

    def reward(self, penalty: float) -> float:
        return self.revenue - penalty * self.complaints

    def row(self, penalty: float) -> dict[str, Any]:
        n = max(self.interactions, 1)
        return {
            "learner": self.name, "kind": self.kind, "interactions": self.interactions,
            "reward": self.reward(penalty), "revenue": self.revenue, "complaints": self.complaints,
            "complaint_rate": self.complaints / n, "offer_rate": self.offers / n,
            "accept_rate": self.accepted / max(self.offers, 1), "expected_reward": self.expected_reward,
            "regret": self.regret, "seconds": self.seconds,
            **({"shipped": True} if self.shipped else {}), **({"alpha": self.alpha} if self.alpha is not None else {}),
        }


def run_policy(policy: Policy, sim: Simulator, stream: Sequence[Interaction], pf: PolicyFile) -> Result:
    """Run one learner over the stream in its own world (state and contact log)."""
    state, log = sim.new_state(), ContactLog()
    if isinstance(policy, Oracle):
        policy.state = state
    res = Result(policy.name, policy.kind, shipped=getattr(policy, "shipped", False),
                 alpha=getattr(policy, "alpha", None))
    penalty, g = sim.complaint_penalty, pf.guardrails
    regret = reward = 0.0
    t0 = time.perf_counter()
    for inter in stream:
        history = log.history(inter)
        eligible = eligible_offers(inter.request, sim.catalog, history, g, inter.ts).eligible
        res.interactions += 1
        if len(eligible) > 1:
            step = Step(inter, eligible, history, sim.catalog)
            k, prob = policy.choose(step)
            offer = eligible[k]
            # Expectations before the response: a complaint now changes this customer's state.
            values = [sim.expected(inter, a, state).reward for a in eligible]
            best = max(values)
            r_step = best - values[k]
            res.min_step_regret = min(res.min_step_regret, r_step)
            regret += r_step
            res.expected_reward += values[k]
            resp = sim.respond(inter, offer, state)
            r = resp.revenue - penalty * resp.complaint
            policy.learn(step, k, prob, r)
            log.record(inter, offer, resp.accepted, resp.complaint)
            res.decisions += 1
            if offer != NO_OFFER:
                res.offers += 1
                res.accepted += resp.accepted
                res.complaints += resp.complaint
                res.revenue += resp.revenue
                reward += r
        res.cum_regret.append(regret)
        res.cum_reward.append(reward)
    if isinstance(policy, MABWiserPolicy):
        policy.flush()
    res.regret = regret
    res.seconds = time.perf_counter() - t0
    return res


@dataclass
class Comparison:
    """The whole run: settings, one ``Result`` per learner, and what was skipped."""

    days: int
    per_day: int
    seed: int
    penalty: float
    results: list[Result]
    notes: list[str]
    unknown_features: list[str]
    vw_learning_rate: float
    linucb_alphas: tuple[float, ...]
    lints_alpha: float
    batch: int
    vw_args: str = ""  # the policy file's own VW arguments (without the per-explorer change)

    def sorted(self) -> list[Result]:
        return sorted(self.results, key=lambda r: -r.reward(self.penalty))

    def best_linucb(self) -> Result | None:
        """LinUCB at its best alpha of the grid: the lowest regret (ties: the smaller alpha)."""
        rows = [r for r in self.results if r.name.startswith("mabwiser-linucb")]
        return min(rows, key=lambda r: (r.regret, r.alpha or 0.0)) if rows else None

    def shipped(self) -> Result | None:
        return next((r for r in self.results if r.shipped), None)


def build_policies(sim: Simulator, pf: PolicyFile, seed: int, batch: int, linucb_alphas: Sequence[float],
                   lints_alpha: float, explorers: Sequence[str] = EXPLORERS,
                   peers: bool = True, vw_batch: int = 1) -> tuple[list[Policy], list[str], ContextEncoder]:
    """Every learner and reference; the MABWiser ones only when the extra is installed (and
    ``peers``). One LinUCB per alpha (named with it when there are several)."""
    shipped = shipped_vw_args()
    policies: list[Policy] = [VWPolicy(e, pf, seed, shipped, vw_batch) for e in explorers]
    notes: list[str] = []
    encoder = ContextEncoder(sim.params)
    mab = mabwiser() if peers else None
    if mab is None:
        if peers:
            notes.append(PEERS_HINT)
    else:
        arms = [NO_OFFER, *sim.catalog.offers]
        several = len(linucb_alphas) > 1
        policies += [MABWiserPolicy(mab, "linucb", a, arms, encoder, pf.reward.scale, batch, seed, several)
                     for a in linucb_alphas]
        policies.append(MABWiserPolicy(mab, "lints", lints_alpha, arms, encoder, pf.reward.scale, batch, seed))
    policies += [Oracle(sim), Uniform(seed), Rules(sim.catalog, pf.control.rules_min_sentiment), NoOffer()]
    return policies, notes, encoder


def compare(days: int, per_day: int | None, seed: int, *, batch: int = 50,
            linucb_alphas: Sequence[float] = LINUCB_ALPHAS, lints_alpha: float = 0.25,
            params_path: Path | None = None, policy_path: Path | None = None,
            vw_learning_rate: float | None = None, explorers: Sequence[str] = EXPLORERS, peers: bool = True,
            progress: Callable[[str], None] | None = None, vw_batch: int = 1) -> Comparison:
    """Run every learner over the same ``days`` x ``per_day`` stream (see the module docstring).

    ``policy_path``: a policy file for the guardrails, the explorers' parameters, the VW
    learner and the reward (default: ``PolicyFile()``'s defaults, which are the shipped
    file's for these blocks); ``vw_learning_rate`` overrides its ``learner.learning_rate``;
    ``explorers``: the VW rows to run; ``peers``: False leaves MABWiser out; ``vw_batch``:
    VW learns every this many decisions (``VWPolicy``)."""
    params = load_params(params_path)
    if per_day is not None:
        params = params.model_copy(update={"calendar": params.calendar.model_copy(
            update={"interactions_per_day": per_day})})
    pf = load_policy(policy_path) if policy_path is not None else PolicyFile()
    if vw_learning_rate is not None:
        pf = pf.model_copy(update={"learner": pf.learner.model_copy(update={"learning_rate": vw_learning_rate})})
    sim = Simulator(params, load_catalog(CATALOG), seed, complaint_penalty=pf.reward.complaint_penalty)
    stream = [inter for d in range(days) for inter in sim.interactions(d)]
    policies, notes, encoder = build_policies(sim, pf, seed, batch, linucb_alphas, lints_alpha, explorers, peers,
                                              vw_batch)
    results = []
    for p in policies:
        results.append(run_policy(p, sim, stream, pf))
        if progress:
            progress(f"seed {seed}, {p.name}: {results[-1].seconds:.1f}s")
    return Comparison(days, params.calendar.interactions_per_day, seed, sim.complaint_penalty, results, notes,
                      sorted(encoder.unknown), pf.learner.learning_rate, tuple(linucb_alphas), lints_alpha, batch,
                      " ".join(pf.vw_args()))


# -- outputs -------------------------------------------------------------------------------


def markdown_table(c: Comparison) -> str:
    """One row per learner, best realised reward first; the shipped learner and the best
    LinUCB alpha are marked."""
    head = ("| learner | kind | reward | revenue | complaints | complaint rate | offer rate | accept rate "
            "| expected reward | regret to oracle |")
    lines = [head, "|" + "---|" * 2 + "---:|" * 8]
    best = c.best_linucb() if len(c.linucb_alphas) > 1 else None
    for r in c.sorted():
        w = r.row(c.penalty)
        mark = " (shipped)" if r.shipped else " (best alpha)" if r is best else ""
        lines.append(f"| {w['learner']}{mark} | {w['kind']} | {w['reward']:,.0f} | {w['revenue']:,.0f} "
                     f"| {w['complaints']} | {w['complaint_rate']:.2%} | {w['offer_rate']:.1%} "
                     f"| {w['accept_rate']:.1%} | {w['expected_reward']:,.0f} | {w['regret']:,.0f} |")
    return "\n".join(lines)


def verdict(c: Comparison) -> dict[str, Any] | None:
    """The shipped learner against LinUCB at its best alpha: regret and complaint rate, and
    whether the shipped one is at or below it on both (the criterion of issue 13)."""
    s, lin = c.shipped(), c.best_linucb()
    if s is None or lin is None:
        return None
    n = max(s.interactions, 1)
    return {"seed": c.seed, "shipped": s.name, "shipped_regret": s.regret,
            "shipped_complaint_rate": s.complaints / n, "linucb_alpha": lin.alpha, "linucb_regret": lin.regret,
            "linucb_complaint_rate": lin.complaints / max(lin.interactions, 1),
            "ahead": s.regret <= lin.regret and s.complaints / n <= lin.complaints / max(lin.interactions, 1)}


def summary_table(verdicts: Sequence[dict[str, Any]]) -> str:
    """One line per seed: the shipped learner against LinUCB at its best alpha on that seed."""
    lines = ["| seed | shipped learner | regret | complaint rate | LinUCB best alpha | regret | complaint rate "
             "| shipped at or below on both |", "|---:|---|---:|---:|---:|---:|---:|---|"]
    for v in verdicts:
        lines.append(f"| {v['seed']} | {v['shipped']} | {v['shipped_regret']:,.0f} | "
                     f"{v['shipped_complaint_rate']:.2%} | {v['linucb_alpha']:g} | {v['linucb_regret']:,.0f} | "
                     f"{v['linucb_complaint_rate']:.2%} | {'yes' if v['ahead'] else 'no'} |")
    if verdicts:
        k = len(verdicts)
        lines.append(f"| mean | | {sum(v['shipped_regret'] for v in verdicts) / k:,.0f} | "
                     f"{sum(v['shipped_complaint_rate'] for v in verdicts) / k:.2%} | | "
                     f"{sum(v['linucb_regret'] for v in verdicts) / k:,.0f} | "
                     f"{sum(v['linucb_complaint_rate'] for v in verdicts) / k:.2%} | |")
    return "\n".join(lines)


def markdown_report(c: Comparison, table: str) -> str:
    """The table with what it was run on, for ``compare_learners.md``."""
    n = c.days * c.per_day
    alphas = ",".join(f"{a:g}" for a in c.linucb_alphas)
    return (f"Learners on the same simulated stream: {c.days} day(s) x {c.per_day} interactions ({n:,}), seed "
            f"{c.seed}. VW: `{c.vw_args}` with each explorer in turn (cb_type {CB_TYPE}), learning after every "
            f"decision; MABWiser: LinUCB alpha {alphas}, LinTS alpha "
            f"{c.lints_alpha:g}, `partial_fit` every {c.batch} decisions. Reward = revenue - {c.penalty:g} x "
            "complaints (realised); complaint and offer rates per interaction, accept rate per offer; expected "
            "reward and regret to the oracle (its expected reward minus the chosen action's) on the simulator's "
            "hidden model. Sorted by reward. Reproduce: `python experiments/studies/compare_learners.py --days "
            f"{c.days} --per-day {c.per_day} --seed {c.seed} --linucb-alphas {alphas}`.\n\n{table}\n")


REFERENCE_COLORS = {"oracle": "#000000", "rules": "#8c564b", "uniform": "#7f7f7f", "no_offer": "#c7c7c7"}


def _colors(names: Sequence[str]) -> dict[str, str]:
    """A colour per learner, fixed by run order (not by rank, so a learner keeps its colour
    across runs): tab10 for the learners, minus the brown and grey the references use."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = [to_hex(c) for i, c in enumerate(colormaps["tab10"].colors) if i not in (5, 7)]
    learners = [n for n in names if n not in REFERENCE_COLORS]
    out = {n: palette[k % len(palette)] for k, n in enumerate(learners)}
    return out | {n: REFERENCE_COLORS[n] for n in names if n in REFERENCE_COLORS}


def plot(c: Comparison, path: Path) -> None:
    """Cumulative expected regret and cumulative realised reward, one line per learner."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_regret, ax_reward = fig.subplots(1, 2)
    colors = _colors([r.name for r in c.results])
    styles = {"VW cb_explore_adf": "-", "MABWiser": "-.", "reference": "--"}
    for r in c.sorted():
        x = np.arange(1, len(r.cum_regret) + 1)
        kw = {"color": colors[r.name], "linestyle": styles.get(r.kind, "-"), "linewidth": 1.6, "label": r.name}
        ax_regret.plot(x, r.cum_regret, **kw)
        ax_reward.plot(x, r.cum_reward, **kw)
    ax_regret.set(title="Cumulative expected regret to the oracle", xlabel="interaction",
                  ylabel="regret (reward units)")
    ax_reward.set(title=f"Cumulative realised reward (revenue - {c.penalty:g} x complaints)",
                  xlabel="interaction", ylabel="reward")
    for ax in (ax_regret, ax_reward):
        ax.grid(alpha=0.3)
        for d in range(1, c.days):
            ax.axvline(d * c.per_day, color="#999999", linewidth=0.8, linestyle=":")
    ax_reward.legend(loc="upper left", fontsize=8, ncol=2)
    fig.suptitle(f"offer-bandit learners, {c.days} simulated day(s) x {c.per_day} interactions, seed {c.seed}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="compare_learners.py",
        description="The VW policy under each explorer against MABWiser's LinUCB and LinTS (and the oracle, "
                    "uniform random, rules and no_offer references) on the same simulated stream: cumulative "
                    "reward, complaint rate and expected regret to the oracle, as a Markdown table and a plot.")
    ap.add_argument("--days", type=int, default=7, help="simulated days (default 7)")
    ap.add_argument("--per-day", type=int, default=None,
                    help="interactions per day (default: the simulator file's calendar.interactions_per_day, 2000)")
    ap.add_argument("--seed", type=int, default=None, help="seed of the stream and of every learner (default 7)")
    ap.add_argument("--seeds", default=None,
                    help="several seeds, comma-separated (e.g. 7,11,42): a table per seed, then the shipped "
                         "learner against LinUCB's best alpha on each")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="output directory for compare_learners.md and compare_learners.png "
                         "(default experiments/results/; with --seeds, one pair per seed, suffixed _seed<N>)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON to this file")
    ap.add_argument("--batch", type=int, default=50, help="MABWiser partial_fit every this many decisions (default 50)")
    ap.add_argument("--vw-batch", type=int, default=1,
                    help="VW learns every this many decisions (default 1: after each; 2000, a simulated day, is "
                         "the service's nightly retrain, the model frozen in between; --batch does the same for "
                         "MABWiser)")
    ap.add_argument("--linucb-alphas", default=",".join(f"{a:g}" for a in LINUCB_ALPHAS),
                    help="MABWiser LinUCB alphas, comma-separated: one LinUCB row each, the best (lowest regret) "
                         "marked (default 0.1,0.25,0.5,1,2; the library's default is 1)")
    ap.add_argument("--lints-alpha", type=float, default=0.25, help="MABWiser LinTS alpha (default 0.25)")
    ap.add_argument("--vw-learning-rate", type=float, default=None,
                    help="VW learning rate for every explorer (default: the policy file's learner.learning_rate)")
    ap.add_argument("--explorers", default=",".join(EXPLORERS),
                    help=f"the VW explorers to run, comma-separated (default all: {','.join(EXPLORERS)})")
    ap.add_argument("--no-peers", action="store_true", help="leave the MABWiser learners out")
    ap.add_argument("--policy", type=Path, default=None,
                    help="policy file for the guardrails, the explorers' parameters, the VW learner and the reward "
                         "(default: the built-in defaults, bandit.config.policyfile.PolicyFile())")
    ap.add_argument("--params", type=Path, default=None,
                    help="simulator parameter file (default experiments/simulator/simulator.yaml)")
    args = ap.parse_args(argv)
    if args.days < 1 or (args.per_day is not None and args.per_day < 1) or args.batch < 1 or args.vw_batch < 1:
        ap.error("--days, --per-day, --batch and --vw-batch must be at least 1")
    if args.seed is not None and args.seeds is not None:
        ap.error("--seed and --seeds: give one of them")
    try:
        args.seed_list = _ints(args.seeds) if args.seeds is not None else (7 if args.seed is None else args.seed,)
    except ValueError:
        ap.error(f"--seeds: comma-separated integers, not {args.seeds!r}")
    if not args.seed_list or min(args.seed_list) < 0:
        ap.error("--seed/--seeds must be non-negative integers")
    try:
        args.alphas = _floats(args.linucb_alphas)
    except ValueError:
        ap.error(f"--linucb-alphas: comma-separated numbers, not {args.linucb_alphas!r}")
    if not args.alphas or min(args.alphas) <= 0:
        ap.error("--linucb-alphas must be positive numbers")
    args.explorer_list = tuple(e for e in args.explorers.split(",") if e.strip())
    unknown = [e for e in args.explorer_list if e not in EXPLORERS]
    if unknown:
        ap.error(f"--explorers: {','.join(unknown)} not among {','.join(EXPLORERS)}")
    if args.lints_alpha <= 0 or (args.vw_learning_rate is not None and args.vw_learning_rate <= 0):
        ap.error("--lints-alpha and --vw-learning-rate must be positive")
    return args


def _json(c: Comparison) -> dict[str, Any]:
    return {"days": c.days, "per_day": c.per_day, "seed": c.seed, "complaint_penalty": c.penalty,
            "vw_learning_rate": c.vw_learning_rate, "vw_args": c.vw_args, "linucb_alphas": list(c.linucb_alphas),
            "linucb_best_alpha": (b.alpha if (b := c.best_linucb()) else None),
            "lints_alpha": c.lints_alpha, "batch": c.batch, "notes": c.notes, "unknown_features": c.unknown_features,
            "verdict": verdict(c),
            "rows": [dict(r.row(c.penalty), min_step_regret=r.min_step_regret) for r in c.sorted()]}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if mabwiser() is None and not args.no_peers:
        print(PEERS_HINT, file=sys.stderr)
    t0 = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    several = len(args.seed_list) > 1
    runs: list[Comparison] = []
    for seed in args.seed_list:
        c = compare(args.days, args.per_day, seed, batch=args.batch, linucb_alphas=args.alphas,
                    lints_alpha=args.lints_alpha, params_path=args.params, policy_path=args.policy,
                    vw_learning_rate=args.vw_learning_rate, explorers=args.explorer_list, peers=not args.no_peers,
                    progress=lambda s: print(s, file=sys.stderr, flush=True), vw_batch=args.vw_batch)
        runs.append(c)
        table = markdown_table(c)
        stem = f"compare_learners_seed{seed}" if several else "compare_learners"
        (out / f"{stem}.md").write_text(markdown_report(c, table))
        plot(c, out / f"{stem}.png")
        if several:
            print(f"\nSeed {seed}:\n")
        print(table)
        for n in c.notes:
            print(f"\nnote: {n}")
    verdicts = [v for c in runs if (v := verdict(c)) is not None]
    if several and verdicts:
        print("\nThe shipped learner against LinUCB at its best alpha, per seed:\n")
        print(summary_table(verdicts))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        body = _json(runs[0]) if not several else {"seeds": [_json(c) for c in runs], "verdicts": verdicts}
        args.json.write_text(json.dumps(body, indent=2))
    print(f"\nwrote {out} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
