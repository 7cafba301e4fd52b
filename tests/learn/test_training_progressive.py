"""Progressive validation (``bandit.learn.progressive``): each decision is scored by the learner
trained, as the retrain trains, on exactly the decisions before it."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from bandit.config.policyfile import PolicyFile, Retrain
from bandit.decide.vw import VWModel
from bandit.domain.outcomes import Outcome, RewardConfig
from bandit.learn.evaluation import eval_set
from bandit.decide.sampling import normalized
from bandit.learn.ope import Ragged
from bandit.learn.progressive import driver_rows, normalized_rows, one_pass, progressive_matrix
from bandit.learn.training import train_dsjson, train_dsjson_file
from bandit.log.dsjson import to_dsjson
from bandit.log.records import DecisionRecord

CFG = RewardConfig(window_hours=1)
T0 = 1_800_000_000.0
ARGS = PolicyFile().retrain_args()


def window(n: int, seed: int = 0) -> list[tuple[DecisionRecord, list[Outcome]]]:
    """``n`` decisions over 1 to 3 offers; offer ``o1`` is accepted when ``x`` is high."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        ids = ["no_offer", *[f"o{k}" for k in range(1, rng.randint(1, 3) + 1)]]
        pmf = [1 / len(ids)] * len(ids)
        chosen = rng.randrange(len(ids))
        x = rng.random()
        rec = DecisionRecord(f"e{i}", T0 + i, "online", "m", ids, pmf, chosen, True,
                             payload={"offer_value": 10.0, "shared": {"context": {"x": x}},
                                      "actions": [{"offer": {f"id={a}": 1.0}} for a in ids]})
        outs = [Outcome(f"e{i}", "accepted", T0 + i + 1, value=10.0)] if ids[chosen] == "o1" and x > 0.5 else []
        pairs.append((rec, outs))
    return pairs


def trained_on(pairs: list[tuple[DecisionRecord, list[Outcome]]]) -> VWModel:
    lines = (json.dumps(to_dsjson(rec, outs, CFG)) for rec, outs in pairs)
    return train_dsjson(ARGS, lines)[0] if pairs else VWModel.fresh(ARGS)


def test_each_row_is_the_retrains_model_trained_on_the_decisions_before() -> None:
    pairs = window(80)
    evals = eval_set(pairs, CFG, as_of=T0 + 86400)
    pi = progressive_matrix(ARGS, evals, CFG)
    for i in (0, 1, 17, 79):
        rec = pairs[i][0]
        expected = trained_on(pairs[:i]).pmf(rec.payload["shared"], rec.payload["actions"]) \
            if len(rec.action_ids) > 1 else [1.0]
        assert pi[i, : len(rec.action_ids)] == pytest.approx(expected, abs=1e-6), i
    # it learned: late rows favour o1 where x is high, early rows do not
    late = [i for i in range(60, 80) if pairs[i][0].payload["shared"]["context"]["x"] > 0.5
            and len(pairs[i][0].action_ids) > 1]
    assert late and all(np.argmax(pi[i]) == 1 for i in late)
    first = len(pairs[0][0].action_ids)  # the fresh learner: every eligible action alike
    assert pi[0, :first] == pytest.approx([1 / first] * first, abs=1e-6)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 40), st.integers(0, 10_000))
def test_rows_are_probabilities_over_the_eligible_actions(n: int, seed: int) -> None:
    evals = eval_set(window(n, seed), CFG, as_of=T0 + 86400)
    pi = progressive_matrix(ARGS, evals, CFG)
    assert pi.shape[0] == n and np.allclose(pi.sum(axis=1), 1.0)
    assert np.all(pi[~evals.rewards.mask()] == 0) and np.all(pi >= 0)


@pytest.mark.parametrize(("algorithm", "passes"), [("regcbopt", 1), ("epsilon", 1), ("epsilon", 3)])
def test_the_drivers_predictions_while_training_are_the_matrix_rows(tmp_path: Path, algorithm: str,
                                                                     passes: int) -> None:
    """VW's driver, training on the window's DSJSON lines (``-p``), predicts each decision
    before learning it: ``driver_rows`` gives ``progressive_matrix``'s rows (to the six digits
    VW prints). With several passes (``--holdout_off``) pass 1 is the one-pass learner's."""
    policy = PolicyFile.model_validate({"exploration": {"algorithm": algorithm}, "retrain": {"passes": passes}})
    args = policy.retrain_args()
    pairs = window(300, seed=5)
    evals = eval_set(pairs, CFG, as_of=T0 + 86400)
    expected = Ragged.of(progressive_matrix(args, evals, CFG), evals.rewards.n_actions).values
    data, predictions = tmp_path / "events.json", tmp_path / "predictions.txt"
    data.write_text("".join(json.dumps(to_dsjson(rec, outs, CFG)) + "\n" for rec, outs in pairs))
    train_dsjson_file(args, data, predictions=predictions)
    assert sum(1 for line in predictions.read_text().splitlines() if line) == passes * len(pairs)
    rows = driver_rows(predictions, evals.rewards.n_actions)
    assert rows == pytest.approx(expected, abs=2e-6)
    assert np.array_equal(driver_rows(predictions, evals.rewards.n_actions, block=10), rows)  # lines cut by reads
    if algorithm == "epsilon":  # probabilities that are not 0 or 1, learned: the comparison has work to do
        assert len(np.unique(np.round(rows, 3))) > 5


def test_driver_rows_refuse_predictions_that_do_not_match_the_decisions(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("1:0.9,0:0.1\n\n0:1\n\n2:0.5,0:0.25,1:0.25\n\n")
    assert list(driver_rows(path, np.array([2, 1, 3]))) == pytest.approx([0.1, 0.9, 1.0, 0.25, 0.25, 0.5])
    for n_actions, message in (([2, 2, 3], "predicted 1 actions for decision 1"),
                               ([2, 1, 3, 1], "predicted 3 of the 4"),
                               ([2, 1, 2], "predicted 3 actions for decision 2")):
        with pytest.raises(ValueError, match=message):
            driver_rows(path, np.array(n_actions))
    path.write_text("1:0.9,1:0.1\n\n")
    with pytest.raises(ValueError, match="twice"):
        driver_rows(path, np.array([2]))
    path.write_text("2:0.9,0:0.1\n\n")
    with pytest.raises(ValueError, match="out of range"):
        driver_rows(path, np.array([2]))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(-0.5, 2.0, allow_nan=False) | st.just(0.0), min_size=1, max_size=6),
                min_size=1, max_size=8))
def test_normalized_rows_is_the_served_pmfs_normalization(rows: list[list[float]]) -> None:
    n_actions = np.array([len(r) for r in rows])
    starts = np.concatenate([[0], np.cumsum(n_actions)[:-1]])
    got = normalized_rows(np.array([p for r in rows for p in r]), n_actions, starts)
    assert list(got) == pytest.approx([p for r in rows for p in normalized(r)], abs=1e-12)


def test_one_pass_drops_what_several_passes_need() -> None:
    args = PolicyFile(retrain=Retrain(passes=3)).retrain_args()
    assert "--passes" in args and one_pass(args) == ARGS


def test_the_retrain_block_says_the_learners_rate_by_default() -> None:
    assert Retrain().vw_args() == []
    assert Retrain(optimizer="coin").vw_args() == ["--coin"]


@pytest.mark.parametrize("algorithm", ["epsilon", "regcbopt"])
def test_coin_only_where_the_explorer_still_explores_by_its_own_rule(algorithm: str) -> None:
    """RegCB-optimistic plays one action with probability 1; trained with --coin it put the
    same probability on every eligible action, so the retrain leaves coin out for it."""
    policy = PolicyFile.model_validate({"exploration": {"algorithm": algorithm}, "retrain": {"optimizer": "coin"}})
    pairs = window(80)
    evals = eval_set(pairs, CFG, as_of=T0 + 86400)
    pi = progressive_matrix(policy.retrain_args(), evals, CFG)
    late = [i for i in range(60, 80) if pairs[i][0].payload["shared"]["context"]["x"] > 0.5
            and len(pairs[i][0].action_ids) > 1]
    assert late and all(np.argmax(pi[i]) == 1 and pi[i, 1] > 0.5 for i in late)
    assert ("--coin" in policy.retrain_args()) == (algorithm == "epsilon")
