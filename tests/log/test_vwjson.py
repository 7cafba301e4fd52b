"""One featurization: training and scoring read the same DSJSON context with VW's own reader."""

import json
from datetime import timedelta

import pytest
import vowpalwabbit

from bandit.config.catalog import load_catalog
from bandit.config.policyfile import PolicyFile
from bandit.decide.features import offer_features, shared_features
from bandit.decide.vw import VWModel
from bandit.domain.context import History, OfferEvent
from bandit.learn.training import train_dsjson
from bandit.log.vwjson import READER_ARGS, Label, Reader, Unreadable, event
from conftest import NOW, REPO, request
from vwtext import former_text_lines, hashed

ARGS = PolicyFile().vw_args()


def _dsjson_ws() -> vowpalwabbit.Workspace:
    return vowpalwabbit.Workspace(" ".join([*ARGS, *READER_ARGS, "--quiet"]))


def _read(ws: vowpalwabbit.Workspace, text: str | list[str]) -> list:
    examples = ws.parse(text)
    out = hashed(examples)
    ws.finish_example(examples)
    return out


@pytest.mark.parametrize("over", [
    {},
    {"attributes": {"vip": True, "spend": 12.5, "segment": "Gold Plus", "churn_risk": False, "visits": 0}},
    {"interaction__intent": "Move House", "customer__products": ["mobile", "tv", "fiber"],
     "interaction__sentiment": -0.73},
])
def test_live_features_hash_as_the_former_text_lines(over: dict) -> None:
    """Every feature of a live request has the hash it had in the VW text lines scoring
    wrote before, in the same namespace; values agree to the text's 6 significant digits
    (DSJSON carries the full value, as training always read it)."""
    catalog = load_catalog(REPO / "config/offers.yaml")
    history = History(shown=(OfferEvent(offer_id="fiber_upgrade", at=NOW - timedelta(days=3)),),
                      last_complaint=NOW - timedelta(days=200))
    shared = shared_features(request(**over), history, NOW)
    actions = [offer_features(None), *(offer_features(o) for o in catalog.offers.values())]
    text_ws = vowpalwabbit.Workspace(" ".join([*ARGS, "--quiet"]))
    before = _read(text_ws, former_text_lines(shared, actions))
    now = _read(_dsjson_ws(), event(shared, actions))
    assert len(now) == len(before) == len(actions) + 1
    for old, new in zip(before, now, strict=True):
        assert old.keys() == new.keys()
        for ns in old:
            assert [h for h, _ in old[ns]] == [h for h, _ in new[ns]]
            assert [v for _, v in old[ns]] == pytest.approx([v for _, v in new[ns]], rel=1e-5)


def test_each_kind_of_json_value_is_the_feature_vw_text_would_name() -> None:
    """VW's JSON semantics, pinned: a string is key and value concatenated, ``true`` the key,
    ``false`` and ``null`` nothing, a number the key with its value, a nested object a
    namespace of its own, ``_`` keys no feature; spaces in a string become ``_``."""
    shared = {"User": {"timeOfDay": "morning", "vip": True, "churned": False, "gone": None, "visits": 3,
                       "Device": {"os": "mac os"}, "_note": "not a feature"},
              "topLevel": "x"}
    actions = [{"_tag": "a0", "Offer": {"id": "a0", "price": 2.5}}, {"Offer": {"id": "a1"}}]
    text = ["shared |User timeOfDaymorning vip visits:3 |Device osmac_os | topLevelx",
            "|Offer ida0 price:2.5", "|Offer ida1"]
    text_ws = vowpalwabbit.Workspace(" ".join([*ARGS, "--quiet"]))
    assert _read(_dsjson_ws(), event(shared, actions)) == _read(text_ws, text)


def test_arrays_are_read_by_position_and_strings_in_arrays_are_refused() -> None:
    reader = Reader()
    reader.check({"User": {"scores": [0.5, None, 2], "visits": [{"n": 1}, {"kind": "shop"}]}}, [{"o": {"x": 1}}])
    with pytest.raises(Unreadable, match="Unexpected token: std::string"):
        reader.check({"User": {"tags": ["a", "b"]}}, [{"o": {"x": 1}}])


def _history(n: int = 400) -> list[str]:
    """Morning callers take offer a0, evening callers a1: learnable only from a string feature."""
    lines = []
    for i in range(n):
        morning = i % 2 == 0
        chosen = i % 2 if i % 4 < 2 else 1 - i % 2  # each action taken either way
        good = chosen == (0 if morning else 1)
        shared = {"GUser": {"timeOfDay": "morning" if morning else "evening", "vip": i % 3 == 0,
                            "history": {"visits": [1, i % 5]}}}
        actions = [{"_tag": "a0", "Offer": {"id": "a0", "kind": "upgrade"}},
                   {"Offer": {"id": "a1", "kind": "warranty"}}]
        obj = json.loads(event(shared, actions, Label(chosen, -1.0 if good else 0.0, 0.5)))
        obj["p"] = [0.5, 0.5]
        lines.append(json.dumps(obj))
    return lines


def test_a_model_trained_on_string_features_scores_them() -> None:
    """Trained by VW's DSJSON driver, scored through the same reader: the string feature
    that decides the reward decides the scores."""
    model, n = train_dsjson([*ARGS[:1], "--epsilon", "0.1", "--cb_type", "ips", "-q", "GO"], _history())
    actions = [{"_tag": "a0", "Offer": {"id": "a0", "kind": "upgrade"}}, {"Offer": {"id": "a1", "kind": "warranty"}}]
    morning = model.pmf({"GUser": {"timeOfDay": "morning", "vip": False, "history": {"visits": [1, 0]}}}, actions)
    evening = model.pmf({"GUser": {"timeOfDay": "evening", "vip": False, "history": {"visits": [1, 0]}}}, actions)
    assert n == 400
    assert morning[0] > 0.9 and evening[1] > 0.9


def test_learning_online_reads_the_same_events_as_training() -> None:
    """``VWModel.learn`` (the studies' online learner) and the DSJSON driver learn the same
    weights from the same events."""
    lines = _history(60)
    trained, _ = train_dsjson(ARGS, lines)
    online = VWModel.fresh(ARGS)
    for line in lines:
        obj = json.loads(line)
        c = obj["c"]
        online.learn({k: v for k, v in c.items() if k != "_multi"}, c["_multi"], obj["_labelIndex"],
                     obj["_label_cost"], obj["_label_probability"])
    probe = ({"GUser": {"timeOfDay": "evening", "vip": True}}, json.loads(lines[0])["c"]["_multi"])
    assert online.pmf(*probe) == pytest.approx(trained.pmf(*probe), abs=1e-6)


def test_a_context_vw_cannot_read_fails_loudly_not_as_one_action() -> None:
    model = VWModel.fresh(ARGS)
    with pytest.raises(RuntimeError, match="Unexpected token"):
        model.pmf({"User": {"tags": ["a"]}}, [{"o": {"x": 1}}, {"o": {"x": 2}}])
