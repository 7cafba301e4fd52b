"""The decision lane: ``POST /decide`` and Personalizer's rank, answered straight from ASGI.

Why it exists: a decision is the one request that must be fast, and on this route
the framework cost more than the decision. Profiling the served service under load
(py-spy, 16 connections) put about 35% of the worker's time in the layers between
the socket and the endpoint: BentoML's request context, Starlette's routers and
exception middleware, FastAPI's dependency solving (including a thread-pool hop to
build the class view) and its response validation. The lane does what those layers
did for these three routes, and only that: read the body (the size limit applies
in front of the lane), validate it with the same pydantic models, call the same service method
(so the same ``Decider.decide_async``: the one decision path), and serialize the
answer with the model's own serializer. Errors are the same answers as on the
FastAPI routes (``service.answers``).

The lane's routes are defined once, in ``LANE_ROUTES``: the lane dispatches on that
table, and ``service.service`` declares the same table on the FastAPI app (where the
OpenAPI document, ``/docs.json``, comes from) with endpoints that call the same service
method, so mounting the app without the lane changes nothing but speed. Every other
route goes through FastAPI.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from bandit.domain.context import DecisionRequest
from bandit.domain.errors import EventConflict, InvalidRequest, UnknownEvent
from service import answers
from service.middleware import ASGIApp, Scope, send_json
from bandit.decide.decider import Decision
from service.personalizer import PREFIXES, MultiSlotRankRequest, MultiSlotRankResponse, RankRequest, RankResponse

if TYPE_CHECKING:
    from service.service import OfferBandit

log = logging.getLogger("offer_bandit.service")

@dataclass(frozen=True)
class LaneRoute:
    """One route the lane answers: what it reads, which service method answers it, what
    it returns; and what the OpenAPI document says of it."""

    path: str
    request: type[BaseModel]
    response: type[BaseModel]
    method: str  # the ``OfferBandit`` coroutine method that answers it
    status: int
    summary: str
    description: str
    tags: list[str]
    errors: str  # which of ``service.service``'s error tables documents it
    extra: dict[str, Any] = field(default_factory=dict)

    async def answer(self, svc: "OfferBandit", body: bytes) -> tuple[int, BaseModel]:
        return self.status, await getattr(svc, self.method)(self.request.model_validate_json(body))


LANE_ROUTES: tuple[LaneRoute, ...] = (
    LaneRoute("/decide", DecisionRequest, Decision, "decide_request", 200, "Decide",
              "Decide what to offer (or ``no_offer``). Logged durably before it is answered.\n\n"
              "The same ``event_id`` with the same request is a retry: the logged decision comes back with "
              "``replayed: true``. The same ``event_id`` with another request is a 409.",
              ["decisions"], "DECIDE_ERRORS"),
    *(LaneRoute(f"{prefix}/rank", RankRequest, RankResponse, "rank", 201, "Rank",
                "Personalizer's Rank: the same guardrails and decision path as /decide, over the request's "
                "actions. rewardActionId is always one of them: no offer is answered as the policy file's "
                "personalizer.no_offer_action when sent, else the first action not excluded, which must then not "
                "be a catalog offer.", ["personalizer"], "P_RANK_ERRORS", {"api_version": True})
      for prefix in PREFIXES),
    *(LaneRoute(f"{prefix}/multislot/rank", MultiSlotRankRequest, MultiSlotRankResponse, "rank_multi_slot", 201,
                "Rank (multi-slot)", "Personalizer's multi-slot Rank: one decision per slot, in order, each over "
                "the actions no earlier slot took; a slot's no offer is answered as the no-offer action when sent, "
                "else as its baselineAction.", ["personalizer"], "P_RANK_ERRORS", {"api_version": True})
      for prefix in PREFIXES),
)
ROUTES: dict[str, LaneRoute] = {r.path: r for r in LANE_ROUTES}


async def read_body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes | None:
    """The whole request body, or ``None`` if the client went away first."""
    chunks = []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body", False):
            return b"".join(chunks)


class DecisionLane:
    def __init__(self, app: ASGIApp, service: Callable[[], "OfferBandit | None"]):
        self.app = app
        self.service = service
        self._svc: OfferBandit | None = None  # one instance per worker process, once built

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        route = ROUTES.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        svc = (self._svc or self._find()) if route is not None else None
        if route is None or svc is None:
            return await self.app(scope, receive, send)
        body = await read_body(receive)  # within the size limit: BodyLimitMiddleware saw to it
        if body is None:
            return
        path = scope["path"]
        try:
            status, answer = await route.answer(svc, body)
            payload = answer.__pydantic_serializer__.to_json(answer)
        except ValidationError as exc:
            status, payload = answers.invalid(path, exc.errors(include_url=False, include_input=False))
        except InvalidRequest as exc:
            status, payload = answers.bad(path, exc)
        except UnknownEvent as exc:
            status, payload = answers.unknown_event(path, exc)
        except EventConflict as exc:
            status, payload = answers.conflict(path, exc)
        except Exception:
            log.exception("%s failed", path)
            status, payload = answers.internal(path)
        await send_json(send, status, payload)

    def _find(self) -> "OfferBandit | None":
        self._svc = self.service()
        return self._svc
