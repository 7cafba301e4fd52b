"""The Personalizer-compatible API: pure mapping, then Azure's own client against a served instance."""

import pytest

from bandit.config.catalog import NO_OFFER, parse_catalog
from bandit.domain.errors import InvalidRequest
from conftest import ADMIN_KEY, CHANNEL_KEY, REPO, Served
from service.personalizer import RankRequest, to_decision_request

CATALOG = parse_catalog((REPO / "config/offers.yaml").read_text())


def rank(**kw) -> RankRequest:
    return RankRequest.model_validate({"actions": [{"id": "premium_bundle"}, {"id": "sales_specialist_callback"}],
                                       **kw})


def test_context_features_map_onto_the_native_context() -> None:
    r = to_decision_request(rank(contextFeatures=[
        {"channel": "chat", "requestType": "advisory", "sentiment": 0.4, "resolved": True},
        {"customerId": "c1", "tier": "gold", "tenureMonths": 40, "products": ["mobile"]},
        {"device": {"os": "ios", "mobile": True}, "weather": "rainy", "visits": 3}],
        excludedActions=["sales_specialist_callback"], eventId="e1", deferActivation=True), CATALOG)
    assert r.channel.value == "chat" and r.interaction.request_type.value == "advisory"
    assert r.interaction.resolved.value == "true" and r.customer.tier == "gold" and r.customer.tenure_months == 40
    assert r.customer.id == "c1" and r.event_id == "e1" and r.defer_activation
    assert r.candidates == (NO_OFFER, "premium_bundle")
    assert r.attributes == {"device_os": "ios", "device_mobile": True, "weather": "rainy", "visits": 3}


def test_unknown_action_and_bad_context_are_precise_400s() -> None:
    with pytest.raises(InvalidRequest, match=r"actions\[1\].id: 'crypto' is not an offer"):
        to_decision_request(RankRequest.model_validate({"actions": [{"id": "premium_bundle"}, {"id": "crypto"}]}),
                            CATALOG)
    with pytest.raises(InvalidRequest, match="contextFeatures.sentiment"):
        to_decision_request(rank(contextFeatures=[{"sentiment": 5}]), CATALOG)
    with pytest.raises(InvalidRequest, match="at most 50 actions"):
        to_decision_request(RankRequest.model_validate({"actions": [{"id": "premium_bundle"}] * 51}), CATALOG)


def test_defaults_without_customer_id_do_not_share_history() -> None:
    a = to_decision_request(rank(), CATALOG)
    assert a.customer.id is None and a.channel.value == "web"  # anonymous: no history is read or written
    assert a.interaction.request_type.value == "informational"
    assert a.interaction.sentiment is None and a.interaction.resolved.value == "unknown"


@pytest.mark.slow
def test_azure_personalizer_client_works_unchanged(served: Served) -> None:
    from azure.ai.personalizer import PersonalizerClient
    from azure.core.credentials import AzureKeyCredential
    from azure.core.exceptions import HttpResponseError

    client = PersonalizerClient(served.url, AzureKeyCredential(CHANNEL_KEY))
    request = {
        "actions": [{"id": "sales_specialist_callback", "features": [{"kind": "callback"}]},
                    {"id": "premium_bundle", "features": [{"kind": "bundle"}]}],
        "contextFeatures": [{"tier": "gold", "channel": "phone", "requestType": "advisory", "resolved": "true",
                             "sentiment": 0.6, "customerId": "azure-1"}],
        "excludedActions": ["premium_bundle"], "eventId": "azure-evt-1", "deferActivation": True,
    }
    result = client.rank(request)
    assert result["eventId"] == "azure-evt-1"
    ids = [r["id"] for r in result["ranking"]]
    assert set(ids) == {NO_OFFER, "sales_specialist_callback", "premium_bundle"}
    assert result["rewardActionId"] in (NO_OFFER, "sales_specialist_callback")
    assert dict((r["id"], r["probability"]) for r in result["ranking"])["premium_bundle"] == 0.0
    client.activate("azure-evt-1")
    client.reward("azure-evt-1", {"value": 1.0})
    with pytest.raises(HttpResponseError) as e:
        client.rank({"actions": [{"id": "not-in-catalog"}], "contextFeatures": []})
    assert e.value.status_code == 400 and "not-in-catalog" in str(e.value)
    with pytest.raises(HttpResponseError) as e:
        client.reward("no-such-event", {"value": 1.0})
    assert e.value.status_code == 404
    with pytest.raises(HttpResponseError) as e:
        PersonalizerClient(served.url, AzureKeyCredential("wrong")).rank(request)
    assert e.value.status_code == 401


@pytest.mark.slow
def test_personalizer_rest_shapes_and_distress(served: Served) -> None:
    c = served.client(None)
    h = {"Ocp-Apim-Subscription-Key": CHANNEL_KEY}
    for path in ("/personalizer/rank", "/personalizer/v1.0/rank"):
        r = c.post(f"{path}?api-version=2022-09-01-preview", headers=h, json={
            "actions": [{"id": "premium_bundle"}], "contextFeatures": [{"distress": True, "tier": "gold",
                                                                        "requestType": "advisory"}]})
        assert r.status_code == 201
        assert r.json()["rewardActionId"] == NO_OFFER and set(r.json()) == {"ranking", "eventId", "rewardActionId"}
        ev = r.json()["eventId"]
        v = path.replace("/rank", "")
        assert c.post(f"{v}/events/{ev}/reward", headers=h, json={"value": 0.5}).status_code == 204
        assert c.post(f"{v}/events/{ev}/activate", headers=h).status_code == 204
    bad = c.post("/personalizer/rank", headers=h, json={"actions": []})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"
    assert c.post("/personalizer/rank", headers={"X-API-Key": ADMIN_KEY},
                  json={"actions": [{"id": "premium_bundle"}]}).status_code == 201


@pytest.mark.slow
def test_a_reused_event_id_replays_only_the_identical_rank(served: Served) -> None:
    """Personalizer's ``eventId`` is the same key as ``/decide``'s: a retry gets the logged
    ranking, another context with the same id gets 409, never the first caller's offer."""
    c = served.client(None)
    h = {"Ocp-Apim-Subscription-Key": CHANNEL_KEY}
    first = {"eventId": "p-reuse-1", "actions": [{"id": "premium_bundle"}],
             "contextFeatures": [{"customerId": "p-a", "tier": "platinum", "requestType": "advisory",
                                  "resolved": True, "sentiment": 0.8}]}
    r = c.post("/personalizer/rank", headers=h, json=first)
    assert r.status_code == 201
    again = c.post("/personalizer/rank", headers=h, json=first)
    assert again.status_code == 201 and again.json() == r.json()
    other = {**first, "contextFeatures": [{"customerId": "p-b", "optedOut": True, "distress": True}]}
    clash = c.post("/personalizer/v1.0/rank", headers=h, json=other)
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "Conflict"
