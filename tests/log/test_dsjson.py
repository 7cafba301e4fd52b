"""DSJSON: the export trains in VW's own CLI unchanged; imports round-trip."""

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bandit.decide.decider import Decider
from bandit.log.dsjson import DSJSONError, export_dsjson, import_dsjson
from bandit.log.store import DecisionStore
from bandit.learn.training import train_dsjson, train_from_log
from bandit.config.policyfile import PolicyFile
from conftest import fill
from personalizer import IDS, personalizer_history
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
    """Export, import, export: the same lines, byte for byte."""
    fill(decider)
    text, _ = export(decider)
    other = DecisionStore(f"sqlite:///{tmp_path / 'other.db'}")
    cfg = decider.config.current.policy.reward
    stats = import_dsjson(other, text.splitlines(), cfg)
    assert (stats.read, stats.new) == (108, 108)
    assert import_dsjson(other, text.splitlines(), cfg).new == 0
    buf = io.StringIO()
    export_dsjson(other, buf, cfg)
    assert buf.getvalue() == text
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


# -- any history: every kind of feature, every way of naming an action ---------------------------

def _export_text(store: DecisionStore, cfg) -> tuple[str, object]:
    buf = io.StringIO()
    stats = export_dsjson(store, buf, cfg)
    return buf.getvalue(), stats


def test_a_personalizer_history_round_trips_with_its_features_and_ids(store: DecisionStore, live,
                                                                      tmp_path: Path) -> None:
    """Strings, booleans, nulls, nested objects, arrays, several namespaces, ids in ``_tag``, a
    top-level ``id`` and a namespace's ``id``, ``_skipLearn``, no ``_ob``: the export gives
    every learnable event's context back exactly, and export, import, export is the same text."""
    cfg = live.current.policy.reward
    lines = personalizer_history(60, datetime(2026, 11, 10, tzinfo=UTC))
    stats = import_dsjson(store, lines, cfg)
    assert (stats.read, stats.new, stats.not_learned) == (60, 60, 6)
    assert store.get_decision("p0").action_ids == IDS == ["news", "a1", "sports", "a3"]
    first, export_stats = _export_text(store, cfg)
    assert (export_stats.written, export_stats.skipped_inactive) == (54, 6)
    originals = {json.loads(x)["EventId"]: json.loads(x) for x in lines}
    for line in first.splitlines():
        out = json.loads(line)
        src = originals[out["EventId"]]
        assert out["c"] == src["c"]  # every feature as it was, action ids included
        for key in ("_label_cost", "_label_probability", "_labelIndex", "_label_Action", "a", "p", "VWState"):
            assert out[key] == src[key], key
        assert out["_ob"]["ids"] == IDS and out["Timestamp"] == src["Timestamp"][:23] + "Z"
    again = DecisionStore(f"sqlite:///{tmp_path / 'again.db'}")
    import_dsjson(again, first.splitlines(), cfg)
    assert _export_text(again, cfg)[0] == first


def test_skip_learn_events_are_kept_but_never_learned_from(store: DecisionStore, live) -> None:
    """``_skipLearn: true`` is Personalizer's deferred event never activated: in the log as a
    decision never shown (``activated`` false), so neither exported, trained nor evaluated
    on (``bandit.log.records.learnable``); one without a cost has no reward outcome."""
    from bandit.log.records import learnable

    cfg = live.current.policy.reward
    lines = personalizer_history(20, datetime(2026, 11, 10, tzinfo=UTC))
    import_dsjson(store, lines, cfg)
    skipped = [json.loads(x) for x in lines if json.loads(x).get("_skipLearn")]
    assert [s["EventId"] for s in skipped] == ["p9", "p19"] and "_label_cost" not in skipped[0]
    for s in skipped:
        rec = store.get_decision(s["EventId"])
        assert not rec.activated and not learnable(rec, cfg, as_of=None)
    assert store.outcomes_for("p9") == [] and [o.value for o in store.outcomes_for("p19")] == [0.0]
    assert store.get_decision("p8").activated
    _, n = train_from_log(store, PolicyFile())
    assert n == 18


def test_action_ids_come_from_tag_id_or_a_namespace_id_and_are_unique(store: DecisionStore, live) -> None:
    cfg = live.current.policy.reward
    line = json.loads(PERSONALIZER_LINE)
    line["c"]["_multi"] = [{"Offer": {"id": "a0", "price": 3}}, {"Id": "b1", "f": {"k": 1}},
                           {"_tag": "t2", "Offer": {"id": "ignored"}}, {"f": {"k": "no id"}}]
    line["a"], line["p"] = [2, 1, 3, 4], [0.8, 0.1, 0.05, 0.05]
    import_dsjson(store, [json.dumps(line)], cfg)
    assert store.get_decision("p1").action_ids == ["a0", "b1", "t2", "action4"]
    line["EventId"] = "p2"
    line["c"]["_multi"][1] = {"Offer": {"id": "a0"}}
    with pytest.raises(DSJSONError, match=r"^line 1: field 'c._multi\[1\]': action id 'a0' appears twice$"):
        import_dsjson(store, [json.dumps(line)], cfg)


def _line(**change) -> str:
    """PERSONALIZER_LINE with top-level fields replaced (``None`` removes one) or, by dotted
    path under ``c``, features set."""
    obj = json.loads(PERSONALIZER_LINE)
    for key, value in change.items():
        if key.startswith("c__"):
            *path, last = key[3:].split("__")
            node = obj["c"]
            for p in path:
                node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
            node[last] = value
        elif value is None:
            obj.pop(key)
        else:
            obj[key] = value
    return json.dumps(obj)


@pytest.mark.parametrize("line, message", [
    (_line(_outcomes=[{"_label_cost": 1, "_a": [0], "_p": [1.0]}]),
     "field '_outcomes': a conditional contextual bandit or slates event"),
    (_line(c___slots=[{"_id": "slot-1"}]), "field 'c._slots': a conditional contextual bandit or slates event"),
    (_line(c___multi__0___inc=[1]), r"field 'c._multi\[0\]._inc': a conditional contextual bandit"),
    (_line(pdf=[{"left": 0, "right": 1, "pdf_value": 1}]), "field 'pdf': a continuous-action event"),
    (_line(_label_ca={"action": 1.5}), "field '_label_ca': a continuous-action event"),
    (_line(pdrop=0.3), "field 'pdrop': an event kept with probability 1 - pdrop"),
    (PERSONALIZER_LINE.replace('{"_tag": "sports"', '{"__aid": 7, "_tag": "sports"'),
     r"field 'c._multi\[1\].__aid': a deduplicated action"),
    (_line(c___multi__1___multi=[{"x": 1}]), r"field 'c._multi\[1\]._multi': actions inside an action"),
    (_line(c__User__tags=["a", "b"]), "field 'c.User.tags\\[0\\]': a string in an array; VW reads arrays of numbers"),
    (_line(c__User__flags=[True]), r"field 'c.User.flags\[0\]': a boolean in an array"),
    (_line(c__User__grid=[[1, 2]]), r"field 'c.User.grid\[0\]': an array in an array"),
    (_line(c__User___label_cost=1), "field 'c.User._label_cost': a label inside the context"),
    (_line(c___multi__0___tag=5), r"field 'c._multi\[0\]._tag': must be a string, not a number"),
    (_line(c__User__huge=1e39), "field 'c.User.huge': 1e\\+39 is not a finite 32-bit float"),
    (_line(c__User__deep=json.loads('{"n":' * 40 + "1" + "}" * 40)), r"field 'c.User.deep(.n)+': nested deeper than 32"),
])
def test_what_cannot_be_learned_from_is_refused_naming_line_and_field_before_anything_is_written(
        store: DecisionStore, live, line: str, message: str) -> None:
    with pytest.raises(DSJSONError, match=f"^line 2: {message}"):
        import_dsjson(store, [PERSONALIZER_LINE.replace("p1", "p0"), line], live.current.policy.reward)
    assert store.count_decisions() == 0


@pytest.mark.parametrize("line, message", [
    ('{"EventId": "x", ', "not JSON: Expecting property name enclosed in double quotes"),
    (PERSONALIZER_LINE.replace('"k": "a"', '"k": NaN'), "not JSON: NaN is not a JSON number"),
    ("[1, 2]", "expected a JSON object"),
    (_line(EventId=None), "field 'EventId': missing"),
    (_line(Timestamp="yesterday"), "field 'Timestamp': Invalid isoformat string"),
    (_line(_skipLearn="yes"), "field '_skipLearn': must be true or false"),
    (_line(p=[0.8, 1.2]), r"field 'p': probabilities must be numbers in \[0, 1\]"),
    (_line(p=[0.0, 1.0], _label_probability=0.0), "field 'p': the action taken .a.0.. has probability 0"),
    (_line(a=[2, 2]), "field 'a': an action is listed twice"),
    (_line(a=[True, 1]), "field 'a': indices must be 1..2"),
    (_line(_label_probability=0.5), "field '_label_probability': 0.5 disagrees with p.0. = 0.8"),
    (_line(_label_cost=None), "field '_label_cost': missing"),
    (_line(_label_cost="high"), "field '_label_cost': must be a finite number"),
    (_line(_ob=[1]), "field '_ob': must be an object"),
    (_line(_ob={"ids": ["x"]}), "field '_ob.ids': must be 2 strings, one per action"),
    (_line(c={"_multi": [{"_tag": "x"}, 3]}), r"field 'c._multi\[1\]': an action must be a JSON object"),
])
def test_a_malformed_line_is_one_line_naming_line_and_field(store: DecisionStore, live, line: str,
                                                            message: str) -> None:
    with pytest.raises(DSJSONError, match=f"^line 2: {message}") as exc:
        import_dsjson(store, [PERSONALIZER_LINE.replace("p1", "p0"), line], live.current.policy.reward)
    assert "\n" not in str(exc.value) and store.count_decisions() == 0


def test_bytes_that_are_not_utf8_name_their_line(store: DecisionStore, live) -> None:
    with pytest.raises(DSJSONError, match="^line 2: not UTF-8 text"):
        import_dsjson(store, [PERSONALIZER_LINE.encode(), b'{"EventId": "\xff"}'], live.current.policy.reward)


def test_what_the_import_lets_through_vw_reads_as_it_says() -> None:
    """The import's own checks and VW's reader agree: for contexts built from every JSON
    value kind, those the checks accept VW reads as one example per action (the rest, VW
    refuses too, or crashes on: ``__aid``, which never reaches it)."""
    from hypothesis import given, settings as hsettings, strategies as st

    from bandit.log.dsjson_check import FieldError, check_features
    from bandit.log.vwjson import Reader, Unreadable

    reader = Reader()
    keys = st.sampled_from(["a", "tier", "_tag", "_text", "_x", "_label_cost", "_p", "_inc", "_slots", "id"])
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-1e3, 1e3), st.text(max_size=4))
    values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(keys, inner, max_size=3)), max_leaves=8)
    namespaces = st.dictionaries(keys, values, max_size=3)

    @hsettings(max_examples=300, deadline=None)
    @given(shared=namespaces, action=namespaces)
    def agree(shared: dict, action: dict) -> None:
        try:
            check_features(shared, "c", top=True)
            check_features(action, "c._multi[0]")
        except FieldError:
            return
        try:
            reader.check(shared, [action, {"o": {"k": 1}}])
        except Unreadable as exc:
            raise AssertionError(f"accepted by the import, refused by VW: {shared} {action}: {exc}") from exc

    agree()
