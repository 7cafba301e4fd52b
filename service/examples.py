"""An example for every operation of the API document (``service.openapi``): a request body
and the answer it gets, as the service sends them. Personalizer's operations are keyed by
their path under the prefix (``/rank``), one example for ``/personalizer`` and
``/personalizer/v1.0``. ``tests/service/test_openapi.py`` checks each against its schema."""

from __future__ import annotations

from typing import Any

from service.personalizer import PREFIXES

_DECIDE_REQUEST = {
    "event_id": "call-7f3a-0001", "channel": "phone",
    "customer": {"id": "cust-1042", "authenticated": True, "tier": "gold", "tenure_months": 30,
                 "products": ["mobile"], "region": "north"},
    "interaction": {"request_type": "advisory", "resolved": True, "sentiment": 0.6},
}
_DECISION = {
    "event_id": "call-7f3a-0001", "offer_id": "fiber_upgrade",
    "content": "Gold customers can move to Fiber 1 Gbps at their current price for three months. Shall I switch "
               "you over?",
    "probability": 0.0167, "model_version": "cold-start", "mode": "cold_start",
    "ranking": [{"id": "no_offer", "probability": 0.9167}, {"id": "fiber_upgrade", "probability": 0.0167},
                {"id": "device_care_warranty", "probability": 0.0167}],
    "excluded": [{"offer_id": "card_protection_plan", "reason": "channel"},
                 {"offer_id": "pharmacy_savings_club", "reason": "channel"}],
    "logged": True, "activated": True, "replayed": False,
}
_RANK_REQUEST = {
    "actions": [{"id": "pasta", "features": [{"taste": "salty", "spiceLevel": "medium"}]},
                {"id": "ice cream", "features": [{"taste": "sweet"}]}],
    "contextFeatures": [{"timeOfDay": "morning"}, {"user": {"profileType": "AnonymousUser"}}],
    "excludedActions": [], "eventId": "75269AD0-BFEE-4598-8196-C57383D38E10", "deferActivation": False,
}
_MULTI_REQUEST = {
    "actions": [{"id": "NewsArticle", "features": [{"type": "News"}]},
                {"id": "SportsArticle", "features": [{"type": "Sports"}]},
                {"id": "EntertainmentArticle", "features": [{"type": "Entertainment"}]}],
    "slots": [{"id": "Main Article", "baselineAction": "NewsArticle", "features": [{"size": "Large"}]},
              {"id": "Side Bar", "baselineAction": "SportsArticle", "excludedActions": ["EntertainmentArticle"]}],
    "contextFeatures": [{"timeOfDay": "evening"}], "eventId": "multi-7f3a-0001", "deferActivation": True,
}
_MODEL = {"source": "registry", "version": "3", "loaded_at": 1795435200.0, "last_error": None, "exploration": None}

NATIVE: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/decide"): {"request": _DECIDE_REQUEST, "200": _DECISION},
    ("post", "/outcome"): {"request": {"event_id": "call-7f3a-0001", "type": "accepted", "value": 120.0},
                           "200": {"event_id": "call-7f3a-0001", "recorded": True, "counts": True}},
    ("post", "/activate"): {"request": {"event_id": "call-7f3a-0001"},
                            "200": {"event_id": "call-7f3a-0001", "activated": True}},
    ("get", "/offers"): {"200": {"catalog_version": "050e0904aacc", "offers": [{
        "id": "fiber_upgrade", "title": "Fiber 1 Gbps upgrade at the current price for 3 months", "family": "upgrade",
        "value": 120.0, "channels": ["phone", "chat", "web", "email"], "valid_from": None, "valid_until": None,
        "status": "active"}]}},
    ("post", "/admin/reload"): {"200": {"catalog_version": "050e0904aacc", "offers": 10, "mode": "online",
                                        "policy_version": "9c1d2e3f4a5b", "published": 7},
                                "422": {"error": "configuration not reloaded; still serving the previous one",
                                        "problems": ["config/offers.yaml: offer 'fiber_upgrade': field 'value': "
                                                     "Input should be greater than or equal to 0"]}},
    ("post", "/admin/offers/{offer_id}/suspend"): {"request": {"reason": "complaints from the north region"},
                                                   "200": {"offer_id": "premium_bundle", "status": "suspended"}},
    ("post", "/admin/offers/{offer_id}/resume"): {"request": {"reason": "fixed the eligibility", "by": "ana"},
                                                  "200": {"offer_id": "premium_bundle", "status": "resumed"}},
    ("get", "/admin/offers/{offer_id}/history"): {"200": [
        {"suspended": True, "reason": "monitor: complaint rate 0.198 (78 complaints in 393 offers) over the 24 h to "
                                      "2026-12-03T10:00:00Z exceeds the limit 0.050", "by": "monitor",
         "at": 1796292000.0},
        {"suspended": False, "reason": "fixed the eligibility", "by": "admin: ana", "at": 1796299200.0}]},
    ("post", "/admin/actions/{action_id}/suspend"): {"request": {"reason": "out of stock"},
                                                     "200": {"action_id": "ice cream", "status": "suspended"}},
    ("post", "/admin/actions/{action_id}/resume"): {"request": {"reason": "back in stock"},
                                                    "200": {"action_id": "ice cream", "status": "resumed"}},
    ("post", "/admin/model/reload"): {"200": {"model": _MODEL}},
    ("post", "/admin/customers/forget"): {"request": {"customer_id": "c-1042", "requested_by": "ticket DPO-318"},
                                          "200": {"decisions": 14, "outcomes": 5, "contacts": 6}},
}
PERSONALIZER: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/rank"): {"request": _RANK_REQUEST, "201": {
        "ranking": [{"id": "pasta", "probability": 0.95}, {"id": "ice cream", "probability": 0.05}],
        "eventId": "75269AD0-BFEE-4598-8196-C57383D38E10", "rewardActionId": "pasta"}},
    ("post", "/multislot/rank"): {"request": _MULTI_REQUEST, "201": {
        "eventId": "multi-7f3a-0001", "slots": [{"id": "Main Article", "rewardActionId": "NewsArticle"},
                                                {"id": "Side Bar", "rewardActionId": "SportsArticle"}]}},
    ("post", "/events/{eventId}/reward"): {"request": {"value": 1.0}},
    ("post", "/events/{eventId}/activate"): {"404": {"error": {
        "code": "EventNotFound", "message": "unknown event_id 'abc': no decision with this id is in the log"}}},
    ("post", "/multislot/events/{eventId}/reward"): {"request": {"reward": [
        {"slotId": "Main Article", "value": 1.0}, {"slotId": "Side Bar", "value": 0.0}]}},
    ("post", "/multislot/events/{eventId}/activate"): {"404": {"error": {
        "code": "EventNotFound", "message": "unknown event_id 'abc': no decision with this id is in the log"}}},
    ("get", "/configurations/service"): {"200": {
        "rewardWaitTime": "PT72H", "defaultReward": 0.0, "rewardAggregation": "Sum", "explorationPercentage": 0.1,
        "modelExportFrequency": "PT30S", "logRetentionDays": -1, "modelRetrainDays": 7, "learningMode": "Online",
        "isAutoOptimizationEnabled": False, "lastConfigurationEditDate": "2026-11-20T09:00:00Z"}},
    ("get", "/configurations/policy"): {"200": {
        "name": "policy file policy.yaml",
        "arguments": "--cb_explore_adf --epsilon 0.1 --cb_type mtr -l 0.1 -b 18 --power_t 0.5 --interactions co"}},
    ("get", "/evaluations"): {"200": {"value": [{
        "id": "4c2f0d1e9a8b4f7e8d6c5b4a39281706", "name": "retrain 1795000000-1795604800",
        "startTime": "2026-11-16T12:00:00Z", "endTime": "2026-11-23T12:00:00Z", "creationTime": "2026-11-23T02:00:09Z",
        "status": "Succeeded", "evaluationType": "Auto", "description": None, "optimalPolicy": "candidate",
        "content": None}], "nextLink": None}},
    ("get", "/evaluations/{evaluationId}"): {"200": {
        "id": "4c2f0d1e9a8b4f7e8d6c5b4a39281706", "name": "retrain 1795000000-1795604800",
        "startTime": "2026-11-16T12:00:00Z", "endTime": "2026-11-23T12:00:00Z", "creationTime": "2026-11-23T02:00:09Z",
        "status": "Succeeded", "evaluationType": "Auto", "description": None, "optimalPolicy": "candidate",
        "content": {"startTime": "2026-11-16T12:00:00Z", "endTime": "2026-11-23T12:00:00Z", "value": [
            {"name": "candidate", "arguments": "", "policySource": "OfflineExperimentation",
             "summary": {"expectedReward": 4.1, "confidenceInterval": [3.2, 5.0]}},
            {"name": "no_offer", "arguments": "", "policySource": "Baseline",
             "summary": {"expectedReward": 0.0, "confidenceInterval": [0.0, 0.0]}}]}}},
    ("get", "/logs/properties"): {"200": {"dateRange": {"from": "2026-10-01T08:00:00Z",
                                                        "to": "2026-11-23T12:00:00Z"}}},
    ("get", "/model/properties"): {"200": {"creationTime": "2026-11-23T02:00:31Z",
                                           "lastModifiedTime": "2026-11-23T02:00:41Z", "version": "3",
                                           "source": "registry"}},
    ("get", "/model"): {"409": {"error": {"code": "NoModel", "message": "the service serves cold start: there is "
                                          "no model to export yet"}}},
    ("put", "/model"): {"400": {"error": {"code": "BadRequest", "message": "body: not a VW model this service can "
                                          "load: Bad model format."}}},
}


def examples(method: str, path: str) -> dict[str, Any]:
    """An operation's examples, by where they go (``request``, or a response status). A 501
    operation's example is its answer, declared with it (``service.personalizer_admin``)."""
    for prefix in sorted(PREFIXES, key=len, reverse=True):
        if path.startswith(prefix + "/"):
            return PERSONALIZER.get((method, path[len(prefix):]), {})
    return NATIVE.get((method, path), {})
