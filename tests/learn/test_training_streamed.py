"""The streamed retrain (``flows.retrain.train_window`` / ``evaluate_window``) against the
path that held the window as records (``iter_joined`` filtered by ``learnable``, then
``train_candidate`` and ``compare_in_detail``): the same log gives the same candidate (byte
for byte), the same estimates and the same breakdowns, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from bandit.config.loader import load_config
from bandit.config.settings import get_settings
from bandit.decide.vw import VWModel
from bandit.deploy.runtime import open_store
from bandit.learn.evaluation import eval_set
from bandit.learn.ope import Ragged
from bandit.learn.progressive import progressive_matrix
from bandit.learn.training import TrainingFailed, train_dsjson, train_dsjson_stream, vw_argv
from bandit.learn.window import split_window
from bandit.log.dsjson import to_dsjson
from bandit.log.reader import iter_joined
from bandit.log.records import learnable
from tests.simlog import REPO, simulated_log


def _digest(model: VWModel, path: Path) -> str:
    return model.save(path)


def _same(a: float, b: float, rel: float = 0.0) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=rel)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


def _window(tmp_path: Path, database_url: str | None) -> tuple:
    """A simulated log's settings, config, window and learnable decisions (oldest first)."""
    policy, _ = simulated_log(tmp_path, None, day=1, database_url=database_url)
    settings = get_settings(home=tmp_path / "home", salt="x", policy=policy, catalog=REPO / "config/offers.yaml",
                            database_url=database_url)
    cfg = load_config(settings)
    reward_cfg = cfg.policy.reward
    # the reward windows of the log's second half are still open at as_of: not learned from
    as_of = datetime(2026, 11, 1, tzinfo=UTC).timestamp() + 1.5 * 86400 + reward_cfg.window_hours * 3600
    window = split_window(as_of, 7, 0.25)
    store = open_store(settings)
    try:
        everything = list(iter_joined(store.engine))
    finally:
        store.close()
    pairs = [(rec, outs) for rec, outs in everything if learnable(rec, reward_cfg, as_of)]
    assert 1000 < len(pairs) < len(everything)  # the filter has work to do
    return settings, cfg, reward_cfg, as_of, window, pairs


def _same_comparison(old, new, rel: float = 0.0) -> None:  # noqa: ANN001 - two Comparisons
    """Equal estimates (``rel``: to that relative tolerance)."""
    assert new.n == old.n
    assert set(new.policies) == set(old.policies)
    for name, ev in old.policies.items():
        got, want = new.policies[name].as_metrics(), ev.as_metrics()
        assert got.keys() == want.keys() and all(_same(got[k], want[k], rel) for k in want), (name, got, want)
    for pair, by_estimator in old.differences.items():
        for est, d in by_estimator.items():
            assert _same(new.differences[pair][est].value, d.value, rel) and \
                _same(new.differences[pair][est].se, d.se, rel)


def test_the_streamed_retrain_gives_the_held_windows_candidate_and_estimates(tmp_path: Path,
                                                                             database_url: str | None) -> None:
    from flows.retrain import compare_in_detail, count_window, evaluate_window, train_candidate, train_window

    settings, cfg, reward_cfg, as_of, window, pairs = _window(tmp_path, database_url)
    train_part, test_part = window.split(pairs)

    # the reference: the lines as the held path made them (json.dumps of each record's
    # object, context in the middle), through VW's driver reading a file
    order = ["_label_cost", "_label_probability", "_labelIndex", "_label_Action", "Timestamp", "Version", "EventId",
             "a", "c", "p", "VWState", "_ob"]
    reference = [json.dumps({k: d[k] for k in order}, separators=(",", ":"))
                 for d in (to_dsjson(rec, outs, reward_cfg) for rec, outs in train_part)]
    held_model, held_n = train_dsjson(cfg.policy.vw_args(), reference)
    assert _digest(train_candidate(cfg.policy.vw_args(), reward_cfg, train_part)[0], tmp_path / "c.vw") == \
        _digest(held_model, tmp_path / "held.vw")
    n = count_window(settings, reward_cfg, window)
    assert n == len(pairs)
    trained = train_window(settings, cfg.policy.vw_args(), reward_cfg, window, window.cut(n))
    assert trained.trained_on == held_n == len(train_part)
    assert trained.last == (train_part[-1][0].ts, train_part[-1][0].event_id)
    assert _digest(trained.model, tmp_path / "streamed.vw") == _digest(held_model, tmp_path / "held.vw")

    champion = VWModel.load(tmp_path / "held.vw")  # the champion's scores are streamed too
    old, old_verdict, old_details = compare_in_detail(cfg, held_model, champion, test_part, as_of, train_part)
    new, new_verdict, new_details = evaluate_window(settings, cfg, trained, champion, window)
    assert new.n == old.n == len(test_part)
    assert new_verdict == old_verdict
    assert set(new.policies) == set(old.policies) == {"candidate", "champion", "no_offer", "uniform", "rules"}
    _same_comparison(old, new)
    assert old_details is not None and new_details is not None
    a, b = old_details.decisions, new_details.decisions
    assert list(a.columns) == list(b.columns) and len(a) == len(b) == len(pairs)
    for column in a.columns:
        assert [*map(str, a[column])] == [*map(str, b[column])], column
    assert old_details.mix.equals(new_details.mix)
    assert np.allclose(old_details.lift.select_dtypes("number").to_numpy(dtype=float),
                       new_details.lift.select_dtypes("number").to_numpy(dtype=float), equal_nan=True, rtol=0, atol=0)


def test_a_first_models_progressive_evaluation_from_the_training_pass_gives_the_held_windows_estimates(
        tmp_path: Path) -> None:
    """No champion: the candidate is trained on the whole window and judged by progressive
    validation over it. The streamed retrain takes the candidate's rows from what VW's driver
    predicted while it trained (``bandit.learn.progressive.driver_rows``) and the baselines'
    from the same pass; the held path replays the window through VW from Python
    (``progressive_matrix``). Same rows and estimates up to the six digits VW prints."""
    from flows.retrain import _baselines, compare_in_detail, count_window, evaluate_window, train_window

    settings, cfg, reward_cfg, as_of, window, pairs = _window(tmp_path, None)
    vw_args = cfg.policy.retrain_args()
    n = count_window(settings, reward_cfg, window)
    trained = train_window(settings, vw_args, reward_cfg, window, n, progressive=_baselines(cfg))
    evals = eval_set(pairs, reward_cfg, as_of)
    replayed = progressive_matrix(vw_args, evals, reward_cfg)
    assert trained.progressive is not None
    assert trained.progressive == pytest.approx(Ragged.of(replayed, evals.rewards.n_actions).values, abs=2e-6)
    # the learner learned as it went (its first row uniform; later, some rows mostly on no_offer, some
    # mostly on an offer): the rows have work to do
    counts = evals.rewards.n_actions
    no_offer = Ragged(trained.progressive, counts).at(np.zeros(len(counts), dtype=np.int64))[counts > 1]
    assert no_offer[0] == pytest.approx(1 / counts[counts > 1][0])
    assert no_offer.max() > 0.8 and no_offer.min() < 0.2, (no_offer.min(), no_offer.max())
    old, old_verdict, old_details = compare_in_detail(cfg, trained.model, None, pairs, as_of, pairs,
                                                      progressive_args=vw_args)
    new, new_verdict, new_details = evaluate_window(settings, cfg, trained, None, window)
    assert new.n == old.n == len(pairs) and new_verdict == old_verdict
    assert list(new.policies) == list(old.policies) == ["candidate", "no_offer", "uniform", "rules"]
    for name in ("no_offer", "uniform", "rules"):  # scored as the window streamed into VW: exactly
        assert new.policies[name].as_metrics() == pytest.approx(old.policies[name].as_metrics(), rel=0, abs=0,
                                                               nan_ok=True), name
    _same_comparison(old, new, rel=1e-5)
    assert old_details is not None and new_details is not None
    assert len(new_details.decisions) == len(old_details.decisions) == 2 * len(pairs)
    a, b = old_details.mix, new_details.mix
    assert list(a.columns) == list(b.columns) and a.select_dtypes(exclude="number").equals(b.select_dtypes(exclude="number"))
    assert np.allclose(a.select_dtypes("number").to_numpy(dtype=float), b.select_dtypes("number").to_numpy(dtype=float),
                       rtol=1e-5, atol=1e-6)


def test_streamed_training_equals_training_on_the_file_and_reports_vws_refusal(tmp_path: Path) -> None:
    lines = ['{"_label_cost":-1,"_label_probability":0.5,"_labelIndex":%d,"a":[1,2],"p":[0.5,0.5],'
             '"c":{"u":{"x":%d},"_multi":[{"o":{"id=a":1}},{"o":{"id=b":1}}]}}' % (i % 2, i % 5) for i in range(300)]
    args = ["--cb_explore_adf", "--epsilon", "0.2"]
    streamed, n = train_dsjson_stream(args, iter(lines), chunk=7)
    filed, m = train_dsjson(args, lines)
    assert n == m == 300
    assert streamed.save(tmp_path / "a.vw") == filed.save(tmp_path / "b.vw")
    # several passes: VW's cache beside the model, not ``/dev/stdin.cache`` (shared by every retrain, or unwritable)
    passes = [*args, "--passes", "2", "--cache", "--holdout_off"]
    argv = vw_argv(passes, "/dev/stdin", tmp_path / "m.vw")
    assert "--cache" not in argv and argv[argv.index("--cache_file") + 1] == str(tmp_path / "m.cache")
    streamed, _ = train_dsjson_stream(passes, iter(lines), chunk=7)
    assert streamed.save(tmp_path / "c.vw") == train_dsjson(passes, lines)[0].save(tmp_path / "d.vw") != \
        filed.save(tmp_path / "b.vw")
    with pytest.raises(TrainingFailed, match="no_such_option"):  # VW's own message
        train_dsjson_stream([*args, "--no_such_option"], iter(lines * 100))
