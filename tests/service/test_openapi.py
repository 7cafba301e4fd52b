"""The served OpenAPI document is one an integrator can generate a client from: the project's
own info, both key headers as security schemes, an example per operation (each valid against
its schema), only the statuses an operation sends, each error in the shape it is sent,
enumerations where the values are fixed, and no pointer to anything an integrator cannot see;
the docs page loads nothing from elsewhere; CORS answers as configured."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from importlib.metadata import version
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from bandit.decide.guardrails import Reason
from bandit.domain.modes import Mode
from bandit.domain.outcomes import REPORTED_OUTCOME_TYPES
from conftest import CHANNEL_KEY, Served, body, start_service, stop_service
from service.personalizer_admin import is_management

pytestmark = pytest.mark.slow

PUBLIC = {"/livez", "/healthz", "/readyz", "/metrics"}


@pytest.fixture(scope="module")
def doc(served: Served) -> dict[str, Any]:
    return served.client(None).get("/docs.json").json()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def test_the_document_is_the_projects_own(doc: dict[str, Any]) -> None:
    info = doc["info"]
    assert info["title"] == "offer-bandit" and info["version"] == version("offer-bandit")
    assert info["contact"]["name"] == "offer-bandit maintainers"
    assert "bentoml" not in json.dumps(doc).lower()  # no BentoML boilerplate, badges or tags left
    assert doc["openapi"].startswith("3.1")


def test_every_operation_has_its_security_an_example_and_only_the_statuses_it_sends(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} == {("header", "X-API-Key"),
                                                               ("header", "Ocp-Apim-Subscription-Key")}
    for path, method, op in operations(doc):
        where = f"{method.upper()} {path}"
        statuses = set(op["responses"])
        text = json.dumps(op)
        assert '"example"' in text, f"{where}: no example"
        if path in PUBLIC:
            assert op["security"] == [] and not {s for s in statuses if s >= "400"} - {"503"}, where
            continue
        personalizer = path.startswith("/personalizer/")
        assert op["security"] == ([{"ApiKey": []}, {"SubscriptionKey": []}] if personalizer else [{"ApiKey": []}])
        assert "401" in statuses, where
        assert ("403" in statuses) == (path.startswith("/admin/") or is_management(path)), where
        assert ("413" in statuses) == (method in ("post", "put")), where
        if personalizer:
            assert "422" not in statuses, f"{where}: Personalizer's routes answer 400, never 422"
        for status, response in op["responses"].items():
            if status >= "400":
                ref = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                expected = {"PersonalizerError"} if personalizer else {"ErrorAnswer", "ConfigProblems"}
                assert ref in expected, f"{where} {status}: {ref}"
    # FastAPI's validation error is not what is sent
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    # what nothing can refuse for its input documents no 422
    assert "422" not in doc["paths"]["/offers"]["get"]["responses"]
    assert "422" not in doc["paths"]["/admin/model/reload"]["post"]["responses"]


def test_every_example_is_valid_against_its_schema(doc: dict[str, Any]) -> None:
    def check(schema: dict[str, Any], example: Any, where: str) -> None:
        root = {**copy.deepcopy(schema), "components": doc["components"]}
        errors = [e.message for e in Draft202012Validator(root).iter_errors(example)]
        assert not errors, f"{where}: {errors[:3]}"

    checked = 0
    for path, method, op in operations(doc):
        media = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "example" in media:
            check(media["schema"], media["example"], f"{method} {path} request")
            checked += 1
        for status, response in op["responses"].items():
            for ctype, media in response.get("content", {}).items():
                if "example" in media and ctype == "application/json":
                    check(media["schema"], media["example"], f"{method} {path} {status}")
                    checked += 1
    assert checked > 60


def test_fixed_values_are_enumerations(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["Mode"]["enum"] == [m.value for m in Mode]
    assert "imported" in schemas["Mode"]["enum"] and "not_logged" in schemas["Mode"]["enum"]
    assert schemas["Reason"]["enum"] == [r.value for r in Reason]
    for reason in ("frequency_cap", "tone_unknown", "resolution_unknown", "suspended", "not_in_candidates"):
        assert reason in schemas["Reason"]["enum"]
    assert schemas["Decision"]["properties"]["mode"]["$ref"].endswith("/Mode")
    assert schemas["ExcludedOffer"]["properties"]["reason"]["$ref"].endswith("/Reason")
    assert schemas["OutcomeRequest"]["properties"]["type"]["enum"] == list(REPORTED_OUTCOME_TYPES)


def test_descriptions_point_at_nothing_an_integrator_cannot_see(doc: dict[str, Any]) -> None:
    found = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("description", "summary") and isinstance(value, str) and re.search(
                        r"\b(bandit|service|tracking|flows|experiments)\.[a-z_]+|\.py\b|README|seeds", value):
                    found.append(f"{where}: {value[:120]}")
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(doc, "")
    assert found == []


class _Sources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def test_the_docs_page_loads_nothing_from_elsewhere(served: Served) -> None:
    c = served.client(None)
    for page in ("/", "/docs"):
        r = c.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        policy = r.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
        parser = _Sources()
        parser.feed(r.text)
        assert parser.urls and all("://" not in u and not u.startswith("//") for u in parser.urls), parser.urls
        for url in parser.urls:  # each is served, without a key
            assert c.get("/" + url.removeprefix("./")).status_code == 200, url
    init = c.get("/docs/init.js").text
    assert "validatorUrl: null" in init and "./docs.json" in init and "://" not in init
    assert "googletagmanager" not in c.get("/").text


@pytest.fixture(scope="module")
def cors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_service(tmp_path_factory.mktemp("cors"), {"OFFER_BANDIT_CORS_ORIGINS": "https://desk.example.com"})
    yield s
    stop_service(s.proc)


def test_cors_answers_the_configured_origins_only_and_preflights_need_no_key(cors: Served, served: Served) -> None:
    desk, other = "https://desk.example.com", "https://evil.example.net"
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key, content-type"}
    with httpx.Client(base_url=cors.url, timeout=30) as c:
        r = c.options("/decide", headers={"Origin": desk, **preflight})
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == desk
        assert "x-api-key" in r.headers["access-control-allow-headers"]
        assert "POST" in r.headers["access-control-allow-methods"]
        r = c.options("/personalizer/rank", headers={"Origin": other, **preflight})
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
        assert "OFFER_BANDIT_CORS_ORIGINS" in r.json()["error"]
        r = c.post("/decide", json=body(customer__id="cors-1"), headers={"Origin": desk, "X-API-Key": CHANNEL_KEY})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == desk
        r = c.post("/decide", json=body(customer__id="cors-2"), headers={"Origin": desk})  # no key: 401, readable
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == desk
        r = c.post("/decide", json=body(customer__id="cors-3"), headers={"Origin": other, "X-API-Key": CHANNEL_KEY})
        assert "access-control-allow-origin" not in r.headers
    # not configured: no CORS headers at all, and a preflight is just a request without a key
    with httpx.Client(base_url=served.url, timeout=30) as c:
        r = c.options("/decide", headers={"Origin": desk, **preflight})
        assert r.status_code == 401 and not any(h.startswith("access-control-") for h in r.headers)
        r = c.post("/decide", json=body(customer__id="cors-4"), headers={"Origin": desk, "X-API-Key": CHANNEL_KEY})
        assert r.status_code == 200 and not any(h.startswith("access-control-") for h in r.headers)
