"""The policy file's exploration and learner blocks: every explorer's VW arguments are ones VW
runs, the shipped file says what the defaults are, the cost range is checked, and what a
served model takes at load time (``tunable_args``) is what VW really lets a trained model take."""

from __future__ import annotations

from pathlib import Path

import pytest
import vowpalwabbit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bandit.config.policyfile import Exploration, Learner, PolicyFile, load_policy, parse_policy
from bandit.decide.features import offer_features
from bandit.decide.vw import VWModel, trained_explorer
from bandit.domain.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHARED = {"context": {"channel=phone": 1.0}}
ACTIONS = [offer_features(None), {"offer": {"id=a": 1.0}}, {"offer": {"id=b": 1.0}}, {"offer": {"id=c": 1.0}}]
ALGORITHMS = ("epsilon", "softmax", "bag", "cover", "squarecb", "regcb", "regcbopt")


def test_the_shipped_policy_files_exploration_and_learner_are_the_defaults() -> None:
    """policy.yaml says "every value shown is the default": for these two blocks, it is."""
    shipped = load_policy(REPO / "config" / "policy.yaml")
    assert shipped.exploration == Exploration() and shipped.learner == Learner()
    text = (REPO / "config" / "policy.yaml").read_text()
    for field in Exploration.model_fields:  # and every field of the block is shown
        assert f"  {field}:" in text, field


def test_the_default_explorer_is_squarecb_over_a_regression_of_weight_one_rounds() -> None:
    args = PolicyFile().vw_args()
    assert args[:5] == ["--cb_explore_adf", "--squarecb", "--gamma_scale", "10.0", "--clip_p"]
    assert "--epsilon" not in args and "--coin" not in PolicyFile().retrain_args()
    assert Learner().vw_args() == ["--cb_type", "mtr", "-l", "0.03", "-b", "18", "--power_t", "0.5",
                                   "--interactions", "co", "--interactions", "eo", "--interactions", "cco"]


def test_squarecb_takes_elimination_with_the_same_bounds_only_when_asked() -> None:
    assert Exploration(algorithm="squarecb", clip_p=0).vw_args() == ["--squarecb", "--gamma_scale", "10.0"]
    assert Exploration(algorithm="squarecb", clip_p=0, elim=True, mellowness=0.1).vw_args() == [
        "--squarecb", "--gamma_scale", "10.0", "--elim", "--mellowness", "0.1", "--cb_min_cost", "-3.0",
        "--cb_max_cost", "3.0"]


def test_a_cost_range_that_is_empty_is_refused_naming_both_fields() -> None:
    with pytest.raises(ConfigError, match=r"field 'exploration'.*exploration.min_cost 3 must be below "
                                          r"exploration.max_cost 3"):
        parse_policy("exploration: {min_cost: 3}", "policy.yaml")
    with pytest.raises(ValidationError, match="mellowness"):
        Exploration(mellowness=0)


@pytest.mark.parametrize("algorithm", ["regcb", "regcbopt", "squarecb", "epsilon", "softmax", "bag", "cover"])
def test_clip_p_reaches_every_learner_and_vw_keeps_it_in_the_model(tmp_path: Path, algorithm: str) -> None:
    """Exploration logs rounds at small p; ``clip_p`` is what keeps each from counting 1 / p
    times in the learner's regression (``cb_type mtr``). VW stores it in the model."""
    assert Exploration(algorithm=algorithm, clip_p=1).vw_args()[-2:] == ["--clip_p", "1.0"]
    assert "--clip_p" not in Exploration(algorithm=algorithm, clip_p=0).vw_args()
    model = VWModel.load(_trained(tmp_path / "m.vw", Exploration(algorithm=algorithm, clip_p=1)))
    assert "--clip_p 1" in model.arguments()


def test_clip_p_out_of_range_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"field 'exploration.clip_p': Input should be less than or equal to 1"):
        parse_policy("exploration: {clip_p: 2}", "policy.yaml")


@pytest.mark.parametrize("value, message", [("1", "less than 1"), ("-0.1", "greater than or equal to 0")])
def test_an_exploration_floor_outside_0_to_1_is_refused_naming_the_field(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"policy.yaml: field 'exploration.floor': Input should be {message}"):
        parse_policy(f"exploration: {{floor: {value}}}", "policy.yaml")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_explorer_with_its_parameters_is_a_workspace_vw_runs(algorithm: str) -> None:
    e = Exploration(algorithm=algorithm, elim=True)
    args = PolicyFile.model_validate({"exploration": e.model_dump()}).vw_args()
    model = VWModel.fresh([*args, "--random_seed", "1"])
    model.learn(SHARED, ACTIONS, 1, -1.5, 0.5)
    pmf = model.pmf(SHARED, ACTIONS)
    assert abs(sum(pmf) - 1) < 1e-6
    assert trained_explorer(model.arguments()) == (e.structure()[0], None) or algorithm in ("bag", "cover")


def _trained(path: Path, exploration: Exploration) -> Path:
    model = VWModel.fresh(["--cb_explore_adf", *exploration.vw_args(), "--random_seed", "1"])
    for k in range(40):
        model.learn(SHARED, ACTIONS, k % 4, [0.0, 1.0, -0.5, 2.0][k % 4], 0.25)
    model.save(path)
    return path


explorations = st.builds(
    Exploration, algorithm=st.sampled_from(ALGORITHMS), epsilon=st.sampled_from([0.0, 0.05, 0.3]),
    softmax_lambda=st.sampled_from([1.0, 10.0]), gamma_scale=st.sampled_from([1.0, 10.0, 100.0]),
    elim=st.booleans(), mellowness=st.sampled_from([0.1, 1.0, 3.0]), min_cost=st.sampled_from([-3.0, -1.0]),
    max_cost=st.sampled_from([1.0, 3.0]), bag_size=st.just(3), cover_size=st.just(2))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trained_with=explorations, now=explorations)
def test_a_trained_model_loads_under_any_policy_file_of_the_same_structure(
        tmp_path: Path, trained_with: Exploration, now: Exploration) -> None:
    """What ``tunable_args`` hands VW at load must be what VW takes: VW stores most explorer
    parameters in the model (gamma_scale, mellowness, elim, the cost range) and refuses to
    load it with other values, so a policy file changing one of them must not stop the
    served model from loading (it applies from the next retrain)."""
    now = now.model_copy(update={"algorithm": trained_with.algorithm})
    path = _trained(tmp_path / f"{abs(hash((trained_with, now)))}.vw", trained_with)
    model = VWModel.load(path, exploration=now)
    assert model.exploration_note is None  # the same structure: no "explores as trained"
    pmf = model.pmf(SHARED, ACTIONS)
    assert abs(sum(pmf) - 1) < 1e-6


def test_vw_refuses_a_stored_explorer_parameter_at_load_which_is_why_it_is_not_tunable(tmp_path: Path) -> None:
    """The fact ``tunable_args`` rests on (if VW ever takes them, they can become tunable)."""
    for trained_with, other in ((Exploration(algorithm="regcbopt"), ["--mellowness", "0.3"]),
                                (Exploration(algorithm="squarecb"), ["--gamma_scale", "100"])):
        path = _trained(tmp_path / f"{trained_with.algorithm}.vw", trained_with)
        with pytest.raises(RuntimeError, match="Disagreeing option values"):
            VWModel(other, "x", path)
        assert VWModel.load(path, exploration=trained_with).pmf(SHARED, ACTIONS)


def test_a_regcb_model_under_a_regcbopt_policy_file_says_it_explores_as_trained(tmp_path: Path) -> None:
    path = _trained(tmp_path / "regcb.vw", Exploration(algorithm="regcb"))
    model = VWModel.load(path, exploration=Exploration(algorithm="regcbopt"))
    assert model.exploration_note is not None and "explores as trained (regcb)" in model.exploration_note
    opt = _trained(tmp_path / "opt.vw", Exploration(algorithm="regcbopt"))
    assert VWModel.load(opt, exploration=Exploration(algorithm="regcbopt")).exploration_note is None


def test_vw_itself_runs_the_shipped_arguments() -> None:
    vowpalwabbit.Workspace(" ".join([*load_policy(REPO / "config" / "policy.yaml").vw_args(), "--quiet"])).finish()
