"""The Personalizer-compatible API: the pure mapping, then Azure's own client against served
instances, for every operation the client offers (each works, or answers 501 saying why)."""

from __future__ import annotations

import collections
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from bandit.config.catalog import NO_OFFER, parse_catalog
from bandit.config.policyfile import load_policy
from bandit.domain.errors import InvalidRequest
from conftest import ADMIN_KEY, CHANNEL_KEY, REPO, Served, start_service, stop_service
from service.personalizer import MultiSlotRankRequest, RankRequest, check_slots, to_decision_request

CATALOG = parse_catalog((REPO / "config/offers.yaml").read_text())
POLICY = load_policy(REPO / "config/policy.yaml")
P = {"Ocp-Apim-Subscription-Key": CHANNEL_KEY}


def rank(**kw) -> RankRequest:
    return RankRequest.model_validate({"actions": [{"id": "pasta", "features": [{"taste": "salty"}]},
                                                   {"id": "ice cream", "features": [{"taste": "sweet"},
                                                                                    {"kcal": 300}]}], **kw})


def test_context_and_action_features_become_features_and_native_keys_fill_native_fields() -> None:
    m = to_decision_request(rank(contextFeatures=[
        {"channel": "chat", "requestType": "advisory", "sentiment": 0.4, "resolved": True},
        {"customerId": "c1", "tier": "gold", "tenureMonths": 40, "products": ["mobile"]},
        {"device": {"os": "ios", "mobile": True}, "timeOfDay": "morning", "visits": [3, 1]}],
        eventId="e1", deferActivation=True), CATALOG, None)
    r = m.request
    assert r.channel.value == "chat" and r.interaction.request_type.value == "advisory"
    assert r.interaction.resolved.value == "true" and r.customer.tier == "gold" and r.customer.tenure_months == 40
    assert r.customer.id == "c1" and r.event_id == "e1" and r.defer_activation
    assert r.features["timeOfDay"] == "morning" and r.features["device"] == {"os": "ios", "mobile": True}
    assert "customerId" not in r.features  # an identifier is never a feature
    # the baseline (first action) stands in for no offer; the others are the caller's own actions
    assert m.stand_in == "pasta"
    assert [(a.id, a.features) for a in r.actions] == [("ice cream", {"taste": "sweet", "kcal": 300})]


def test_the_no_offer_stand_in_is_the_configured_action_else_a_baseline_that_is_not_a_catalog_offer() -> None:
    actions = [{"id": "premium_bundle"}, {"id": "pasta"}, {"id": "none"}]
    m = to_decision_request(RankRequest.model_validate({"actions": actions}), CATALOG, "none")
    assert m.stand_in == "none" and [a.id for a in m.request.actions] == ["premium_bundle", "pasta"]
    with pytest.raises(InvalidRequest, match="first action 'premium_bundle' is a catalog offer"):
        to_decision_request(RankRequest.model_validate({"actions": actions}), CATALOG, None)
    excluded = RankRequest.model_validate({"actions": actions, "excludedActions": ["premium_bundle"]})
    assert to_decision_request(excluded, CATALOG, None).stand_in == "pasta"  # the first action not excluded


def test_bad_ranks_are_precise_400s() -> None:
    with pytest.raises(InvalidRequest, match="contextFeatures.sentiment: Input should be less than or equal to 1"):
        to_decision_request(rank(contextFeatures=[{"sentiment": 5}]), CATALOG, None)
    with pytest.raises(InvalidRequest, match="every action is excluded"):
        to_decision_request(rank(excludedActions=["pasta", "ice cream"]), CATALOG, None)
    with pytest.raises(InvalidRequest, match=r"actions\[1\].id: action id 'pasta' appears twice"):
        to_decision_request(RankRequest.model_validate({"actions": [{"id": "pasta"}, {"id": "pasta"}]}), CATALOG,
                            None)
    with pytest.raises(ValueError, match="at most 50"):
        RankRequest.model_validate({"actions": [{"id": f"a{i}"} for i in range(51)]})


def test_a_multi_slot_rank_is_checked_before_any_slot_is_decided() -> None:
    def slots(*specs: dict, actions=("a", "b", "premium_bundle")) -> MultiSlotRankRequest:
        return MultiSlotRankRequest.model_validate({"actions": [{"id": a} for a in actions], "slots": list(specs)})

    assert check_slots(slots({"id": "Main Article", "baselineAction": "a"}, {"id": "Side", "baselineAction": "b"}),
                       CATALOG, None)
    for bad, field in [
        (slots({"id": "s", "baselineAction": "x"}), r"slots\[0\].baselineAction: 'x' is not one of the actions"),
        (slots({"id": "s", "baselineAction": "a"}, {"id": "s", "baselineAction": "b"}), r"slots\[1\].id"),
        (slots({"id": "s", "baselineAction": "a"}, {"id": "t", "baselineAction": "a"}), "another slot's baseline"),
        (slots({"id": "s", "baselineAction": "a", "excludedActions": ["a"]}), "cannot be excluded"),
        (slots({"id": "s", "baselineAction": "premium_bundle"}), "catalog offer, which cannot stand in"),
    ]:
        with pytest.raises(InvalidRequest, match=field):
            check_slots(bad, CATALOG, None)
    # with the no-offer action sent, a catalog offer may be a baseline: the no-offer action stands in
    assert check_slots(slots({"id": "s", "baselineAction": "premium_bundle"}, actions=("none", "premium_bundle")),
                       CATALOG, "none")


def test_a_retrain_run_answers_as_personalizers_evaluation() -> None:
    from service.personalizer_admin import evaluation_answer
    from tracking.evaluations import Estimate, Evaluation

    ev = Evaluation(id="r1", name="retrain 1795000000-1795604800", created=1795604900.0,
                    window=(1795000000.0, 1795604800.0), status="FINISHED", promoted=True, reasons=["better"],
                    estimates={"candidate": Estimate(4.0, 3.0, 5.0), "no_offer": Estimate(0.0, None, None)})
    a = evaluation_answer(ev, with_content=True).model_dump()
    assert a["status"] == "Succeeded" and a["optimalPolicy"] == "candidate" and a["description"] == "better"
    assert a["startTime"] == "2026-11-18T11:06:40Z" and a["endTime"] == "2026-11-25T11:06:40Z"
    values = {v["name"]: v for v in a["content"]["value"]}
    assert values["candidate"]["summary"] == {"expectedReward": 4.0, "confidenceInterval": [3.0, 5.0]}
    assert values["candidate"]["policySource"] == "OfflineExperimentation"
    assert values["no_offer"]["policySource"] == "Baseline" and values["no_offer"]["summary"]["confidenceInterval"] == []
    assert evaluation_answer(ev, with_content=False).content is None


# -- served ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def personalized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Its own instance: the management test imports a model into it."""
    s = start_service(tmp_path_factory.mktemp("personalized"))
    yield s
    stop_service(s.proc)


def within(count: int, n: int, p: float) -> bool:
    """``count`` of ``n`` draws is within 4 standard deviations of ``n * p``."""
    sd = math.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= 4 * sd + 1


@pytest.mark.slow
def test_typical_personalizer_contexts_get_offers_at_the_policy_files_exploration_rate(served: Served) -> None:
    """Contexts like ``{"timeOfDay": "morning"}`` got an offer in 0 of 200 ranks when actions
    had to be catalog offers. Now the caller's actions are offered, cold start exploring
    around the baseline at the policy file's cold_start_epsilon."""
    from azure.ai.personalizer import PersonalizerClient
    from azure.core.credentials import AzureKeyCredential

    client = PersonalizerClient(served.url, AzureKeyCredential(CHANNEL_KEY))
    actions = [{"id": "pasta", "features": [{"taste": "salty", "spice": "medium"}]},
               {"id": "ice cream", "features": [{"taste": "sweet"}]},
               {"id": "juice", "features": [{"taste": "sweet", "drink": True}]}]
    contexts = [{"timeOfDay": "morning"}, {"taste": "salty"}, {"weather": {"sunny": True}, "visits": [1, 4]}]
    chosen = collections.Counter()
    for i in range(200):
        r = client.rank({"actions": actions, "contextFeatures": [contexts[i % 3]]})
        assert {x["id"] for x in r["ranking"]} == {"pasta", "ice cream", "juice"}
        assert abs(sum(x["probability"] for x in r["ranking"]) - 1) < 1e-6
        chosen[r["rewardActionId"]] += 1
    eps = POLICY.exploration.cold_start_epsilon
    offered = 200 - chosen["pasta"]  # pasta, the baseline, stands in for no offer
    assert within(offered, 200, eps * 2 / 3), chosen
    assert chosen["ice cream"] and chosen["juice"], chosen


@pytest.mark.slow
def test_guardrails_apply_to_the_callers_actions_and_never_skip_a_catalog_offers(served: Served) -> None:
    c = served.client(None)
    actions = [{"id": "nothing today"}, {"id": "ice cream"}, {"id": "premium_bundle"}]

    def ranked(context: dict, **kw) -> dict:
        r = c.post("/personalizer/rank", headers=P, json={"actions": actions, "contextFeatures": [context], **kw})
        assert r.status_code == 201, r.text
        return r.json()

    # opted out or distressed, if sent: only the stand-in for no offer, every other action at 0
    for flag in ({"distress": True}, {"optedOut": True}):
        for _ in range(20):
            r = ranked({"timeOfDay": "noon", **flag})
            assert r["rewardActionId"] == "nothing today"
            assert dict((x["id"], x["probability"]) for x in r["ranking"]) == {
                "nothing today": 1.0, "ice cream": 0.0, "premium_bundle": 0.0}
    # a catalog offer keeps its catalog guardrails: premium_bundle is not made on the web to an
    # informational request (request_type_family), the caller's ice cream is
    r = ranked({"timeOfDay": "noon"})
    probs = dict((x["id"], x["probability"]) for x in r["ranking"])
    assert probs["premium_bundle"] == 0.0 and probs["ice cream"] > 0
    # the kill switch by id, for an action the catalog does not know
    admin = served.client(ADMIN_KEY)
    assert admin.post("/admin/actions/ice cream/suspend", json={"reason": "test"}).json()["status"] == "suspended"
    try:
        for _ in range(20):
            assert dict((x["id"], x["probability"]) for x in ranked({})["ranking"])["ice cream"] == 0.0
    finally:
        admin.post("/admin/actions/ice cream/resume")
    # the frequency cap, for a customer id sent: once the caller's action is shown, the next ranks
    # for that customer within the cap's window answer the stand-in
    for i in range(400):
        r = ranked({"customerId": "p-capped", "visit": i})
        if r["rewardActionId"] != "nothing today":
            break
    else:
        raise AssertionError("no action shown in 400 ranks")
    store = served.store()
    try:
        for i in range(10):
            r = ranked({"customerId": "p-capped", "again": i})
            assert r["rewardActionId"] == "nothing today" and dict(
                (x["id"], x["probability"]) for x in r["ranking"])["ice cream"] == 0.0
            logged = store.get_decision(r["eventId"])  # logged, and capped: not an unreadable log's no_offer
            assert logged is not None and logged.mode != "not_logged"
            assert {reason for _, reason in logged.payload["excluded"]} == {"frequency_cap"}
    finally:
        store.close()


@pytest.mark.slow
def test_personalizer_rest_shapes_replays_and_conflicts(served: Served) -> None:
    c = served.client(None)
    for path in ("/personalizer/rank", "/personalizer/v1.0/rank"):
        r = c.post(f"{path}?api-version=2022-09-01-preview", headers=P, json={
            "actions": [{"id": "none"}, {"id": "premium_bundle"}],
            "contextFeatures": [{"distress": True, "tier": "gold", "requestType": "advisory"}]})
        assert r.status_code == 201
        assert r.json()["rewardActionId"] == "none" and set(r.json()) == {"ranking", "eventId", "rewardActionId"}
        ev = r.json()["eventId"]
        v = path.replace("/rank", "")
        assert c.post(f"{v}/events/{ev}/reward", headers=P, json={"value": 0.5}).status_code == 204
        assert c.post(f"{v}/events/{ev}/activate", headers=P).status_code == 204
    bad = c.post("/personalizer/rank", headers=P, json={"actions": []})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"
    first = {"eventId": "p-reuse-1", "actions": [{"id": "none"}, {"id": "premium_bundle"}],
             "contextFeatures": [{"customerId": "p-a", "tier": "platinum", "requestType": "advisory",
                                  "resolved": True, "sentiment": 0.8}]}
    r = c.post("/personalizer/rank", headers=P, json=first)
    again = c.post("/personalizer/rank", headers=P, json=first)
    assert r.status_code == again.status_code == 201 and again.json() == r.json()
    other = {**first, "contextFeatures": [{"customerId": "p-b", "optedOut": True, "distress": True}]}
    clash = c.post("/personalizer/v1.0/rank", headers=P, json=other)
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "Conflict"


@pytest.mark.slow
def test_azure_client_every_operation_works_or_answers_501_with_a_reason(personalized: Served, tmp_path: Path
                                                                         ) -> None:
    from azure.ai.personalizer import PersonalizerAdministrationClient, PersonalizerClient
    from azure.core.credentials import AzureKeyCredential
    from azure.core.exceptions import HttpResponseError

    from bandit.decide.vw import VWModel

    client = PersonalizerClient(personalized.url, AzureKeyCredential(CHANNEL_KEY))
    admin = PersonalizerAdministrationClient(personalized.url, AzureKeyCredential(ADMIN_KEY))

    # rank, activate, reward
    request = {"actions": [{"id": "pasta", "features": [{"taste": "salty"}]},
                           {"id": "ice cream", "features": [{"taste": "sweet"}]}],
               "contextFeatures": [{"timeOfDay": "morning"}], "eventId": "azure-evt-1", "deferActivation": True}
    result = client.rank(request)
    assert result["eventId"] == "azure-evt-1" and result["rewardActionId"] in ("pasta", "ice cream")
    client.activate("azure-evt-1")
    client.reward("azure-evt-1", {"value": 1.0})
    # multi-slot rank, activate and per-slot rewards
    multi = client.rank_multi_slot({
        "actions": [{"id": a, "features": [{"kind": a}]} for a in ("news", "sports", "weather", "music")],
        "slots": [{"id": "Main Article", "baselineAction": "news", "features": [{"size": "large"}]},
                  {"id": "Side Bar", "baselineAction": "sports", "excludedActions": ["music"]}],
        "contextFeatures": [{"timeOfDay": "evening"}], "eventId": "azure-multi-1", "deferActivation": True})
    slots = {s["id"]: s["rewardActionId"] for s in multi["slots"]}
    assert multi["eventId"] == "azure-multi-1" and set(slots) == {"Main Article", "Side Bar"}
    assert slots["Main Article"] != slots["Side Bar"] and slots["Side Bar"] != "music"
    client.activate_multi_slot("azure-multi-1")
    client.reward_multi_slot("azure-multi-1", {"reward": [{"slotId": "Main Article", "value": 1.0},
                                                          {"slotId": "Side Bar", "value": 0.0}]})
    with pytest.raises(HttpResponseError) as e:
        client.reward_multi_slot("azure-multi-1", {"reward": [{"slotId": "Footer", "value": 1.0}]})
    assert e.value.status_code == 400 and "Footer" in str(e.value)
    with pytest.raises(HttpResponseError) as e:
        client.reward("no-such-event", {"value": 1.0})
    assert e.value.status_code == 404
    with pytest.raises(HttpResponseError) as e:
        PersonalizerClient(personalized.url, AzureKeyCredential("wrong")).rank(request)
    assert e.value.status_code == 401

    # management: what maps onto this service's concepts works ...
    config = admin.get_service_configuration()
    # the shipped explorer (regcbopt) has no exploration percentage; an epsilon one would give its epsilon
    assert config["explorationPercentage"] == (POLICY.exploration.epsilon if POLICY.exploration.algorithm in (
        "epsilon", "bag", "cover") else None) and config["logRetentionDays"] == -1
    assert config["rewardWaitTime"] == f"PT{POLICY.reward.window_hours:g}H"
    assert admin.get_policy()["arguments"] == " ".join(POLICY.vw_args())
    dates = admin.get_log_properties()["dateRange"]
    assert dates["from"] <= dates["to"]
    assert list(admin.list_evaluations()) == []  # no retrain has run on this instance's store
    assert admin.get_model_properties()["source"] == "cold_start"
    model = VWModel.fresh(POLICY.vw_args())
    model.save(tmp_path / "upload.vw")
    admin.import_model((tmp_path / "upload.vw").read_bytes())  # a model file source: replaced, served at once
    props = admin.get_model_properties()
    assert props["source"] == "file" and props["version"] == model.version and props["creationTime"]
    assert b"".join(admin.export_model()) == (tmp_path / "upload.vw").read_bytes()
    with pytest.raises(HttpResponseError) as e:
        admin.import_model(b"not a model")
    assert e.value.status_code == 400 and "not a VW model" in str(e.value)
    # ... and the rest is 501 with what to do instead, never 404
    refused = {
        "update_service_configuration": lambda: admin.update_service_configuration(config),
        "update_policy": lambda: admin.update_policy({"name": "x", "arguments": "--epsilon 0.3"}),
        "reset_policy": admin.reset_policy,
        "reset_model": admin.reset_model,
        "delete_logs": admin.delete_logs,
        "export_model(signed)": lambda: b"".join(admin.export_model(signed=True)),
        "create_evaluation": lambda: admin.create_evaluation("ev1", {"name": "x", "startTime": "2026-11-01",
                                                                     "endTime": "2026-11-02"}),
        "delete_evaluation": lambda: admin.delete_evaluation("ev1"),
        "apply_from_evaluation": lambda: admin.apply_from_evaluation({"evaluationId": "ev1", "policyName": "x"}),
        "create_feature_importance": lambda: admin.create_feature_importance("f1", {"name": "x"}),
        "get_feature_importance": lambda: admin.get_feature_importance("f1"),
        "list_feature_importances": lambda: list(admin.list_feature_importances()),
        "delete_feature_importance": lambda: admin.delete_feature_importance("f1"),
    }
    for name, call in refused.items():
        with pytest.raises(HttpResponseError) as e:
            call()
        assert e.value.status_code == 501, name
        e.value.response.read()  # a streamed answer (the model export) is not read yet
        error = e.value.response.json()["error"]
        assert error["code"] == "NotImplemented" and len(error["message"]) > 20, name
    with pytest.raises(HttpResponseError) as e:
        admin.get_evaluation("no-such-run", start_time=__import__("datetime").datetime(2026, 11, 1),
                             end_time=__import__("datetime").datetime(2026, 11, 2))
    assert e.value.status_code == 404  # an evaluation that does not exist (evaluations are supported)
    # management needs the admin key
    with pytest.raises(HttpResponseError) as e:
        PersonalizerAdministrationClient(personalized.url, AzureKeyCredential(CHANNEL_KEY)).get_policy()
    assert e.value.status_code == 403
    assert "Traceback" not in (personalized.home.parent / "serve.log").read_text()
