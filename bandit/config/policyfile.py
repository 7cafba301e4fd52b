"""The service's policy file: the service decides *when* an offer may be made.

Separate from marketing's catalog (``config/policy.yaml``), owned by the service
team: guardrail thresholds, which offer families each request type may carry,
exploration, the VW learner's settings and the reward function. Every default
here is documented in the README and in the shipped example file.

Some blocks are not configurable at all: an opted-out or distressed customer never
gets an offer, whatever this file says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from bandit.config.notifications import Notifications
from bandit.domain.context import ActionId, Channel, Identifier, RequestType, Strict
from bandit.domain.errors import ConfigError, read_config_file, yaml_mapping
from bandit.domain.outcomes import RewardConfig

ANY = "*"

# The seeds' guidance on which request types may carry which kind of offer.
DEFAULT_REQUEST_TYPE_FAMILIES: dict[RequestType, tuple[str, ...]] = {
    # "Tell me something": help them reach sales; upsell to interested buyers.
    RequestType.informational: ("sales_contact", "upsell"),
    # "Solve my problem": once resolved, something that prevents the problem.
    RequestType.diagnostic: ("upgrade", "warranty"),
    # "Do something for me": cross-sell, protection, retention on cancellation.
    RequestType.transactional: ("cross_sell", "protection", "retention", "upgrade", "renewal"),
    # "Help me choose": natural opportunity for consultative offers.
    RequestType.advisory: (ANY,),
    # "Here's what I think": only goodwill (feedback on feedback).
    RequestType.feedback: ("goodwill",),
}


class FrequencyCap(Strict):
    max_offers: int = Field(1, ge=0)
    window_days: float = Field(7, gt=0)


class ImpressionCap(Strict):
    max_impressions: int = Field(3, ge=1)
    window_days: float = Field(7, gt=0)
    pause_days: float = Field(10, ge=0)


class UnknownRule(Strict):
    """What an unknown tone (no ``sentiment`` sent) or an unknown resolution (``resolved``
    unknown, omitted or null) means on some channels for some request types.

    Why a rule and not a default: where the tone is observed (a phone agent, a chat) not
    knowing it is a warning sign, and the guardrails stay strict; on a web form, whose
    visitor may be anonymous and whose tone nobody reads, the request's content decides the
    offer (the seeds' web-form case), so a center may allow an unknown tone there."""

    channels: tuple[Channel, ...] | None = Field(None, description="The channels it applies to (omitted: all).")
    request_types: tuple[RequestType, ...] | None = Field(None, description="The request types (omitted: all).")
    tone: Literal["block", "allow"] = Field("block", description="allow: an unknown tone does not block an offer.")
    resolution: Literal["block", "allow"] = Field(
        "block", description="allow: an unknown resolution does not block an offer where require_resolved asks "
        "for one (a known unresolved issue always does).")

    def matches(self, channel: Channel, request_type: RequestType) -> bool:
        return ((self.channels is None or channel in self.channels)
                and (self.request_types is None or request_type in self.request_types))


class Guardrails(Strict):
    # The seeds' rule, "offer only when the query is resolved and the tone is positive": a
    # positive tone (0, neutral, is not), resolution for every request type.
    min_sentiment: float = Field(0.1, ge=-1, le=1, description="Below this tone: only no_offer.")
    require_resolved: tuple[RequestType, ...] = tuple(RequestType)
    complaint_cooldown_days: float = Field(30, ge=0)
    frequency_cap: FrequencyCap = FrequencyCap()
    decline_pause_days: float = Field(30, ge=0)
    impression_cap: ImpressionCap = ImpressionCap()
    request_type_families: dict[RequestType, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_REQUEST_TYPE_FAMILIES)
    )
    suspended_offers: tuple[Identifier, ...] = Field((), description="Kill switch set in the file.")
    unknown: tuple[UnknownRule, ...] = Field(
        (), description="What an unknown tone or resolution means, by channel and request type: the first rule "
        "that matches decides; with none, an unknown tone or resolution blocks the offer (the safe default).")

    def families_for(self, request_type: RequestType) -> tuple[str, ...]:
        return self.request_type_families.get(request_type, ())

    def unknown_rule(self, channel: Channel, request_type: RequestType) -> UnknownRule:
        """The rule for an interaction (the first that matches), or the strict default."""
        return next((r for r in self.unknown if r.matches(channel, request_type)), _STRICT)


_STRICT = UnknownRule()


class Exploration(Strict):
    """How the policy explores; maps onto VW's ``--cb_explore_adf`` explorers.

    The default is SquareCB (``squarecb``, Foster and Rakhlin 2020, "Beyond UCB: optimal and
    efficient contextual bandits with regression oracles") over a regression learned with
    ``clip_p`` 1: the regressor predicts each eligible action's cost, and the served pmf is
    inverse gap weighting, ``p(a) = 1 / (K + gamma x (cost(a) - cost(best)))`` for every action
    but the best, which takes the rest, with ``gamma = gamma_scale x t^(1/2)`` after ``t``
    examples. So it explores the actions that are nearly as good, rarely the clearly worse
    (a complaint costs 300 where a typical offer earns about 15), and every eligible action
    keeps a probability above zero: a model frozen for a day still logs rounds the nightly
    evaluation can judge another choice by. Why it and not RegCB-optimistic (the former
    default): RegCB-optimistic serves its optimistic choice with probability 1, and a frozen
    optimistic model, trained on a whole window, kept offering where it was merely unsure
    (61% of the oracle's value against 79% for the same regression served greedily, on 3
    logged days, ``experiments/studies/batch_training.py``); and online SquareCB with
    ``clip_p`` 1 has less regret and fewer complaints than MABWiser's LinUCB at its best alpha
    on the simulator (``experiments/README.md``, "Learners compared").

    ``mellowness`` (C0 in RegCB's paper) widens the bounds of ``regcb``, ``regcbopt`` and
    ``squarecb`` with ``elim``. ``min_cost`` and ``max_cost`` are the range of VW's cost,
    ``-reward / scale``: those bounds are clipped to it, so it must hold every cost the reward
    can give. VW's own default range, [0, 1], holds none of a successful offer's (negative)
    costs nor a complaint's (300 / 100 = 3): with it RegCB-optimistic had 3.1 times the
    regret (``experiments/README.md``). The default [-3, 3] is the complaint's cost at the top
    and the same magnitude below; raise ``max_cost`` with ``reward.complaint_penalty / reward.scale``.

    ``clip_p`` (every explorer; VW's ``--clip_p``, stored in the model, so a change applies
    from the next retrain) caps the importance weight ``1 / p`` a logged round is learned
    with at ``1 / clip_p``. The learner's ``cb_type mtr`` regresses the chosen action's cost
    weighted ``1 / p``: a round explored at p = 0.01 would count 100 times and throw the
    regression off. The default, 1, learns every round with weight 1: the regression the
    explorers need (with it, the demo's RegCB-optimistic went from 86% to 91% of the oracle's
    revenue, and a greedy regression on 3 logged days from 54% to 79% of the oracle's value).

    ``floor`` is applied by the service to a trained model's probabilities, whatever the
    explorer (``bandit.decide.sampling.with_floor``): for a deterministic explorer
    (``regcbopt``, ``epsilon`` at 0), whose frozen model would log nothing but its own
    choice. SquareCB explores by itself, so the default is 0. Cold start has its own
    (``cold_start_epsilon``)."""

    algorithm: Literal["epsilon", "softmax", "bag", "cover", "squarecb", "regcb", "regcbopt"] = "squarecb"
    epsilon: float = Field(0.1, ge=0, le=1)
    softmax_lambda: float = Field(10.0, gt=0)
    bag_size: int = Field(5, ge=2)
    cover_size: int = Field(3, ge=1)
    gamma_scale: float = Field(10.0, gt=0)
    elim: bool = Field(False, description="squarecb: eliminate actions that cannot be best (uses mellowness and "
                       "the cost range).")
    mellowness: float = Field(1.0, gt=0, description="regcb, regcbopt, squarecb with elim: width of the "
                              "confidence bounds (more: more exploration).")
    min_cost: float = Field(-3.0, allow_inf_nan=False, description="The lowest VW cost (-reward / scale) "
                            "regcb, regcbopt and squarecb with elim expect.")
    max_cost: float = Field(3.0, allow_inf_nan=False, description="The highest VW cost: at least "
                            "reward.complaint_penalty / reward.scale.")
    cold_start_epsilon: float = Field(0.1, ge=0, le=1, description="Without a model: exploration around no_offer.")
    clip_p: float = Field(1.0, ge=0, le=1, description="The learner reads a logged probability "
                          "below this as this (VW --clip_p: importance weights at most 1 / clip_p; 0: no clipping).")
    floor: float = Field(0.0, ge=0, lt=1, description="The share of every served model's decisions spread "
                         "uniformly over the eligible actions (served pmf = (1 - floor) x the model's + floor / n), "
                         "so the log holds rounds of every eligible action for evaluation and training.")

    @model_validator(mode="after")
    def _cost_range(self) -> "Exploration":
        if self.min_cost >= self.max_cost:
            raise ValueError(f"exploration.min_cost {self.min_cost:g} must be below exploration.max_cost "
                             f"{self.max_cost:g}")
        return self

    def _bounds_args(self) -> list[str]:
        return ["--mellowness", str(self.mellowness), "--cb_min_cost", str(self.min_cost),
                "--cb_max_cost", str(self.max_cost)]

    def vw_args(self) -> list[str]:
        return [*self._explorer_args(), *(["--clip_p", str(self.clip_p)] if self.clip_p > 0 else [])]

    def _explorer_args(self) -> list[str]:
        a = self.algorithm
        if a == "epsilon":
            return ["--epsilon", str(self.epsilon)]
        if a == "softmax":
            return ["--softmax", "--lambda", str(self.softmax_lambda)]
        if a == "bag":
            return ["--bag", str(self.bag_size), "--epsilon", str(self.epsilon)]
        if a == "cover":
            return ["--cover", str(self.cover_size), "--epsilon", str(self.epsilon)]
        if a == "squarecb":
            square = ["--squarecb", "--gamma_scale", str(self.gamma_scale)]
            return [*square, "--elim", *self._bounds_args()] if self.elim else square
        return [f"--{a}", *self._bounds_args()]

    def tunable_args(self) -> list[str]:
        """The explorer's parameters that a trained model takes at load time (``-i`` with
        them), so that a served model explores as the policy file says now, not as it said
        when the model was trained. The explorer itself and its ensemble sizes (``bag_size``,
        ``cover_size``) shape the weights and change only with a retrain.

        Only ``epsilon`` and ``softmax_lambda`` qualify: VW stores ``gamma_scale``,
        ``elim``, ``mellowness`` and the cost range in the model and refuses to load it
        with another value ("Disagreeing option values", tested in
        ``tests/deploy/test_served_exploration.py``), so those apply from the next retrain."""
        a = self.algorithm
        if a in ("epsilon", "bag", "cover"):
            return ["--epsilon", str(self.epsilon)]
        if a == "softmax":
            return ["--lambda", str(self.softmax_lambda)]
        return []

    def structure(self) -> tuple[str, int | None]:
        """The explorer and its ensemble size: what a model must have been trained with for
        ``tunable_args`` to apply to it."""
        size = {"bag": self.bag_size, "cover": self.cover_size}.get(self.algorithm)
        return self.algorithm, size


# The namespaces ``bandit.decide.features`` writes, by the first letter VW pairs them on
# (context, emotion, user, history, xattrs, offer). An interaction naming another letter
# would silently interact nothing.
NAMESPACE_LETTERS = frozenset("ceuhxo")

# ``cb_type`` values VW (9.x) accepts with each explorer of ``--cb_explore_adf`` (others:
# all four). SquareCB and RegCB regress (``mtr`` only); cover has no direct method. VW 9.11
# checks the restriction for ``--regcb`` only, so ``regcbopt`` takes any (only ``mtr`` measured).
# ``tests/learn/test_tuning.py`` checks this table against VW itself.
CB_TYPES_FOR: dict[str, frozenset[str]] = {
    "squarecb": frozenset({"mtr"}),
    "regcb": frozenset({"mtr"}),
    "cover": frozenset({"ips", "dr", "mtr"}),
}


def vw_accepts(algorithm: str, cb_type: str) -> bool:
    """Whether VW trains this explorer with this ``cb_type`` (``CB_TYPES_FOR``)."""
    allowed = CB_TYPES_FOR.get(algorithm)
    return allowed is None or cb_type in allowed


class Learner(Strict):
    """VW learner settings; namespaces are documented in ``bandit.decide.features``."""

    # The request (c) and the tone (e) with the offer, and request x request x offer (an
    # intent's offer depends on its request type and resolution together). The user (u) and
    # history (h) pairs were dropped: with them every offer's cost has dozens more weights to
    # learn from the few times it is made, and online regret was higher (experiments/README.md,
    # "What limited VW, and what fixed it").
    interactions: tuple[str, ...] = ("co", "eo", "cco")
    cb_type: Literal["ips", "dr", "mtr", "dm"] = "mtr"
    # 0.04 (the step then shrinks as 1/sqrt(t), power_t 0.5): less regret than 0.1, the former
    # default, with epsilon-greedy and far less with RegCB-optimistic; 0.03 had less regret still
    # but more complaints (experiments/README.md, "Learners compared").
    learning_rate: float = Field(0.03, gt=0)
    bit_precision: int = Field(18, ge=10, le=28)
    power_t: float = Field(0.5, ge=0)

    @field_validator("interactions")
    @classmethod
    def _namespace_letters(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [q for q in value if len(q) < 2 or not set(q) <= NAMESPACE_LETTERS]
        if bad:
            raise ValueError(f"{bad!r}: each interaction is 2 or more of the namespace letters "
                             f"{''.join(sorted(NAMESPACE_LETTERS))} (see README, Features)")
        return value

    def vw_args(self) -> list[str]:
        args = ["--cb_type", self.cb_type, "-l", str(self.learning_rate), "-b", str(self.bit_precision)]
        args += ["--power_t", str(self.power_t)]
        for q in self.interactions:
            args += ["--interactions", q]
        return args


class Monitoring(Strict):
    """What the ``monitor`` flow (``bandit.deploy.monitoring``) judges offers by: an offer whose
    complaint rate over the window exceeds its limit is suspended through the kill switch."""

    max_complaint_rate: float = Field(0.05, gt=0, le=1, description="Default per-offer complaint limit.")
    window_hours: float = Field(24, gt=0, allow_inf_nan=False,
                                description="The sliding window monitor reads: [as_of - this, as_of).")
    min_offers: int = Field(
        30, ge=1, description="Offers made in the window before an offer can be judged (1 complaint in 2 is noise)."
    )


RULES_MIN_SENTIMENT = 0.3
"""The rules heuristic's tone bar (``bandit.decide.control.rules_choice``): it offers only
when the customer's tone (sentiment, -1 to 1) is at least this. The default of
``control.rules_min_sentiment``, which sets it for the control group and for the rules
baseline every candidate is compared with; every default for it is this one.

Why 0.3: the heuristic stands for a marketer's rule of thumb, offer once the issue is
resolved and the customer is clearly pleased, so its bar is clearly positive: well above
the guardrails' ``min_sentiment`` (0.1, just above neutral: what is known before any
data), leaving the learner to earn what it does between the two. The demo bears it out
(``experiments/README.md``, "How it got there"): tones from 0 to 0.3 gave half of an
under-trained model's expected complaints for a fifth of its expected revenue, where the
rules, offering from 0.3 only, drew none."""


class ControlGroup(Strict):
    """The holdout that measures lift in production (``bandit.decide.control``): a stable share of
    customers, picked by salted hash of the customer key, is served by a fixed control
    policy instead of the model, and flagged ``mode = control`` in the log."""

    share: float = Field(0.05, ge=0, le=1, description="Share of customers in the control group (0 = none, "
                         "1 = everyone: a rules-only deployment).")
    policy: Literal["rules", "no_offer"] = Field("rules", description="What the control group is served.")
    salt: str = Field("control-1", min_length=1, max_length=64,
                      description="Changing it draws a new control group.")
    rules_min_sentiment: float = Field(RULES_MIN_SENTIMENT, ge=-1, le=1,
                                       description="The rules policy offers only at or above this tone.")


class Promotion(Strict):
    """When a retrained candidate replaces the champion (``bandit.deploy.gate``)."""

    rule: Literal["paired", "personalizer"] = Field(
        "paired", description="paired: the candidate's estimate above the champion's and the paired lower bound of "
        "candidate minus champion above -non_inferiority_margin; personalizer: Azure Personalizer's Auto-Optimize "
        "rule, the candidate's estimate and its own lower bound above the champion's.")
    # dr and 1.0: the demo's later candidates differ from the champion on ~8% of decisions, which an
    # epsilon-0.1 champion logged at ~2.5% each, so few held-out rounds tell them apart; DR's reward
    # model narrows the paired interval (seed 7, night 5: SNIPS [-0.57, +2.09], DR [-0.02, +2.18]).
    # experiments/README.md, "The demo".
    estimator: Literal["ips", "snips", "dr"] = Field("dr", description="Off-policy estimator the gate reads.")
    non_inferiority_margin: float = Field(
        1.0, ge=0, allow_inf_nan=False,
        description="How far below zero the paired lower 95% bound of candidate minus champion (reward per "
        "decision) may reach, for a candidate whose estimate is higher (rule: paired). 0: superiority.")
    max_complaint_rate: float = Field(0.02, gt=0, le=1, description="Cap on the upper 95% bound of the "
                                      "candidate's complaint rate per decision.")
    complaint_tolerance: float = Field(0.001, ge=0, le=1, description="The candidate's estimated complaint rate "
                                       "may exceed the champion's by at most this.")
    min_events: int = Field(1000, ge=1, description="Fewer evaluated decisions than this: keep the champion.")
    min_ess: float = Field(100.0, gt=0, description="Effective sample size below this: keep the champion.")
    first_model: Literal["progressive", "holdout"] = Field(
        "progressive", description="How a first model (no champion yet) is judged against no_offer. progressive: "
        "trained on the whole window and judged by progressive validation over it (each decision scored by the "
        "learner trained on the decisions before it, bandit.learn.progressive), so night 1's decisions all count; "
        "holdout: like a later candidate, trained on the older part and judged on the newest held-out part.")

    @model_validator(mode="before")
    @classmethod
    def _former_margin(cls, data: Any) -> Any:
        """``margin`` (the lower bound had to be above it) became ``non_inferiority_margin``
        (it may reach that far below zero): say so rather than "extra field"."""
        if isinstance(data, dict) and "margin" in data:
            raise ValueError(f"promotion.margin is now promotion.non_inferiority_margin, which counts the other "
                             f"way: margin {data['margin']} is non_inferiority_margin {-float(data['margin']):g} "
                             f"(it must be >= 0)")
        return data


class Retrain(Strict):
    """How the nightly retrain trains a candidate from the window (``flows.retrain``), on top of
    the learner's settings: what a batch of logged decisions allows that serving does not need.

    Measured with ``experiments/studies/batch_training.py`` against the simulator's truth
    (experiments/README.md, "The demo" and "Learners compared"): for the former epsilon-greedy
    learner without ``clip_p``, coin betting (VW's ``--coin``, a parameter-free optimizer: no
    learning rate, no ``power_t`` decay) took a one-pass model from 27% to 51% of the oracle's
    expected reward on 1 logged day. With ``clip_p`` 1 (every round weight 1) the learner's own
    rate is the better one: on 1 logged day of seeds 1, 2024 and 7, 65%, 67% and 50% of the
    oracle's value against coin's 46%, 53% and 45% (the regression served greedily, a cold start
    at epsilon 0.2 logged), so ``learner``
    is the default. Three passes were better on some seeds and worse on others."""

    optimizer: Literal["coin", "learner"] = Field(
        "learner", description="coin: VW's coin-betting optimizer (--coin), learning_rate and power_t unused; "
        "learner: the learner block's learning_rate and power_t (adaptive SGD).")
    passes: int = Field(1, ge=1, le=20, description="Passes over the window (more than 1: VW's cache, no holdout).")

    def vw_args(self) -> list[str]:
        """The VW arguments added to ``PolicyFile.vw_args()`` for a retrain."""
        args = ["--coin"] if self.optimizer == "coin" else []
        if self.passes > 1:
            args += ["--passes", str(self.passes), "--cache", "--holdout_off"]
        return args


class PersonalizerCallers(Strict):
    """How the Personalizer-compatible API's callers meet the decision path (``service.personalizer``).

    Personalizer always answers one of the caller's actions, and has no "no offer"; the
    guardrails need one (a distressed customer gets nothing). So a rank's ``no_offer`` is
    answered as one of the caller's actions: the one named here when the rank sends it,
    else the rank's baseline action (Personalizer's own: the first action not excluded,
    what the application shows without a personalizer) when that is not a catalog offer.
    A catalog offer never stands in for no offer: its guardrails would be bypassed."""

    no_offer_action: ActionId | None = Field(
        None, description="The caller's action id that means no offer (e.g. 'none'); it may fill any number of "
        "a multi-slot rank's slots. Omitted: each rank's baseline action stands in for no offer.")


class Retention(Strict):
    """How long the log keeps what it logs (``bandit.log.retention.purge``, the ``purge``
    flow and command). ``None``: for ever. Keep it longer than the retrain's window and the
    reward window, or the retrain has nothing to learn from."""

    days: float | None = Field(None, gt=0, le=36500, allow_inf_nan=False,
                               description="Decisions, outcomes and contacts older than this are deleted.")


class PolicyFile(Strict):
    version: int = 1
    mode: Literal["online", "apprentice"] = Field(
        "online", description="apprentice: always serve no_offer, log what the model would have done."
    )
    guardrails: Guardrails = Guardrails()
    exploration: Exploration = Exploration()
    learner: Learner = Learner()
    reward: RewardConfig = RewardConfig()
    monitoring: Monitoring = Monitoring()
    promotion: Promotion = Promotion()
    retrain: Retrain = Retrain()
    control: ControlGroup = ControlGroup()
    personalizer: PersonalizerCallers = PersonalizerCallers()
    notifications: Notifications = Notifications()
    retention: Retention = Retention()

    @model_validator(mode="after")
    def _vw_accepts(self) -> "PolicyFile":
        a, cb = self.exploration.algorithm, self.learner.cb_type
        if not vw_accepts(a, cb):
            raise ValueError(f"learner.cb_type {cb} does not go with exploration.algorithm {a}: VW accepts "
                             f"{', '.join(sorted(CB_TYPES_FOR[a]))} with it")
        return self

    def vw_args(self) -> list[str]:
        return ["--cb_explore_adf", *self.exploration.vw_args(), *self.learner.vw_args()]

    def retrain_args(self) -> list[str]:
        """The VW arguments a nightly retrain trains with: ``vw_args`` plus ``retrain``'s, except
        that coin betting is left out with the RegCB explorers (``regcb``, ``regcbopt``): their
        confidence bounds come from the regressor's update sensitivity, and under ``--coin`` every
        eligible action got the same probability (``tests/learn/test_training_progressive.py``)."""
        extra = self.retrain.vw_args()
        if self.exploration.algorithm in ("regcb", "regcbopt"):
            extra = [a for a in extra if a != "--coin"]
        return [*self.vw_args(), *extra]


def parse_policy(text: str, source: str = "<policy>") -> PolicyFile:
    raw = yaml_mapping(text, source)
    try:
        return PolicyFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            [f"{source}: field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors()]
        ) from exc


def load_policy(path: Path) -> PolicyFile:
    return parse_policy(read_config_file(path, "policy file"), str(path))
