"""Policy optimization: which VW settings would have done best on the logged decisions.

The counterpart of Personalizer's "optimization": take a grid of learner settings
(explorer, ``cb_type``, interactions, learning rate), train one model per grid point
on the same older part of the log, evaluate each off-policy on the same newest part,
and recommend the best. The flow that runs it is ``flows.tune``; this module is the
pure part: the grid, its expansion into policy files, choosing the best, and the report.

Why every grid point is a whole ``PolicyFile``: the recommendation is something a
person pastes into ``config/policy.yaml``, so each point must be a setting that file
accepts, built from the file in use (guardrails, reward and everything not tuned stay
as they are) and validated exactly as loading the file would validate it.

Why the explorer is tuned with the learner: what a policy earns is what it *serves*,
and it serves its exploring distribution (epsilon, softmax, bagging, cover, SquareCB),
not its greedy choice. Each point is therefore evaluated on its exploring policy (as
``bandit.learn.evaluation.model_policy`` scores it), so more exploration costs what it costs.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import Field, ValidationError

from bandit.domain.context import Strict
from bandit.domain.errors import ConfigError
from bandit.learn.evaluation import Comparison, PolicyEvaluation
from bandit.learn.ope import Estimate
from bandit.config.policyfile import NAMESPACE_LETTERS, Learner, PolicyFile, vw_accepts

DEFAULT_INTERACTIONS: tuple[str, ...] = Learner().interactions  # co, eo, cco
# The former default: every shared namespace with the offer (user and history too).
FORMER_INTERACTIONS: tuple[str, ...] = ("co", "uo", "eo", "ho")
# More: the channel's own attributes with the offer, and context x user x offer (cubic).
MORE_INTERACTIONS: tuple[str, ...] = (*DEFAULT_INTERACTIONS, "xo", "cuo")


class Grid(Strict):
    """The settings to try. Each explorer is a partial ``exploration`` block (fields it
    does not name keep the policy file's values); the other axes are values of one
    ``learner`` field each. The full product is large (the default: 171 legal points),
    and every point is a training run, so at most ``max_points`` are tried: a seeded
    all-pairs sample (every two values of two axes meet in some point, see
    ``_pairwise_sample``), plus the policy file's own setting, so the report says whether
    anything beats what is served now. The shipped setting (``squarecb``, ``mtr``,
    ``DEFAULT_INTERACTIONS``, learning rate 0.03) is a point of the default grid."""

    explorers: tuple[dict[str, Any], ...] = Field(
        (
            {"algorithm": "regcbopt"},
            {"algorithm": "epsilon", "epsilon": 0.05},
            {"algorithm": "epsilon", "epsilon": 0.1},
            {"algorithm": "softmax"},
            {"algorithm": "bag"},
            {"algorithm": "cover"},
            {"algorithm": "squarecb"},
        ),
        min_length=1,
    )
    cb_types: tuple[str, ...] = Field(("ips", "dr", "mtr"), min_length=1)
    interactions: tuple[tuple[str, ...], ...] = Field(
        (DEFAULT_INTERACTIONS, FORMER_INTERACTIONS, MORE_INTERACTIONS), min_length=1)
    learning_rates: tuple[float, ...] = Field((0.03, 0.1, 0.5), min_length=1)
    max_points: int = Field(24, ge=1, description="Sample the product down to this many points.")
    seed: int = Field(0, description="The sample's seed: the same grid gives the same points.")
    include_current: bool = Field(True, description="Always evaluate the policy file's own setting too.")


@dataclass(frozen=True)
class Point:
    """One setting to try: a complete, validated policy file."""

    index: int
    policy: PolicyFile
    current: bool = False  # the policy file's own exploration and learner settings

    @property
    def name(self) -> str:
        """Its key in the comparison and in MLflow (``p00``, ``p01``, ...)."""
        return f"p{self.index:02d}"

    @property
    def explorer(self) -> str:
        e = self.policy.exploration
        return {"epsilon": f"epsilon {e.epsilon:g}", "softmax": f"softmax lambda={e.softmax_lambda:g}",
                "bag": f"bag {e.bag_size} eps={e.epsilon:g}", "cover": f"cover {e.cover_size} eps={e.epsilon:g}",
                "squarecb": f"squarecb gamma={e.gamma_scale:g}" + (f" elim C0={e.mellowness:g}" if e.elim else ""),
                "regcb": f"regcb C0={e.mellowness:g}", "regcbopt": f"regcbopt C0={e.mellowness:g}",
                }.get(e.algorithm, e.algorithm)

    @property
    def label(self) -> str:
        lr = self.policy.learner
        return f"{self.explorer} / {lr.cb_type} / {','.join(lr.interactions)} / l={lr.learning_rate:g}"

    def vw_args(self) -> list[str]:
        return self.policy.vw_args()

    def params(self) -> dict[str, str]:
        """The tuned blocks flattened (``exploration.epsilon``, ``learner.cb_type``, ...), for MLflow."""
        out = {"vw_args": " ".join(self.vw_args())}
        for block in ("exploration", "learner"):
            for k, v in getattr(self.policy, block).model_dump(mode="json").items():
                out[f"{block}.{k}"] = ",".join(v) if isinstance(v, list) else str(v)
        return out


def variant(base: PolicyFile, exploration: Mapping[str, Any] | None = None,
            learner: Mapping[str, Any] | None = None) -> PolicyFile:
    """``base`` with some exploration and learner fields replaced, validated as a whole
    policy file (``model_copy(update=...)`` alone would not validate)."""
    raw = base.model_dump()
    raw["exploration"] = {**raw["exploration"], **(exploration or {})}
    raw["learner"] = {**raw["learner"], **(learner or {})}
    return PolicyFile.model_validate(raw)


def legal(base: PolicyFile, explorer: Mapping[str, Any], cb_type: str) -> bool:
    """Whether VW accepts this grid explorer (over ``base``'s) with this ``cb_type``
    (``bandit.config.policyfile.vw_accepts``; the policy file refuses the rest)."""
    return vw_accepts(explorer.get("algorithm", base.exploration.algorithm), cb_type)


def _check_axes(grid: Grid, base: PolicyFile) -> list[str]:
    """Every value of every axis on its own against ``base``, so a bad value is reported
    once, naming the grid field and the policy-file field it would set."""
    problems: list[str] = []
    # each value alone, against an explorer and cb_type that go with every other one: which
    # pairs VW refuses is not a bad value (``legal`` leaves those pairs out of the grid)
    probe = variant(base, {"algorithm": "epsilon"}, {"cb_type": "mtr"})

    def check(grid_field: str, i: int, value: Any, **update: Mapping[str, Any]) -> None:
        try:
            variant(probe, **update)
        except ValidationError as exc:
            for e in exc.errors():
                problems.append(f"tuning grid: {grid_field}[{i}] = {value!r}: field "
                                f"'{'.'.join(map(str, e['loc']))}': {e['msg']}")

    for i, explorer in enumerate(grid.explorers):
        check("explorers", i, explorer, exploration=explorer)
    for i, cb_type in enumerate(grid.cb_types):
        check("cb_types", i, cb_type, learner={"cb_type": cb_type})
    for i, inter in enumerate(grid.interactions):
        bad = [q for q in inter if len(q) < 2 or not set(q) <= NAMESPACE_LETTERS]
        if bad or not inter:
            problems.append(f"tuning grid: interactions[{i}] = {list(inter)!r}: field 'learner.interactions': "
                            f"each must be 2 or more of the namespace letters {''.join(sorted(NAMESPACE_LETTERS))}"
                            + (f", not {bad!r}" if bad else ", and the set may not be empty"))
        else:
            check("interactions", i, inter, learner={"interactions": inter})
    for i, rate in enumerate(grid.learning_rates):
        check("learning_rates", i, rate, learner={"learning_rate": rate})
    return problems


def _pairwise_sample(combos: list[tuple[int, ...]], k: int, seed: int) -> list[tuple[int, ...]]:
    """At most ``k`` of ``combos`` (tuples of per-axis value indices) chosen so that every
    pair of values of two different axes that occurs in ``combos`` occurs in a chosen one
    (an all-pairs design), greedily, ties broken by a seeded shuffle; in the product's order.

    Why pairs: what matters is mostly how two settings work together (an explorer with a
    ``cb_type``, a learning rate with a larger interaction set); covering every pair takes
    about as many runs as the two largest axes multiplied (21 for the default grid instead
    of 114), where a random sample of the same size leaves some explorers with one
    ``cb_type`` only. Stops early once every pair is covered."""
    if len(combos) <= k:
        return list(combos)

    def pairs(c: tuple[int, ...]) -> set[tuple[int, int, int, int]]:
        return {(a, c[a], b, c[b]) for a, b in itertools.combinations(range(len(c)), 2)}

    order = list(combos)
    random.Random(seed).shuffle(order)
    uncovered = set().union(*(pairs(c) for c in combos))
    chosen: list[tuple[int, ...]] = []
    while uncovered and len(chosen) < k:
        best = max(order, key=lambda c: len(pairs(c) & uncovered))  # the first of the best, in shuffled order
        chosen.append(best)
        order.remove(best)
        uncovered -= pairs(best)
    rank = {c: i for i, c in enumerate(combos)}
    return sorted(chosen, key=rank.__getitem__)


def expand(grid: Grid, base: PolicyFile) -> list[Point]:
    """The grid's points as validated policy files built on ``base``.

    Raises ``ConfigError`` listing every bad grid value (naming the grid field and the
    policy-file field) before anything is trained. Explorer and ``cb_type`` pairs VW
    refuses are left out; points with the same VW arguments are tried once. With
    ``include_current``, the point equal to ``base``'s own setting is marked ``current``
    (and added if the grid does not contain it)."""
    problems = _check_axes(grid, base)
    if problems:
        raise ConfigError(problems)
    combos = []
    for e, c, q, lr in itertools.product(range(len(grid.explorers)), range(len(grid.cb_types)),
                                         range(len(grid.interactions)), range(len(grid.learning_rates))):
        if legal(base, grid.explorers[e], grid.cb_types[c]):
            combos.append((e, c, q, lr))
    policies: list[PolicyFile] = []
    for e, c, q, lr in _pairwise_sample(combos, grid.max_points, grid.seed):
        policies.append(variant(base, grid.explorers[e], {"cb_type": grid.cb_types[c], "learning_rate":
                                                          grid.learning_rates[lr],
                                                          "interactions": grid.interactions[q]}))
    if grid.include_current and base.vw_args() not in [p.vw_args() for p in policies]:
        policies.insert(0, base)
    points: list[Point] = []
    seen: set[tuple[str, ...]] = set()
    for policy in policies:
        key = tuple(policy.vw_args())
        if key not in seen:
            seen.add(key)
            current = grid.include_current and policy.vw_args() == base.vw_args()
            points.append(Point(len(points), policy, current))
    return points


# -- choosing -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pick:
    """The recommendation: the best eligible point, and why others were passed over."""

    best: str | None  # a point's name, None when none is eligible
    estimator: str
    estimate: Estimate | None  # the best's estimate with its 95% interval
    ranking: list[str]  # every candidate, best first by value (eligible or not)
    passed_over: dict[str, str] = field(default_factory=dict)  # name -> why it cannot be recommended


def _sort_key(ev: PolicyEvaluation, estimator: str) -> tuple[float, float]:
    e = ev.reward[estimator]
    value = e.value if not math.isnan(e.value) else -math.inf
    low = e.low if not math.isnan(e.low) else -math.inf
    return (-value, -low)


def pick_best(comparison: Comparison, candidates: Sequence[str], estimator: str, min_ess: float = 0.0,
              max_complaint_rate: float = 1.0) -> Pick:
    """The candidate with the highest estimated reward per decision (``estimator``), the
    higher lower bound breaking a tie, then the earlier candidate (the current setting
    comes first, so a tie never recommends a change).

    Only candidates the promotion gate could accept are eligible: an effective sample
    size of at least ``min_ess`` (below it the estimate is not worth trusting: the policy
    rarely agrees with what was logged) and an estimated complaint rate at or under
    ``max_complaint_rate``. The rest are ranked too, with the reason they are passed over."""
    order = {name: i for i, name in enumerate(candidates)}
    ranking = sorted(candidates, key=lambda n: (*_sort_key(comparison.policies[n], estimator), order[n]))
    passed_over: dict[str, str] = {}
    for name in ranking:
        ev = comparison.policies[name]
        e = ev.reward[estimator]
        if math.isnan(e.value):
            passed_over[name] = f"no {estimator} estimate (the policy never agrees with the logged actions)"
        elif ev.ess < min_ess:
            passed_over[name] = f"effective sample size {ev.ess:.0f} is below {min_ess:g}"
        elif ev.complaint_rate.value > max_complaint_rate:
            passed_over[name] = f"complaint rate {ev.complaint_rate.value:.4f} is above the cap {max_complaint_rate:g}"
    best = next((n for n in ranking if n not in passed_over), None)
    return Pick(best, estimator, comparison.policies[best].reward[estimator] if best else None, ranking, passed_over)


def improves_on_current(pick: Pick, comparison: Comparison, current: str | None, margin: float = 0.0) -> bool | None:
    """Whether the best clearly beats the current setting: its lower bound above the current's
    estimate plus ``margin``; None without both. Worth asking because the best of many noisy
    estimates is optimistic: the winner is partly the luckiest. (Unpaired, so stricter than
    the promotion gate, which judges the paired difference on the same decisions: tune keeps
    one evaluation per point, not the per-decision probabilities a paired interval needs.)"""
    if pick.best is None or pick.estimate is None or current is None:
        return None
    current_value = comparison.policies[current].reward[pick.estimator].value
    return pick.best != current and pick.estimate.low > current_value + margin


# -- reporting ------------------------------------------------------------------------------------

def settings_yaml(policy: PolicyFile) -> str:
    """The tuned blocks (``exploration`` and ``learner``, complete) as policy-file YAML,
    to paste over the same blocks of ``config/policy.yaml``."""
    blocks = {b: getattr(policy, b).model_dump(mode="json") for b in ("exploration", "learner")}
    return yaml.dump(blocks, Dumper=_FlowListDumper, sort_keys=False, default_flow_style=False)


class _FlowListDumper(yaml.SafeDumper):
    """Block mappings with flow lists (``interactions: [co, uo]``), as the shipped policy file writes them."""


_FlowListDumper.add_representer(
    list, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True))


def report(comparison: Comparison, points: Iterable[Point], pick: Pick, window: str, trained_on: int,
           margin: float = 0.0) -> str:
    """The tuning report in Markdown: every point ranked, the baselines for scale, the
    recommendation with its interval and its YAML, and what was passed over and why."""
    by_name = {p.name: p for p in points}
    est = pick.estimator
    lines = [f"# Tune {window}", "", f"Trained on {trained_on} decisions, evaluated on {comparison.n} held-out "
             f"decisions; ranked by {est.upper()} reward per decision (95% interval).", ""]
    if pick.best is not None and pick.estimate is not None:
        best = by_name[pick.best]
        e = pick.estimate
        lines.append(f"**Best: {best.name}** ({best.label}): {e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"
                     + (" (the current setting)" if best.current else ""))
        current = next((p for p in by_name.values() if p.current), None)
        if current is not None and not best.current:
            c = comparison.policies[current.name].reward[est]
            plus = f" + margin {margin:g}" if margin else ""
            verdict = (f"is above the current's estimate {c.value:.3f}{plus}: a clear improvement."
                       if improves_on_current(pick, comparison, current.name, margin) else
                       f"is not above the current's estimate {c.value:.3f}{plus}: the difference may be noise "
                       f"(the best of {len(pick.ranking)} estimates is favoured by luck); keeping the current "
                       "setting is as defensible.")
            lines += ["", f"Current setting {current.name}: {c.value:.3f} [{c.low:.3f}, {c.high:.3f}]. "
                      f"The best's lower bound {e.low:.3f} {verdict}"]
    else:
        lines.append("**No recommendation**: no setting is eligible (see below).")
    lines += ["", f"| rank | point | explorer | cb_type | interactions | l | {est} | 95% interval | complaint rate "
              "| offer rate | ESS | |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for rank, name in enumerate(pick.ranking, 1):
        p, ev = by_name[name], comparison.policies[name]
        e = ev.reward[est]
        note = "; ".join(x for x in ("**best**" if name == pick.best else "", "current" if p.current else "",
                                     "passed over" if name in pick.passed_over else "") if x)
        lines.append(f"| {rank} | {name} | {p.explorer} | {p.policy.learner.cb_type} | "
                     f"{','.join(p.policy.learner.interactions)} | {p.policy.learner.learning_rate:g} | "
                     f"{e.value:.3f} | [{e.low:.3f}, {e.high:.3f}] | {ev.complaint_rate.value:.4f} | "
                     f"{ev.offer_rate:.2f} | {ev.ess:.0f} | {note} |")
    others = [n for n in comparison.policies if n not in by_name]
    if others:
        lines += ["", "Baselines on the same decisions:", "", f"| policy | {est} | 95% interval | complaint rate "
                  "| offer rate | ESS |", "|---|---|---|---|---|---|"]
        for name in others:
            ev = comparison.policies[name]
            e = ev.reward[est]
            lines.append(f"| {name} | {e.value:.3f} | [{e.low:.3f}, {e.high:.3f}] | "
                         f"{ev.complaint_rate.value:.4f} | {ev.offer_rate:.2f} | {ev.ess:.0f} |")
    if pick.passed_over:
        lines += ["", "Passed over:", *[f"- {n}: {why}" for n, why in pick.passed_over.items()]]
    if pick.best is not None:
        lines += ["", "To adopt it, replace the `exploration` and `learner` blocks of the policy file with:", "",
                  "```yaml", settings_yaml(by_name[pick.best].policy).rstrip("\n"), "```",
                  "", "Nothing was registered or promoted: tuning only recommends."]
    return "\n".join(lines) + "\n"
