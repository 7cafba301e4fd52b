"""A model file cut short is refused, not served: VW reads weights to the end of the file,
so a truncated model loads and scores with part of them; the checksum saved beside it
(``VWModel.save``) catches it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bandit.config.policyfile import Exploration, PolicyFile
from bandit.decide.decider import ModelSlot
from bandit.decide.features import offer_features
from bandit.decide.vw import ColdStart, ModelIntegrityError, VWModel, checksum_file
from bandit.deploy.models import FileModelSource, ModelManager

SHARED = {"context": {"channel=phone": 1.0}, "user": {"tier=gold": 1.0}}


def trained(path: Path) -> Path:
    model = VWModel.fresh(PolicyFile().vw_args())
    for k in range(300):
        actions = [offer_features(None), {"offer": {f"id=o{k % 17}": 1.0, "value": 2.0}}]
        model.learn({**SHARED, "history": {f"n{k}": 1.0}}, actions, 1, -1.0 if k % 3 else 1.0, 0.5)
    model.save(path)
    return path


def test_a_truncated_model_is_refused(tmp_path: Path) -> None:
    path = trained(tmp_path / "model.vw")
    assert checksum_file(path).is_file()
    VWModel.load(path)  # whole: loads
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.9)])
    with pytest.raises(ModelIntegrityError, match="does not match its checksum model.vw.sha256"):
        VWModel.load(path)


def test_the_service_keeps_serving_what_it_served_when_a_truncated_model_lands(tmp_path: Path) -> None:
    path = trained(tmp_path / "model.vw")
    manager = ModelManager(ModelSlot(ColdStart(0.1)), FileModelSource(path), tmp_path / "models", Exploration)
    good = manager.start()
    assert good.source == "file"
    model = VWModel.load(path)
    model.learn(SHARED, [offer_features(None), {"offer": {"id=x": 1.0}}], 1, -1.0, 0.5)
    model.save(path)  # a new version, then cut short (the checksum is the whole file's)
    path.write_bytes(path.read_bytes()[:-64])
    assert not manager.refresh()
    assert manager.status.version == good.version and "truncated or altered" in manager.status.last_error
