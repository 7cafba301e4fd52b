"""A served model explores as the policy file says now: its explorer's parameters apply at
load and follow a reload of the policy file; a model trained with another explorer keeps its
own, and the status says so until a retrain."""

from __future__ import annotations

from pathlib import Path

from bandit.config.policyfile import Exploration
from bandit.decide.decider import ModelSlot
from bandit.decide.features import offer_features
from bandit.decide.vw import ColdStart, VWModel
from bandit.deploy.models import FileModelSource, ModelManager

SHARED = {"context": {"channel=phone": 1.0}}
ACTIONS = [offer_features(None), {"offer": {"id=a": 1.0}}, {"offer": {"id=b": 1.0}}, {"offer": {"id=c": 1.0}}]


def trained(path: Path, explorer: list[str]) -> Path:
    """A model that learned no_offer is best (it never pays here), saved to ``path``."""
    model = VWModel.fresh(["--cb_explore_adf", *explorer, "--random_seed", "1"])
    for k in range(200):
        model.learn(SHARED, ACTIONS, k % 4, 0.0 if k % 4 == 0 else 1.0, 0.25)
    model.save(path)
    return path


class Policy:
    """The policy file's exploration as a reload would change it."""

    def __init__(self, exploration: Exploration):
        self.exploration = exploration

    def __call__(self) -> Exploration:
        return self.exploration


def test_the_policy_files_epsilon_reaches_the_served_model_and_follows_a_reload(tmp_path: Path) -> None:
    path = trained(tmp_path / "m.vw", ["--epsilon", "0.1"])
    policy = Policy(Exploration(algorithm="epsilon", epsilon=0.3))
    slot = ModelSlot(ColdStart(0.1))
    manager = ModelManager(slot, FileModelSource(path), tmp_path / "models", policy)
    assert manager.start().source == "file"
    pmf = slot.current.pmf(SHARED, ACTIONS)
    assert abs(pmf[0] - (0.7 + 0.3 / 4)) < 1e-6 and manager.status.exploration is None  # not the trained 0.1
    assert not manager.follow_exploration()  # nothing changed
    policy.exploration = Exploration(algorithm="epsilon", epsilon=0.05)
    assert manager.follow_exploration()
    assert abs(slot.current.pmf(SHARED, ACTIONS)[0] - (0.95 + 0.05 / 4)) < 1e-6
    assert manager.status.version == manager.source.current_version()


def test_another_explorer_keeps_the_trained_one_and_says_so(tmp_path: Path) -> None:
    path = trained(tmp_path / "m.vw", ["--epsilon", "0.1"])
    policy = Policy(Exploration(algorithm="bag", bag_size=3))
    slot = ModelSlot(ColdStart(0.1))
    manager = ModelManager(slot, FileModelSource(path), tmp_path / "models", policy)
    status = manager.start()
    assert status.exploration == "explores as trained (epsilon); the policy file's bag 3 applies from the next retrain"
    assert abs(slot.current.pmf(SHARED, ACTIONS)[0] - (0.9 + 0.1 / 4)) < 1e-6  # as trained, not nonsense
    assert status.as_dict()["exploration"] == status.exploration


def test_cold_start_follows_the_policy_files_cold_start_epsilon(tmp_path: Path) -> None:
    policy = Policy(Exploration(cold_start_epsilon=0.2))
    slot = ModelSlot(ColdStart(0.1))
    manager = ModelManager(slot, None, tmp_path / "models", policy)
    assert manager.start().source == "cold_start"
    assert abs(slot.current.pmf(SHARED, ACTIONS)[0] - (0.8 + 0.2 / 4)) < 1e-9
    policy.exploration = Exploration(cold_start_epsilon=0.4)
    assert manager.follow_exploration()
    assert abs(slot.current.pmf(SHARED, ACTIONS)[0] - (0.6 + 0.4 / 4)) < 1e-9
