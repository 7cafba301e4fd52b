"""A history imported from Personalizer is usable for everything that learns: evaluation scores
it, retrain and tune run on it (before one featurization path, retrain crashed scoring its
string features)."""

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bandit.config.policyfile import PolicyFile
from bandit.config.settings import Settings, get_settings
from bandit.deploy.runtime import open_store
from bandit.learn.evaluation import eval_set_from_store, model_policy
from bandit.learn.training import train_dsjson, train_from_log
from bandit.learn.tuning import Grid
from bandit.log.dsjson import dsjson_lines, import_dsjson
from conftest import REPO
from personalizer import BEST, personalizer_history

START = datetime(2026, 11, 10, tzinfo=UTC)
AS_OF = (START + timedelta(days=6)).timestamp()  # every reward window (72 h) closed
N, SKIPPED = 1000, 100


def _imported(tmp_path: Path, migrated_db: Path | None = None) -> Settings:
    """A home whose log holds only the imported history (its policy file's gate needs 100
    decisions), with a fresh MLflow store when ``migrated_db`` is given."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("promotion: {min_events: 100, min_ess: 10}\n")
    settings = get_settings(home=tmp_path / "home", salt="x", policy=policy, catalog=REPO / "config/offers.yaml")
    settings.ensure_home()
    if migrated_db is not None:
        shutil.copy(migrated_db, tmp_path / "home" / "mlflow.db")
    store = open_store(settings)
    try:
        stats = import_dsjson(store, personalizer_history(N, START), PolicyFile().reward)
    finally:
        store.close()
    assert (stats.new, stats.not_learned) == (N, SKIPPED)
    return settings


def test_evaluation_scores_an_imported_history_with_models_trained_on_it(tmp_path: Path) -> None:
    """``model_policy`` scores the logged features (strings, booleans, nested objects,
    arrays) through the reader training used: the policy file's model and one crossing
    the history's own namespaces (``GUser`` with ``Offer`` and ``Article``), which learned
    the string feature ``timeOfDay`` and prefers each time's best action."""
    settings = _imported(tmp_path)
    store = open_store(settings)
    policy = PolicyFile()
    model, n = train_from_log(store, policy)
    crossed, _ = train_dsjson(["--cb_explore_adf", "--epsilon", "0.1", "--cb_type", "ips", "-q", "GO", "-q", "GA"],
                              dsjson_lines(store, policy.reward))
    evals = eval_set_from_store(store, policy.reward, None, None, as_of=AS_OF)
    store.close()
    assert n == len(evals) == N - SKIPPED
    for scorer in (model, crossed):
        pi = model_policy(scorer)(evals)
        assert pi.shape == (N - SKIPPED, 4) and np.allclose(pi.sum(axis=1), 1.0)
    pi = model_policy(crossed)(evals)
    times = [rec.payload["shared"]["GUser"]["timeOfDay"] for rec in evals.records]
    for when, best in BEST.items():
        rows = [i for i, t in enumerate(times) if t == when]
        assert pi[rows, best].mean() > 0.8, when


def test_retrain_and_tune_run_on_an_imported_history(tmp_path: Path, migrated_db: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from flows.retrain import retrain
    from flows.tune import tune

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    settings = _imported(tmp_path, migrated_db)

    result = retrain(settings, as_of=AS_OF)
    # a first model: trained on the whole window and judged by progressive validation over it
    assert result.version == "1" and result.trained_on == result.evaluated_on == N - SKIPPED, result
    run = mlflow.get_run(result.run_id)
    assert "candidate.snips" in run.data.metrics and "plots_error" not in run.data.tags
    assert sum(v for k, v in run.data.metrics.items() if k.startswith("candidate.mix.")) == pytest.approx(1.0)
    assert {k.removeprefix("logged.mix.") for k in run.data.metrics if k.startswith("logged.mix.")} == {
        "news", "a1", "sports", "a3"}

    grid = Grid(explorers=({"algorithm": "epsilon", "epsilon": 0.1}, {"algorithm": "softmax"}),
                cb_types=("ips", "mtr"), interactions=(("co", "uo"),), learning_rates=(0.5,))
    tuned = tune(settings, as_of=AS_OF, grid=grid)
    assert tuned.trained_on + tuned.evaluated_on == N - SKIPPED and tuned.best is not None, tuned.reasons
    assert len(tuned.child_runs) >= 3
