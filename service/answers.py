"""Error answers, in one place for the FastAPI routes and the decision lane.

Native routes answer ``{"error": ..., "detail": [{"field", "message", ...}]}``;
Personalizer routes answer Personalizer's ``{"error": {"code", "message"}}`` with
400 where the native API says 422, so its clients see the errors they expect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from bandit.domain.errors import EventConflict, InvalidRequest, OutcomeConflict, UnknownEvent

PERSONALIZER_PREFIX = "/personalizer/"

Answer = tuple[int, bytes]


def _json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _field(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def invalid(path: str, errors: Iterable[Mapping[str, Any]]) -> Answer:
    """A request that failed validation: every problem with the field it concerns."""
    detail = [{"field": _field(e["loc"]), "message": e["msg"], "type": e["type"]} for e in errors]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in detail[:5])
    if path.startswith(PERSONALIZER_PREFIX):
        return 400, _json({"error": {"code": "BadRequest", "message": summary}})
    return 422, _json({"error": f"invalid request: {summary}", "detail": detail})


def bad(path: str, exc: InvalidRequest) -> Answer:
    """A well-formed request naming something that does not exist (an offer, a candidate)."""
    if path.startswith(PERSONALIZER_PREFIX):
        return 400, _json({"error": {"code": "BadRequest", "message": str(exc)}})
    return 400, _json({"error": str(exc), "detail": [{"field": exc.field, "message": str(exc)}]})


def unknown_event(path: str, exc: UnknownEvent) -> Answer:
    if path.startswith(PERSONALIZER_PREFIX):
        return 404, _json({"error": {"code": "EventNotFound", "message": str(exc)}})
    return 404, _json({"error": str(exc)})


def conflict(path: str, exc: EventConflict) -> Answer:
    """An event id reused for a different request: 409, the logged decision is not disclosed."""
    if path.startswith(PERSONALIZER_PREFIX):
        return 409, _json({"error": {"code": "Conflict", "message": str(exc)}})
    return 409, _json({"error": str(exc), "detail": [{"field": "event_id", "message": str(exc)}]})


def outcome_conflict(path: str, exc: OutcomeConflict) -> Answer:
    """An outcome contradicting one already recorded: 409, the first one stands."""
    if path.startswith(PERSONALIZER_PREFIX):
        return 409, _json({"error": {"code": "Conflict", "message": str(exc)}})
    return 409, _json({"error": str(exc), "detail": [{"field": "type", "message": str(exc)}]})


def personalizer_or_native(path: str, status: int, code: str, message: str) -> Answer:
    """An error that names no field: Personalizer's ``{"error": {"code", "message"}}`` on its
    routes, ``{"error": message}`` elsewhere."""
    if path.startswith(PERSONALIZER_PREFIX):
        return status, _json({"error": {"code": code, "message": message}})
    return status, _json({"error": message})


def not_supported(path: str, message: str) -> Answer:
    """An operation of Personalizer's API this service does not do: 501, saying what to do
    instead (never a 404, which a client would take for a wrong address)."""
    return personalizer_or_native(path, 501, "NotImplemented", message)


def internal(path: str) -> Answer:
    message = "internal error; the decision was not made (see the service log)"
    if path.startswith(PERSONALIZER_PREFIX):
        return 500, _json({"error": {"code": "InternalServerError", "message": message}})
    return 500, _json({"error": message})


def refused(path: str, status: int, message: str) -> bytes:
    """The body of a 401, 403 or 413 answered before any route runs, or of the framework's
    own 404 and 405."""
    if path.startswith(PERSONALIZER_PREFIX):
        code = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
                409: "Conflict", 413: "PayloadTooLarge"}.get(status, "BadRequest")
        return _json({"error": {"code": code, "message": message}})
    return _json({"error": message})
