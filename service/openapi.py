"""The OpenAPI document (``/docs.json``) an integrator generates a client from, and the page
that shows it (``/``).

BentoML builds its document from ours (FastAPI's) with its own around it: its title,
``version: None``, "BentoML Team" as contact, a description of badges and links to BentoML,
infrastructure routes described for Kubernetes, and for every route the statuses FastAPI
assumes (422 on Personalizer's routes, which answer 400; 422 on routes that take nothing).
This module builds the whole document instead (``document``), from the routes' own
declarations plus what the layers in front of them do, which no route declares:

- every keyed operation: 401 (no key, or an unknown one); admin-only ones: 403; a ``POST`` or
  ``PUT``: 413 (the body limit applies before any route); one with parameters or a body:
  422 naming each field (Personalizer's: 400); one with a path parameter: 404 (the router
  matches no path whose id holds a line break), all in the error shape of the route's family
  (``service.answers``): ``ErrorAnswer`` or Personalizer's ``PersonalizerError``;
- the security schemes of both key headers, and each operation's;
- the health routes as they answer (``/readyz``: 200 or 503 with a JSON body);
- an example per operation (``EXAMPLES``), the project's title, version and contact.

The docs page loads nothing from outside the service: the Swagger UI files BentoML ships,
served by the service itself, with a Content-Security-Policy that allows only them (BentoML's
own page loads Google Tag Manager).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, metadata
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.answers import PERSONALIZER_PREFIX
from service.middleware import is_admin
from service.personalizer_admin import is_management

PACKAGE = "offer-bandit"
REF = "#/components/schemas/{}"


def project() -> tuple[str, str, str]:
    """The package's name, version and summary, from its installed metadata."""
    try:
        meta = metadata(PACKAGE)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return PACKAGE, "0+unknown", ""
    return meta["Name"], meta["Version"], meta["Summary"] or ""


DESCRIPTION = """\
Decides, for one customer interaction, which offer to make, or none: guardrails first (opted
out, distressed, unhappy or unresolved customers get no offer), then a contextual bandit
among what they leave, every decision logged with its probability before it is answered.
Outcomes (acceptance, revenue, complaints) arrive later by event id.

Keys: send a channel key, or the admin key, in `X-API-Key` (Personalizer's routes also take
it in `Ocp-Apim-Subscription-Key`). Errors are JSON: `{"error": "...", "detail": [{"field",
"message"}]}`, and on Personalizer's routes `{"error": {"code", "message"}}`.

Personalizer's Rank, Reward and Activate (single and multi-slot) and its management
operations answer under `/personalizer` and `/personalizer/v1.0`; an operation this service
does not do answers 501 saying what to do instead.
"""

SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "A channel key (decisions, outcomes, activations, Personalizer's rank and reward) or "
               "the admin key (all that, and the admin and Personalizer management operations)."},
    "SubscriptionKey": {"type": "apiKey", "in": "header", "name": "Ocp-Apim-Subscription-Key",
                        "description": "The same keys, in the header Personalizer's clients send; Personalizer's "
                        "routes only."},
}

ERROR_SCHEMAS: dict[str, Any] = {
    "FieldProblem": {"type": "object", "required": ["field", "message"], "properties": {
        "field": {"type": "string", "description": "The field at fault, dotted (interaction.sentiment)"},
        "message": {"type": "string"},
        "type": {"type": "string", "description": "The kind of problem (validation errors only)"}}},
    "ErrorAnswer": {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string", "description": "What is wrong; for a 422 it names the first fields"},
        "detail": {"type": "array", "items": {"$ref": REF.format("FieldProblem")},
                   "description": "Each field at fault (422, and a 400 or 409 that concerns a field)"}}},
    "PersonalizerError": {"type": "object", "required": ["error"], "description": "Personalizer's error shape",
                          "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                              "code": {"type": "string", "description": "BadRequest, Unauthorized, Forbidden, "
                                       "EventNotFound, NotFound, Conflict, NoModel, PayloadTooLarge, NotImplemented"},
                              "message": {"type": "string", "description": "What is wrong, naming the field"}}}}},
    "Readiness": {"type": "object", "required": ["ready", "detail"], "properties": {
        "ready": {"type": "boolean"}, "detail": {"type": "string", "description": "Which model serves, or why not"},
        "catalog_version": {"type": "string"}, "offers": {"type": "integer"},
        "policy_mode": {"type": "string", "enum": ["online", "apprentice"]},
        "policy_version": {"type": "string", "description": "The policy file's content hash"},
        "published": {"type": "integer", "description": "The reload published configuration serving (0: the files "
                                                        "read at start)"},
        "config_error": {"type": ["string", "null"], "description": "A published configuration this replica "
                                                                     "could not load"},
        "model": {"$ref": REF.format("ModelState")},
        "log": {"type": "object", "description": "Whether the decision log takes writes (unready while it fails)",
                "properties": {"writable": {"type": "boolean"}, "error": {"type": ["string", "null"]}}}}},
}

PUBLIC_PATHS: dict[str, Any] = {
    "/livez": {"get": {"tags": ["health"], "summary": "Liveness", "description": "200 while the process runs.",
                       "operationId": "livez", "security": [], "responses": {"200": {
                           "description": "Alive", "content": {"text/plain": {"schema": {"type": "string"},
                                                                              "example": "\n"}}}}}},
    "/healthz": {"get": {"tags": ["health"], "summary": "Health", "description": "The same as /livez.",
                         "operationId": "healthz", "security": [], "responses": {"200": {
                             "description": "Alive", "content": {"text/plain": {"schema": {"type": "string"},
                                                                                "example": "\n"}}}}}},
    "/readyz": {"get": {"tags": ["health"], "summary": "Readiness", "operationId": "readyz", "security": [],
                        "description": "200 once the catalog and the policy file are loaded, with which model "
                        "serves; 503 while starting, and while the decision log cannot be written (every "
                        "decision would be no_offer, logged: false). A load balancer's health check.",
                        "responses": {
                            "200": {"description": "Serving", "content": {"application/json": {
                                "schema": {"$ref": REF.format("Readiness")}, "example": {
                                    "ready": True, "catalog_version": "050e0904aacc", "offers": 10,
                                    "policy_mode": "online", "detail": "cold start: no model, exploring around "
                                    "no_offer", "model": {"source": "cold_start", "version": "cold-start",
                                                          "loaded_at": 1795435200.0, "last_error": None,
                                                          "exploration": None},
                                    "log": {"writable": True, "error": None}}}}},
                            "503": {"description": "Starting, or the decision log fails", "content": {"application/json": {
                                "schema": {"$ref": REF.format("Readiness")},
                                "example": {"ready": False, "detail": "starting: catalog and policy not loaded yet"}}}}}}},
    "/metrics": {"get": {"tags": ["health"], "summary": "Prometheus metrics", "operationId": "metrics",
                         "security": [], "description": "Decisions, exploration, exclusions by reason, outcomes "
                         "and log failures, in Prometheus' text format.",
                         "responses": {"200": {"description": "The metrics", "content": {"text/plain": {
                             "schema": {"type": "string"},
                             "example": "offer_bandit_log_failures_total 0.0\n"}}}}}},
}


def _error(description: str, schema: str, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": REF.format(schema)}}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {"application/json": media}}


def _with_schema(response: dict[str, Any], schema: str) -> dict[str, Any]:
    """An error response as sent: the family's schema, any example the route gave kept."""
    media = response.get("content", {}).get("application/json", {})
    if media.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        media = {}
    if not media.get("schema"):
        media = {**media, "schema": {"$ref": REF.format(schema)}}
    return {**response, "content": {"application/json": media}}


def _validates(op: dict[str, Any]) -> bool:
    """Whether a request can fail the operation's validation: it takes a body, or a parameter
    that is more than any text (a pattern, a bound, a number, a boolean)."""
    def constrained(schema: dict[str, Any]) -> bool:
        options = schema.get("anyOf", [schema])
        return any(set(o) - {"title", "description", "default"} != {"type"} or o.get("type") not in ("string", "null")
                   for o in options)

    return "requestBody" in op or any(constrained(p.get("schema", {})) for p in op.get("parameters", []))


def fix_operation(path: str, method: str, op: dict[str, Any], examples: Callable[[str, str], dict[str, Any]]) -> None:
    """Make one operation say what is sent (see the module docstring)."""
    personalizer = path.startswith(PERSONALIZER_PREFIX)
    schema = "PersonalizerError" if personalizer else "ErrorAnswer"
    responses: dict[str, Any] = op["responses"]
    if "HTTPValidationError" in str(responses.get("422", "")):  # FastAPI's assumption, not what is sent
        del responses["422"]
    if _validates(op):
        status, what = ("400", "Invalid request: the message names the field") if personalizer else (
            "422", "Invalid request: detail names each field at fault")
        if status in responses:
            what = f"{responses[status]['description']}; or {what[0].lower()}{what[1:]}"
        responses[status] = {**responses.get(status, {}), "description": what}
    if "{" in path and "404" not in responses:  # the router matches no path whose id holds a line break
        responses["404"] = {"description": "No such route: an id with a line break in it names none"}
    responses["401"] = {"description": "No key, or an unknown one"}
    admin_only = is_admin(path) or is_management(path)
    if admin_only:
        responses["403"] = {"description": "A channel key: this operation needs the admin key"}
    if method in ("post", "put"):
        responses["413"] = {"description": "Body over the size limit"}
    for status in list(responses):
        if int(status) >= 400:
            responses[status] = _with_schema(responses[status], schema)
    op["responses"] = dict(sorted(responses.items()))
    op["security"] = [{"ApiKey": []}, {"SubscriptionKey": []}] if personalizer else [{"ApiKey": []}]
    if admin_only:
        op["description"] = (op.get("description", "") + "\n\nNeeds the admin key.").strip()
    for where, example in examples(method, path).items():
        if where == "request":
            op["requestBody"]["content"]["application/json"]["example"] = example
        else:
            op["responses"][where].setdefault("content", {}).setdefault("application/json", {})["example"] = example


def document(app: FastAPI, examples: Callable[[str, str], dict[str, Any]]) -> dict[str, Any]:
    """The whole document for ``app``'s routes; ``examples(method, path)`` gives an
    operation's examples by where they go (``request``, or a status)."""
    name, version, summary = project()
    doc = get_openapi(title=name, version=version, summary=summary, description=DESCRIPTION, routes=app.routes,
                      contact={"name": f"{name} maintainers"},
                      license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"})
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for auto in ("HTTPValidationError", "ValidationError"):
        schemas.pop(auto, None)
    schemas.update(copy.deepcopy(ERROR_SCHEMAS))
    doc["components"]["securitySchemes"] = SECURITY_SCHEMES
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            fix_operation(path, method, op, examples)
    add_links(doc["paths"])
    doc["paths"] = {**copy.deepcopy(PUBLIC_PATHS), **doc["paths"]}
    return doc


# How a decision's answer feeds the calls that follow it (OpenAPI links): its event id is the
# outcome's and the activation's. Clients generated from the document show them; stateful
# fuzzing (experiments/bench/fuzz.py --stateful) follows them.
LINKS: dict[tuple[str, str], dict[str, tuple[str, dict[str, Any]]]] = {
    ("/decide", "200"): {
        "RecordOutcome": ("/outcome", {"requestBody": {"event_id": "$response.body#/event_id", "type": "accepted"}}),
        "Activate": ("/activate", {"requestBody": {"event_id": "$response.body#/event_id"}}),
    },
    **{(f"{prefix}/rank", "201"): {
        "Reward": (f"{prefix}/events/{{eventId}}/reward", {"parameters": {"path.eventId": "$response.body#/eventId"}}),
        "Activate": (f"{prefix}/events/{{eventId}}/activate",
                     {"parameters": {"path.eventId": "$response.body#/eventId"}}),
    } for prefix in ("/personalizer", "/personalizer/v1.0")},
}


def add_links(paths: dict[str, Any]) -> None:
    """``LINKS`` into the operations' responses, by the target's ``operationId``."""
    for (path, status), links in LINKS.items():
        response = paths[path]["post"]["responses"][status]
        response["links"] = {name: {"operationId": paths[target]["post"]["operationId"], **how}
                             for name, (target, how) in links.items()}


class Document(dict):  # type: ignore[type-arg]
    """The document where BentoML expects its own (``Service.openapi_spec``): it serves
    ``asdict()`` at ``/docs.json`` and writes the object to a bento's ``apis/openapi.yaml``."""

    def asdict(self) -> dict[str, Any]:
        return dict(self)


def _represent(dumper: Any, data: Document) -> Any:
    return dumper.represent_dict(dict(data))


def register_yaml() -> None:
    """``yaml.dump`` of a ``Document`` writes the plain mapping (``bentoml build``)."""
    import yaml

    yaml.add_representer(Document, _represent)


# -- the page -----------------------------------------------------------------------------
DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>offer-bandit API</title>
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./docs/init.js" charset="UTF-8"></script>
  </body>
</html>
"""
DOCS_INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({url: "./docs.json", dom_id: "#swagger-ui", deepLinking: true,
                               validatorUrl: null, layout: "BaseLayout"});
};
"""
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
"""The page's Content-Security-Policy: the browser loads nothing but the service's own files
(Swagger UI's validator badge, which calls validator.swagger.io, is off as well)."""
