"""ASGI middleware around every route: API keys, body size limit, readiness detail.

Pure ASGI (no per-request Starlette objects) so the request path stays cheap.

Keys: channel keys (``OFFER_BANDIT_API_KEYS``) may decide, send outcomes and
activate; the admin key (``OFFER_BANDIT_ADMIN_KEY``) may do that and administer.
They arrive in ``X-API-Key``, or ``Ocp-Apim-Subscription-Key`` on the
Personalizer routes. No key or an unknown one: 401; a channel key on an admin
route (``/admin/...`` and Personalizer's management operations): 403. Health,
readiness, metrics and the API documents are public.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from service.answers import PERSONALIZER_PREFIX, refused

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

PUBLIC_PREFIXES = ("/livez", "/healthz", "/readyz", "/metrics", "/docs.json", "/schema.json", "/static_content",
                   "/assets")
ADMIN_PREFIX = "/admin/"


def is_public(path: str) -> bool:
    return path == "/" or path.startswith(PUBLIC_PREFIXES)


async def send_json(send: Callable, status: int, body: bytes, headers: list | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def is_admin(path: str) -> bool:
    return path.startswith(ADMIN_PREFIX)


def _matches(key: str, keys: frozenset[str]) -> bool:
    return any(hmac.compare_digest(key.encode(), k.encode()) for k in keys)


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, channel_keys: frozenset[str], admin_keys: frozenset[str],
                 admin_only: Callable[[str], bool] = is_admin):
        self.app = app
        self.channel_keys = channel_keys
        self.admin_keys = admin_keys
        self.admin_only = admin_only

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            return await self.app(scope, receive, send)
        path = scope["path"]
        wanted = [b"x-api-key"] + ([b"ocp-apim-subscription-key"] if path.startswith(PERSONALIZER_PREFIX) else [])
        # every key header sent counts (a client may send both on Personalizer's routes)
        keys = [v.decode("latin-1") for k, v in scope["headers"] if k in wanted and v]
        if not keys:
            names = "X-API-Key" + (" or Ocp-Apim-Subscription-Key" if len(wanted) > 1 else "")
            return await send_json(send, 401, refused(path, 401, f"missing API key: send it in {names}"),
                                   [(b"www-authenticate", b"ApiKey")])
        is_admin = any(_matches(key, self.admin_keys) for key in keys)
        if not is_admin and not any(_matches(key, self.channel_keys) for key in keys):
            return await send_json(send, 401, refused(path, 401, "unknown API key"),
                                   [(b"www-authenticate", b"ApiKey")])
        if not is_admin and self.admin_only(path):
            return await send_json(send, 403, refused(path, 403, "this key may not use admin routes"))
        return await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``, before any route runs: by Content-Length, or,
    for a body sent without one (chunked), by reading it here up to the limit and handing
    the route what was read.

    Why read a chunked body here rather than count it as the route reads it: a FastAPI
    route reads its body inside FastAPI, which answers any error raised while reading
    with its own 400 ("There was an error parsing the body", not our error format), and
    a route that never reads its body would not be limited at all. Clients that send
    Content-Length (nearly all) take the first path and nothing is buffered here.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, larger: Callable[[Scope], int | None] = lambda scope: None):
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger  # a route's own, larger limit (a model upload), or None

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        max_bytes = self.larger(scope) or self.max_bytes
        message = f"request body over {max_bytes} bytes"
        for k, v in scope["headers"]:
            if k == b"content-length" and v.isdigit():
                if int(v) > max_bytes:
                    return await send_json(send, 413, refused(path, 413, message))
                # The server reads no more than Content-Length: nothing left to count.
                return await self.app(scope, receive, send)
        read: list[dict] = []
        seen = 0
        while True:
            msg = await receive()
            read.append(msg)
            if msg["type"] != "http.request":  # the client went away: the route learns it too
                break
            seen += len(msg.get("body", b""))
            if seen > max_bytes:
                return await send_json(send, 413, refused(path, 413, message))
            if not msg.get("more_body", False):
                break

        async def replay() -> dict:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)


class ReadinessMiddleware:
    """``GET /readyz`` with detail: 200 once catalog and policy are loaded, else 503;
    the body says which model serves (registry, file, last-known-good or cold start)."""

    def __init__(self, app: ASGIApp, status: Callable[[], dict | None]):
        self.app = app
        self.status = status

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        # GET and HEAD only: any other method goes on to BentoML's own route, which says 405.
        if scope["type"] == "http" and scope["path"] == "/readyz" and scope["method"] in ("GET", "HEAD"):
            detail = self.status()
            if detail is None:
                body = json.dumps({"ready": False, "detail": "starting: catalog and policy not loaded yet"})
                return await send_json(send, 503, body.encode())
            return await send_json(send, 200 if detail["ready"] else 503, json.dumps(detail).encode())
        return await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


class DocsPageMiddleware:
    """The API's docs page and what it loads from us, answered before keys (it is public);
    every answer carries ``headers`` (the page's Content-Security-Policy)."""

    def __init__(self, app: ASGIApp, pages: dict[str, tuple[str, str]], headers: list[tuple[bytes, bytes]]):
        self.app = app
        self.pages = {path: (ctype.encode(), body.encode()) for path, (ctype, body) in pages.items()}
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        page = self.pages.get(scope["path"]) if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") else None
        if page is None:
            return await self.app(scope, receive, send)
        ctype, body = page
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", ctype), (b"content-length", str(len(body)).encode()), *self.headers]})
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})


CORS_METHODS = b"GET, POST, PUT, DELETE"
CORS_HEADERS = b"content-type, x-api-key, ocp-apim-subscription-key"


class CorsMiddleware:
    """Cross-origin calls from a browser (an agent desktop on another origin), for the
    origins configured (``OFFER_BANDIT_CORS_ORIGINS``; ``*``: any). Outermost, so that a
    preflight ``OPTIONS`` is answered without a key (a browser sends none with it). A
    request from another origin gets no CORS headers, so the browser withholds the answer.
    Without configured origins this layer is not installed: no CORS headers at all.

    Keys travel in headers, never cookies: no ``Access-Control-Allow-Credentials``."""

    def __init__(self, app: ASGIApp, origins: frozenset[str], max_age: int = 600):
        self.app = app
        self.any = "*" in origins
        self.origins = origins
        self.max_age = str(max_age).encode()

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        origin = _header(scope, b"origin") if scope["type"] == "http" else None
        if origin is None:
            return await self.app(scope, receive, send)
        allowed = self.any or origin in self.origins
        preflight = scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method") is not None
        if preflight and not allowed:
            body = json.dumps({"error": f"origin {origin!r} may not call this service from a browser "
                                        "(OFFER_BANDIT_CORS_ORIGINS)"}).encode()
            return await send_json(send, 403, body)
        if not allowed:
            return await self.app(scope, receive, send)
        cors = [(b"access-control-allow-origin", b"*" if self.any else origin.encode("latin-1")), (b"vary", b"Origin")]
        if preflight:
            await send({"type": "http.response.start", "status": 204, "headers": [
                *cors, (b"access-control-allow-methods", CORS_METHODS),
                (b"access-control-allow-headers", CORS_HEADERS), (b"access-control-max-age", self.max_age)]})
            return await send({"type": "http.response.body", "body": b""})

        async def with_cors(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors,
                                                   (b"access-control-expose-headers", b"www-authenticate")]}
            await send(message)

        await self.app(scope, receive, with_cors)
