"""DSJSON: the export trains in VW's own CLI unchanged; imports round-trip."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bandit.decide.decider import Decider
from bandit.log.dsjson import DSJSONError, export_dsjson, import_dsjson
from bandit.log.store import DecisionStore
from bandit.learn.training import train_dsjson, train_from_log
from conftest import fill
from vwtext import former_text_lines




def export(decider: Decider) -> tuple[str, object]:
    buf = io.StringIO()
    stats = export_dsjson(decider.store, buf, decider.config.current.policy.reward)
    return buf.getvalue(), stats


def test_export_fields_and_vw_cli_trains_on_it(decider: Decider, tmp_path: Path) -> None:
    fill(decider)
    text, stats = export(decider)
    assert stats.written == 108 and stats.skipped_inactive == 12
    first = json.loads(text.splitlines()[0])
    for key in ("_label_cost", "_label_probability", "_labelIndex", "_label_Action", "a", "p", "c",
                "EventId", "Timestamp", "VWState"):
        assert key in first
    assert "_multi" in first["c"] and first["a"][0] == first["_labelIndex"] + 1
    assert first["p"][0] == pytest.approx(first["_label_probability"])
    path = tmp_path / "log.json"
    path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "vowpalwabbit", "--dsjson", "--cb_explore_adf", "-d", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "number of examples = 108" in out.stderr + out.stdout


def test_dsjson_trained_model_scores_live_text_features_identically(decider: Decider) -> None:
    """Training through DSJSON and through the VW text lines scoring wrote before on the same
    events gives the same policy: live features mean what they meant to earlier models."""
    import vowpalwabbit

    fill(decider, 60)
    policy = decider.config.current.policy
    model, n = train_from_log(decider.store, policy)
    assert n == 54
    ws_text = vowpalwabbit.Workspace(" ".join([*policy.vw_args(), "--quiet"]))
    text, _ = export(decider)
    for line in text.splitlines():
        ws_text.learn(_text_lines(json.loads(line)))
    rec = decider.store.get_decision("e1")
    probe = former_text_lines(rec.payload["shared"], rec.payload["actions"])
    assert model.pmf(rec.payload["shared"], rec.payload["actions"]) == pytest.approx(ws_text.predict(probe), abs=1e-5)


def _text_lines(obj: dict) -> list[str]:
    shared = {k: v for k, v in obj["c"].items() if k != "_multi"}
    label = (obj["_labelIndex"], obj["_label_cost"], obj["_label_probability"])
    return former_text_lines(shared, obj["c"]["_multi"], label)


def test_import_round_trip_is_lossless_and_idempotent(decider: Decider, settings, tmp_path: Path) -> None:
    fill(decider)
    text, _ = export(decider)
    other = DecisionStore(f"sqlite:///{tmp_path / 'other.db'}")
    cfg = decider.config.current.policy.reward
    stats = import_dsjson(other, text.splitlines(), cfg)
    assert (stats.read, stats.new) == (108, 108)
    assert import_dsjson(other, text.splitlines(), cfg).new == 0
    buf = io.StringIO()
    export_dsjson(other, buf, cfg)
    strip = lambda s: [{k: v for k, v in json.loads(x).items() if k != "VWState"} for x in s.splitlines()]  # noqa: E731
    assert strip(buf.getvalue()) == strip(text)
    rec = other.get_decision("e1")
    assert rec.source == "import" and rec.action_ids == decider.store.get_decision("e1").action_ids


PERSONALIZER_LINE = json.dumps({
    "_label_cost": -1.0, "_label_probability": 0.8, "_label_Action": 2, "_labelIndex": 1,
    "o": [{"v": 1.0, "EventId": "p1", "ActionTaken": False}],
    "Timestamp": "2022-09-01T10:11:12.1234567Z", "Version": "1", "EventId": "p1", "a": [2, 1],
    "c": {"User": {"tier": "gold"}, "_multi": [{"_tag": "news", "f": {"k": "a"}}, {"_tag": "sports", "f": {"k": "b"}}]},
    "p": [0.8, 0.2], "VWState": {"m": "abc/def"}})


def test_import_personalizer_history_and_train_on_it(store: DecisionStore, live) -> None:
    cfg = live.current.policy.reward.model_copy(update={"scale": 1.0})
    stats = import_dsjson(store, [PERSONALIZER_LINE, ""], cfg)
    assert stats.new == 1
    rec = store.get_decision("p1")
    assert rec.action_ids == ["news", "sports"] and rec.chosen_id == "sports" and rec.probability == 0.8
    assert [o.value for o in store.outcomes_for("p1")] == [1.0]
    model, n = train_dsjson(["--cb_explore_adf", "--epsilon", "0.1"], [PERSONALIZER_LINE])
    assert n == 1


def test_a_bad_line_imports_nothing_and_names_the_line(store: DecisionStore, live) -> None:
    cfg = live.current.policy.reward
    with pytest.raises(DSJSONError, match="line 2: field 'a': indices must be 1..2"):
        import_dsjson(store, [PERSONALIZER_LINE, PERSONALIZER_LINE.replace('"a": [2, 1]', '"a": [9, 1]')], cfg)
    assert store.count_decisions() == 0


@pytest.mark.parametrize("algorithm", ["epsilon", "softmax", "bag", "cover", "squarecb", "regcb"])
def test_every_explorer_trains_and_gives_a_pmf_over_eligible_offers(decider: Decider, algorithm: str) -> None:
    from bandit.config.policyfile import Exploration, PolicyFile

    fill(decider, 40)
    policy = PolicyFile(exploration=Exploration(algorithm=algorithm))
    model, n = train_from_log(decider.store, policy)
    rec = decider.store.get_decision("e1")
    pmf = model.pmf(rec.payload["shared"], rec.payload["actions"])
    assert n == 36 and len(pmf) == len(rec.action_ids) and sum(pmf) == pytest.approx(1.0)
    assert all(p >= 0 for p in pmf)


def test_warm_start_continues_from_the_saved_model(decider: Decider, tmp_path) -> None:
    from bandit.log.dsjson import dsjson_lines
    from bandit.config.policyfile import PolicyFile

    fill(decider, 40)
    policy = PolicyFile()
    lines = list(dsjson_lines(decider.store, policy.reward))
    first, n = train_dsjson(policy.vw_args(), lines[:20])
    first.save(tmp_path / "first.vw")
    rec = decider.store.get_decision("e1")
    score = lambda m: m.pmf(rec.payload["shared"], rec.payload["actions"])  # noqa: E731
    same, n0 = train_dsjson([], [], warm_start=tmp_path / "first.vw")
    assert n == 20 and n0 == 0 and score(same) == pytest.approx(score(first))
    more, n2 = train_dsjson([], lines[20:], warm_start=tmp_path / "first.vw")
    fresh, _ = train_dsjson(policy.vw_args(), lines[20:])
    more.save(tmp_path / "more.vw")
    fresh.save(tmp_path / "fresh.vw")
    assert n2 == len(lines) - 20 and more.args == first.args
    assert (tmp_path / "more.vw").read_bytes() != (tmp_path / "fresh.vw").read_bytes()  # it kept what it knew
