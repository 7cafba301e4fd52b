"""The decision service: a BentoML 1.4 service with every route in one FastAPI app.

BentoML runs the server, workers and lifecycle, answers ``/livez``, builds the
bento and merges these routes into its OpenAPI document (``/docs.json``). The
routes are FastAPI class views, so one validation and error format covers the
native API and the Personalizer-compatible one, including GET routes, path
parameters and Personalizer's 201/204 answers. Every decision goes through
``Decider.decide_async``: the core's one decision path. ``POST /decide`` and
Personalizer's rank are answered first by ``service.lane`` (the same models and
service methods, without the framework's per-request layers).

Start it with ``offer-bandit serve`` or ``bentoml serve service.service:OfferBandit``.
"""

from __future__ import annotations

import functools
import gc
import inspect
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import bentoml
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, ConfigDict, Field

from bandit.config.catalog import NO_OFFER
from bandit.decide.actions import check_features
from bandit.domain.context import ActionId, DecisionRequest, Identifier, Strict
from bandit.decide.decider import Decision
from bandit.domain.errors import (
    ConfigError,
    EventConflict,
    InvalidRequest,
    LogUnavailable,
    OutcomeConflict,
    UnknownEvent,
)
from bandit.domain.outcomes import OUTCOME_FACTS, REPORTED_OUTCOME_TYPES, OutcomeType, ValueRule
from bandit.log.store import STORE_ERRORS
from bandit.log.async_pg import request_writer
from bandit.deploy.fleet import ConfigFollower, publish
from bandit.deploy.runtime import Runtime, build_runtime
from bandit.deploy.models import ModelSource, ModelStatus
from bandit.config.settings import Settings, get_settings
from tracking.runs import fail_fast
from service import answers, instance, metrics, openapi
from service.examples import examples
from service.openapi import Document
from service.lane import LANE_ROUTES, DecisionLane, LaneRoute
from service.middleware import (
    ASGIApp,
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    CorsMiddleware,
    DocsPageMiddleware,
    ReadinessMiddleware,
    is_admin,
)
from service.personalizer import (
    MAX_SLOTS,
    PREFIXES,
    MultiSlotRankRequest,
    MultiSlotRankResponse,
    MultiSlotRewardRequest,
    RankRequest,
    RankResponse,
    RewardRequest,
    SlotResponse,
    check_slots,
    sends_no_offer,
    slot_event_id,
    slot_namespace,
    slot_rank,
    to_decision_request,
    to_rank_response,
)
from service.personalizer_admin import (
    NoModel,
    NotFoundHere,
    NotSupported,
    is_management,
    is_model_upload,
    management,
)

log = logging.getLogger("offer_bandit.service")

ReportedOutcome = Literal[REPORTED_OUTCOME_TYPES]  # type: ignore[valid-type]  # what channels report


def outcome_variants(schema: dict[str, Any]) -> None:
    """The outcome request's document says, type by type, what each may carry (``OUTCOME_FACTS``:
    revenue is not negative, a decline or complaint carries no value, only nps a score, and
    nps needs one), so that a client generated from it sends what is accepted. Validation
    itself stays where it is (the core's checks, a 400 naming the field)."""
    variants = []
    for kind in REPORTED_OUTCOME_TYPES:
        facts = OUTCOME_FACTS[OutcomeType(kind)]
        value: dict[str, Any] = {"type": "null"}
        if facts.value is not ValueRule.NONE:
            number: dict[str, Any] = {"type": "number", **({"minimum": 0} if facts.revenue else {})}
            value = number if facts.value is ValueRule.REQUIRED else {"anyOf": [number, {"type": "null"}]}
        score = {"type": "number", "minimum": 0, "maximum": 10} if facts.scored else {"type": "null"}
        variants.append({"properties": {"type": {"const": kind}, "value": value, "score": score},
                         "required": ["type", "score"] if facts.scored else ["type"]})
    schema["oneOf"] = variants


class OutcomeRequest(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=outcome_variants)

    event_id: Identifier
    type: ReportedOutcome
    value: float | None = Field(None, allow_inf_nan=False, description="Revenue (accepted, converted: not "
                                "negative); none for declined and complaint.")
    score: float | None = Field(None, ge=0, le=10, description="NPS score 0..10 (nps only, and required there).")


class OutcomeAnswer(BaseModel):
    event_id: str
    recorded: bool = Field(description="false: the identical outcome was already recorded")
    counts: bool = Field(description="false: the decision was made with defer_activation and is not activated "
                         "yet; the outcome is kept and counts (learning, monitoring) once it is")


class ActivateRequest(Strict):
    event_id: Identifier


class ActivateAnswer(BaseModel):
    event_id: str
    activated: bool = Field(description="false: it was already active")


class OfferStatus(BaseModel):
    id: str
    title: str
    family: str
    value: float
    channels: list[str]
    valid_from: str | None
    valid_until: str | None
    status: Literal["active", "outside_window", "suspended"]


class OffersAnswer(BaseModel):
    catalog_version: str
    offers: list[OfferStatus]


class ReloadAnswer(BaseModel):
    catalog_version: str
    offers: int
    mode: str = Field(description="The policy file's mode: online or apprentice")
    policy_version: str = Field("", description="The policy file's content hash")
    published: int = Field(0, description="The number it was published under: every replica serves it within "
                                          "OFFER_BANDIT_CONFIG_REFRESH_SECONDS")


class OfferSwitch(BaseModel):
    offer_id: str
    status: Literal["suspended", "resumed"]


class SwitchEvent(BaseModel):
    suspended: bool
    reason: str
    by: str | None = Field(description="monitor, admin, or admin: <the request's by>")
    at: float = Field(description="Unix time")


class ActionSwitch(BaseModel):
    action_id: str
    status: Literal["suspended", "resumed"]


class ModelState(BaseModel):
    source: Literal["file", "registry", "last_known_good", "cold_start"]
    version: str
    loaded_at: float = Field(description="When this replica loaded it (seconds since the epoch)")
    last_error: str | None = Field(description="Why the source's current model is not serving, if it is not")
    exploration: str | None = Field(description="How the model explores, when not as the policy file says")


class ModelAnswer(BaseModel):
    model: ModelState


class ConfigProblems(BaseModel):
    error: str
    problems: list[str] = Field(description="Each problem with its file, offer and field")


class ForgetRequest(Strict):
    """The customer's id in the body, never in the path: paths end up in access logs."""

    customer_id: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00]*$")
    requested_by: str | None = Field(None, max_length=128, pattern=r"^[^\x00]*$",
                                     description="Who asked (a ticket or a name), kept in the audit row")


class ForgetAnswer(BaseModel):
    decisions: int
    outcomes: int
    contacts: int


class SuspendRequest(Strict):
    # No NUL: PostgreSQL cannot store it in a text column (the insert failed with a 500).
    reason: str = Field("", max_length=500, pattern=r"^[^\x00]*$")
    by: str | None = Field(None, max_length=128, pattern=r"^[^\x00]*$",
                           description="Who (a name, a ticket): kept with the suspension's history")


# What each route can refuse for its own reasons. Every route's key (401, 403), size (413) and
# validation (422; Personalizer: 400) answers, in the shape of its family, are added to the
# document by ``service.openapi``, which also gives every error its schema.
DECIDE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "An offer in candidates that is not in the catalog, or features VW cannot read; "
          "detail names the field"},
    409: {"description": "event_id reused for another request"}}
OUTCOME_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A value or score this outcome type cannot carry, or an offer outcome for no_offer"},
    404: {"description": "No decision with this event_id"},
    409: {"description": "Contradicts the outcome already recorded (the first stands)"},
    503: {"description": "The decision log is unavailable: nothing recorded, retry (Retry-After)"}}
EVENT_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No decision with this event_id"},
    503: {"description": "The decision log is unavailable: nothing recorded, retry (Retry-After)"}}
OFFER_ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No such offer in the catalog"}}
LOG_ERRORS: dict[int | str, dict[str, Any]] = {
    503: {"description": "The decision log is unavailable: nothing erased, retry (Retry-After)"}}
RELOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ConfigProblems, "description": "Catalog or policy file invalid; the previous ones still serve"}}
P_RANK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request (the message names the field), or no action can answer no offer"},
    409: {"description": "eventId reused for another request"}}
P_EVENT_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No decision with this event id"},
    503: {"description": "The decision log is unavailable: nothing recorded, retry (Retry-After)"}}
P_SLOT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A slotId the rank did not have"}, 404: {"description": "No multi-slot rank with this event id"}}

app = FastAPI(title="offer-bandit", version="0.1.0", openapi_url=None, docs_url=None, redoc_url=None,
              description="Point-of-service offer decisions: guarded, exploring, logged.")


_SETTINGS = get_settings()

def _answer(answer: tuple[int, bytes]) -> Response:
    status, body = answer
    return Response(body, status_code=status, media_type="application/json")


@app.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    return _answer(answers.invalid(request.url.path, exc.errors()))


@app.exception_handler(InvalidRequest)
async def _bad(request: Request, exc: InvalidRequest) -> Response:
    return _answer(answers.bad(request.url.path, exc))


@app.exception_handler(UnknownEvent)
async def _unknown(request: Request, exc: UnknownEvent) -> Response:
    return _answer(answers.unknown_event(request.url.path, exc))


@app.exception_handler(EventConflict)
async def _conflict(request: Request, exc: EventConflict) -> Response:
    return _answer(answers.conflict(request.url.path, exc))


@app.exception_handler(OutcomeConflict)
async def _outcome_conflict(request: Request, exc: OutcomeConflict) -> Response:
    return _answer(answers.outcome_conflict(request.url.path, exc))


@app.exception_handler(LogUnavailable)
async def _log_unavailable(request: Request, exc: LogUnavailable) -> Response:
    """The log's database down: 503 (retry later; this replica says unready meanwhile)."""
    status, body = answers.personalizer_or_native(request.url.path, 503, "ServiceUnavailable", str(exc))
    return Response(body, status_code=status, media_type="application/json", headers={"Retry-After": "1"})


@app.exception_handler(Exception)
async def _internal(request: Request, exc: Exception) -> Response:
    """Anything else: logged with its traceback, answered as JSON (never plain text)."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _answer(answers.internal(request.url.path))


@app.exception_handler(NotSupported)
async def _not_supported(request: Request, exc: NotSupported) -> Response:
    return _answer(answers.not_supported(request.url.path, str(exc)))


@app.exception_handler(NoModel)
async def _no_model(request: Request, exc: NoModel) -> Response:
    return _answer(answers.personalizer_or_native(request.url.path, 409, "NoModel", str(exc)))


@app.exception_handler(NotFoundHere)
async def _not_found(request: Request, exc: NotFoundHere) -> Response:
    return _answer(answers.personalizer_or_native(request.url.path, 404, "NotFound", str(exc)))


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """The framework's own errors (no such route, 405, a body it cannot decode) in our error format.

    A body that is not text at all (bytes that are not UTF-8) failed inside FastAPI with a
    bare 400 "There was an error parsing the body"; it is an invalid body like any other,
    answered as ``/decide`` answers it (422 naming ``body``, 400 on Personalizer routes)."""
    path = request.url.path
    if exc.status_code == 400 and exc.__cause__ is not None:
        return _answer(answers.invalid(path, [{"loc": ("body",), "type": "json_invalid",
                                               "msg": f"not a JSON document: {exc.__cause__}"}]))
    message = f"{exc.detail}: {request.method} {path!r}" if exc.status_code in (404, 405) else str(exc.detail)
    return Response(answers.refused(path, exc.status_code, message), status_code=exc.status_code,
                    headers=exc.headers, media_type="application/json")


@functools.cache
def api_document() -> Document:
    """The API document, built once per process (the routes do not change while it runs)."""
    return Document(openapi.document(app, examples))


openapi.register_yaml()


def front(app: ASGIApp) -> ASGIApp:
    """Our layers, outermost first, in front of the BentoML app: CORS (when configured),
    readiness detail, the docs page, API keys, body size limit, then the decision lane;
    every other request goes on into BentoML."""
    lane = DecisionLane(app, service=instance.current)
    limited = BodyLimitMiddleware(lane, max_bytes=_SETTINGS.max_body_bytes, larger=lambda scope: (
        _SETTINGS.max_model_bytes if scope["method"] == "PUT" and is_model_upload(scope["path"]) else None))
    keyed = ApiKeyMiddleware(limited, channel_keys=_SETTINGS.channel_keys(), admin_keys=_SETTINGS.admin_keys(),
                             admin_only=lambda path: is_admin(path) or is_management(path))
    docs = DocsPageMiddleware(keyed, {"/": ("text/html; charset=utf-8", openapi.DOCS_PAGE),
                                      "/docs": ("text/html; charset=utf-8", openapi.DOCS_PAGE),
                                      "/docs/init.js": ("text/javascript; charset=utf-8", openapi.DOCS_INIT)},
                              [(b"content-security-policy", openapi.DOCS_POLICY.encode())])
    ready = ReadinessMiddleware(docs, status=_readiness)
    origins = _SETTINGS.cors_allowed()
    outer = CorsMiddleware(ready, origins) if origins else ready
    return metrics.TimingMiddleware(outer, observer=_observer)


class FrontedService(bentoml.Service):  # type: ignore[type-arg]
    """A BentoML service whose ASGI app has our layers in front of BentoML's own.

    Why not ``add_asgi_middleware``: BentoML puts those inside its own per-request layers
    (OpenTelemetry, proxy headers, error and timeout middleware, request context). Measured
    on the service benchmark, moving our layers in front of them took the decision from
    about 650 to 370 us of worker CPU and the full-load p99 from about 70 to 15 ms: the
    timeout middleware alone keeps a 30 s timer and a future alive for every request,
    which made full garbage collections slow. Routes other than the lane's still get
    BentoML's layers, its 30 s request timeout included.
    """

    __slots__ = ()

    @property
    def openapi_spec(self) -> Document:  # type: ignore[override]
        """Our document (``service.openapi``), where BentoML would build its own."""
        return api_document()

    def to_asgi(self, is_main: bool = True) -> ASGIApp:
        inner = super().to_asgi(is_main)
        if isinstance(inner, Starlette):
            # A path no route matches (a newline in an id is enough: BentoML's mount of our
            # app does not match it) is answered by BentoML's router, in plain text; ours too.
            inner.add_exception_handler(StarletteHTTPException, _http_error)
        return front(inner)


@bentoml.asgi_app(app, path="/")
@bentoml.service(
    service_class=FrontedService,
    name="offer_bandit",
    workers=1,  # SQLite has one writer; scale out with replicas on PostgreSQL
    traffic={"timeout": 30},
    # The request path carries its own metrics (/metrics below); BentoML's per-request
    # access log, traffic histograms and tracing spans cost more than the decision.
    logging={"access": {"enabled": False}},
    metrics={"enabled": False},
    tracing={"sample_rate": 0.0, "excluded_urls": ["decide", "outcome", "activate", "personalizer"]},
)
class OfferBandit:
    """Decides what to offer, or no offer, for a contact-center interaction."""

    def __init__(self) -> None:
        settings = _SETTINGS
        if not settings.channel_keys() and not settings.admin_keys():
            raise RuntimeError(
                "no API keys configured: set OFFER_BANDIT_API_KEYS (channel keys, comma separated) and "
                "OFFER_BANDIT_ADMIN_KEY, or the *_FILE variants; see README 'Running the service'"
            )
        fail_fast()  # MLflow's HTTP retries bounded in this process (tracking.runs)
        self.observer = metrics.observer()
        self.rt: Runtime = build_runtime(settings, source=_model_source(settings), observer=self.observer)
        self.writer = request_writer(self.rt.store, settings.database_pool_size, timed=self.observer.committed)
        metrics.report_state(self.metrics_state)
        self._probing, self._probed = threading.Lock(), 0.0
        self.rt.models.start_polling(settings.model_poll_seconds)
        self.fleet = ConfigFollower(self.rt.config, self.rt.store, on_change=self._config_changed)
        self.fleet.start(settings.config_refresh_seconds)
        cfg = self.rt.config.current
        log.info("ready: %d offers (catalog %s), model %s", len(cfg.catalog.offers), cfg.catalog.version,
                 self.rt.models.status.version)
        # Everything imported and built so far lives as long as the process. Moving it out of
        # the collector's reach keeps full collections short: measured at 50-150 ms each under
        # load before, which was the whole p99 tail.
        gc.collect()
        gc.freeze()

    def readiness(self) -> dict:
        """Ready unless the decision log fails: every decision would be ``no_offer``,
        ``logged: false``, so a load balancer should send the traffic to another replica.
        While it fails, the log is probed (in the background, at most once a second) so
        that the replica comes back once the log does, without traffic to prove it."""
        cfg = self.rt.config.current
        status = self.rt.models.status
        health = self.rt.decider.log_health
        if health.failing:
            self._probe_log()
        trouble = health.describe()
        return {"ready": trouble is None, "catalog_version": cfg.catalog.version, "offers": len(cfg.catalog.offers),
                "policy_mode": cfg.policy.mode, "policy_version": cfg.policy_version, "published": cfg.published,
                "config_error": self.fleet.last_error, "model": status.as_dict(),
                "log": {"writable": trouble is None, "error": health.last_error},
                "detail": trouble or readiness_detail(status)}

    def _config_changed(self, cfg: Any) -> None:
        """A configuration published by another replica now serves here: explore as it says."""
        self.rt.models.follow_exploration()

    def metrics_state(self) -> dict:
        """What the gauges show at a scrape (``service.metrics.report_state``)."""
        cfg = self.rt.config.current
        try:
            suspended = float(len(self.rt.store.suspended() | set(cfg.policy.guardrails.suspended_offers)))
        except STORE_ERRORS:
            suspended = float("nan")  # the log does not answer: unknown (offer_bandit_log_writable says why)
        return {"model": self.rt.models.status.as_dict(), "load_failures": self.rt.models.load_failures,
                "catalog_version": cfg.catalog.version, "policy_version": cfg.policy_version,
                "policy_mode": cfg.policy.mode, "suspended": suspended,
                "log_writable": not self.rt.decider.log_health.failing}

    def _probe_log(self) -> None:
        now = time.monotonic()
        if self._probing.locked() or now - self._probed < 1.0:
            return
        self._probed = now

        def probe() -> None:
            with self._probing:
                try:
                    self.rt.store.probe()
                except STORE_ERRORS as exc:
                    log.warning("decision log probe failed: %s", exc)
                    return
                log.info("decision log answers again: ready")
                self.rt.decider.log_health.succeeded()

        threading.Thread(target=probe, name="log-probe", daemon=True).start()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.fleet.stop()
        self.rt.models.stop()
        self.rt.store.close()

    # -- what the decision routes do, whichever way they are reached (see service.lane) --
    async def decide_request(self, request: DecisionRequest) -> Decision:
        return await self.rt.decider.decide_async(request, self.writer)

    async def rank(self, body: RankRequest) -> RankResponse:
        cfg = self.rt.config.current
        mapped = to_decision_request(body, cfg.catalog, cfg.policy.personalizer.no_offer_action)
        return to_rank_response(body, await self.decide_request(mapped.request), mapped.stand_in)

    async def rank_multi_slot(self, body: MultiSlotRankRequest) -> MultiSlotRankResponse:
        """One decision per slot, in order (``service.personalizer``); everything a slot could
        be refused for is checked before the first is decided, so none is logged half-way."""
        cfg = self.rt.config.current
        no_offer = cfg.policy.personalizer.no_offer_action
        event_id = check_slots(body, cfg.catalog, no_offer)
        sent = sends_no_offer(body, no_offer)
        for k, slot in enumerate(body.slots):
            check_features(to_decision_request(slot_rank(body, k, event_id, set(), sent), cfg.catalog, no_offer,
                                               slot_namespace(slot), [slot.baseline_action]).request)
        taken: set[str] = set()
        answered = []
        for k, slot in enumerate(body.slots):
            mapped = to_decision_request(slot_rank(body, k, event_id, taken, sent), cfg.catalog, no_offer,
                                         slot_namespace(slot), [slot.baseline_action])
            decision = await self.decide_request(mapped.request)
            chosen = mapped.stand_in if decision.offer_id == NO_OFFER else decision.offer_id
            if chosen != no_offer:  # the no-offer action may fill any number of slots
                taken.add(chosen)
            answered.append(SlotResponse(id=slot.id, rewardActionId=chosen))
        return MultiSlotRankResponse(eventId=event_id, slots=answered)

    def slot_events(self, event_id: str) -> dict[str, str]:
        """A multi-slot rank's slots: slot id -> the event id its decision is logged under."""
        found: dict[str, str] = {}
        for k in range(1, MAX_SLOTS + 1):
            rec = self.rt.store.get_decision(slot_event_id(event_id, k))
            if rec is None:
                break
            slot = rec.payload.get("context", {}).get("features", {}).get("slot", {})
            found[str(slot.get("id"))] = rec.event_id
        if not found:
            raise UnknownEvent(event_id)
        return found

    # -- native API (/decide: see LANE_ROUTES) ----------------------------------
    @app.post("/outcome", response_model=OutcomeAnswer,
              responses=OUTCOME_ERRORS, tags=["decisions"])
    def outcome(self, body: OutcomeRequest) -> OutcomeAnswer:
        """Record what happened after a decision: accepted (with revenue), declined, converted, complaint, nps."""
        receipt = self.rt.decider.record_outcome(body.event_id, body.type, value=body.value, score=body.score)
        return OutcomeAnswer(event_id=body.event_id, recorded=receipt.recorded, counts=receipt.counts)

    @app.post("/activate", response_model=ActivateAnswer, responses=EVENT_ERRORS, tags=["decisions"])
    def activate(self, body: ActivateRequest) -> ActivateAnswer:
        """Mark a decision made with ``defer_activation`` as shown; only activated decisions are learned from."""
        return ActivateAnswer(event_id=body.event_id, activated=self.rt.decider.activate(body.event_id))

    @app.get("/offers", response_model=OffersAnswer, tags=["catalog"])
    def offers(self) -> OffersAnswer:
        """The catalog as loaded, with each offer's live status."""
        catalog = self.rt.config.current.catalog
        suspended = self.rt.store.suspended(fresh=True) | set(self.rt.config.current.policy.guardrails.suspended_offers)
        today = datetime.now(UTC).date()
        return OffersAnswer(catalog_version=catalog.version, offers=[
            OfferStatus(id=o.id, title=o.title, family=o.family, value=o.value,
                        channels=[c.value for c in o.channels],
                        valid_from=o.valid_from.isoformat() if o.valid_from else None,
                        valid_until=o.valid_until.isoformat() if o.valid_until else None,
                        status=o.live_status(today, o.id in suspended))  # type: ignore[arg-type]
            for o in catalog.offers.values()])

    @app.get("/metrics", include_in_schema=False)
    def prometheus(self) -> Response:
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    # -- admin -----------------------------------------------------------------
    @app.post("/admin/reload", tags=["admin"], response_model=ReloadAnswer, responses=RELOAD_ERRORS)
    def reload_config(self) -> dict:
        """Reload catalog and policy from disk; on any problem keep serving the old ones (422 lists them).
        What loaded is published through the log: every replica serves it within
        OFFER_BANDIT_CONFIG_REFRESH_SECONDS (``published`` is its number)."""
        try:
            self.rt.config.reload()
        except ConfigError as exc:
            return JSONResponse({"error": "configuration not reloaded; still serving the previous one",
                                 "problems": exc.problems}, status_code=422)  # type: ignore[return-value]
        cfg = publish(self.rt.config, self.rt.store, published_by="POST /admin/reload")
        self.rt.models.follow_exploration()  # at once on this replica; the others when they adopt it
        return {"catalog_version": cfg.catalog.version, "offers": len(cfg.catalog.offers), "mode": cfg.policy.mode,
                "policy_version": cfg.policy_version, "published": cfg.published}

    @app.post("/admin/offers/{offer_id}/suspend", tags=["admin"], response_model=OfferSwitch,
              responses=OFFER_ERRORS)
    def suspend(self, offer_id: Identifier, body: Annotated[SuspendRequest | None, Body()] = None) -> dict:
        """Kill switch: the offer is not made from the next request on."""
        self._known_offer(offer_id)
        self.rt.store.set_suspended(offer_id, True, body.reason if body else "", _actor(body))
        return {"offer_id": offer_id, "status": "suspended"}

    @app.post("/admin/offers/{offer_id}/resume", tags=["admin"], response_model=OfferSwitch,
              responses=OFFER_ERRORS)
    def resume(self, offer_id: Identifier, body: Annotated[SuspendRequest | None, Body()] = None) -> dict:
        """Lift the kill switch. The monitor judges the offer again on offers made from now
        on: the complaints that suspended it do not suspend it again."""
        self._known_offer(offer_id)
        self.rt.store.set_suspended(offer_id, False, body.reason if body else "", _actor(body))
        return {"offer_id": offer_id, "status": "resumed"}

    @app.post("/admin/customers/forget", tags=["admin"], response_model=ForgetAnswer, responses=LOG_ERRORS)
    def forget(self, body: ForgetRequest) -> dict:
        """Erase one customer's decisions, outcomes and contact history (by the salted key)
        and audit it without saying whose; a second call erases nothing (all zeros)."""
        removed = self.rt.decider.forget(body.customer_id, body.requested_by)
        return {"decisions": removed.decisions, "outcomes": removed.outcomes, "contacts": removed.contacts}

    @app.get("/admin/offers/{offer_id}/history", tags=["admin"], response_model=list[SwitchEvent])
    def switch_history(self, offer_id: ActionId) -> list[dict]:
        """Every suspension and resume of an offer (or a caller's action): who, when, why; oldest first."""
        return [{"suspended": e["suspended"], "reason": e["reason"] or "", "by": e["actor"], "at": e["ts"]}
                for e in self.rt.store.suspension_history(offer_id)]

    @app.post("/admin/actions/{action_id}/suspend", tags=["admin"], response_model=ActionSwitch)
    def suspend_action(self, action_id: ActionId, body: Annotated[SuspendRequest | None, Body()] = None) -> dict:
        """Kill switch for a caller's own action (a Personalizer application's, which the
        catalog does not list, so any id is taken): not chosen from the next request on."""
        self.rt.store.set_suspended(action_id, True, body.reason if body else "", _actor(body))
        return {"action_id": action_id, "status": "suspended"}

    @app.post("/admin/actions/{action_id}/resume", tags=["admin"], response_model=ActionSwitch)
    def resume_action(self, action_id: ActionId, body: Annotated[SuspendRequest | None, Body()] = None) -> dict:
        self.rt.store.set_suspended(action_id, False, body.reason if body else "", _actor(body))
        return {"action_id": action_id, "status": "resumed"}

    @app.post("/admin/model/reload", tags=["admin"], response_model=ModelAnswer)
    def reload_model(self) -> dict:
        """Check the model source now; a model that fails to load never replaces the one serving."""
        self.rt.models.refresh()
        return {"model": self.rt.models.status.as_dict()}

    def _known_offer(self, offer_id: str) -> None:
        if offer_id not in self.rt.config.current.catalog.offers:
            raise UnknownOffer(offer_id)


class UnknownOffer(InvalidRequest):
    def __init__(self, offer_id: str):
        super().__init__("offer_id", f"unknown offer id '{offer_id}'")


@app.exception_handler(UnknownOffer)
async def _unknown_offer(request: Request, exc: UnknownOffer) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=404)


def _declare(route: LaneRoute) -> None:
    """Declare a lane route on the FastAPI app from its one definition (``LANE_ROUTES``):
    the OpenAPI document shows it, and without the lane in front FastAPI answers it by
    the same service method."""
    async def endpoint(body: BaseModel, svc: Any, **_: Any) -> Any:
        return await getattr(svc, route.method)(body)

    # the signature FastAPI reads: the route's own request model (this module's annotations
    # are strings, which FastAPI would look up in the module, not here)
    params = [inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=route.request),
              inspect.Parameter("svc", inspect.Parameter.KEYWORD_ONLY, default=Depends(instance.required))]
    if route.extra.get("api_version"):  # Personalizer's routes take ?api-version, and ignore it
        params.append(inspect.Parameter("api_version", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                                        default=Query(None, alias="api-version")))
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]

    app.add_api_route(route.path, endpoint, methods=["POST"], status_code=route.status, response_model=route.response,
                      responses=globals()[route.errors], tags=route.tags, summary=route.summary,
                      description=route.description, name=f"{route.method} {route.path}")


for _route in LANE_ROUTES:
    _declare(_route)


# -- Personalizer-compatible API: one definition, mounted under each of PREFIXES ---------------
personalizer = APIRouter(tags=["personalizer"])


@personalizer.post("/events/{eventId}/reward", status_code=204, responses=P_EVENT_ERRORS)
def p_reward(eventId: Identifier, body: RewardRequest, svc: Any = Depends(instance.required),  # noqa: N803
             api_version: str | None = Query(None, alias="api-version")) -> Response:
    """Personalizer's Reward: the value becomes a ``reward`` outcome."""
    svc.rt.decider.record_outcome(eventId, OutcomeType.REWARD, value=body.value)
    return Response(status_code=204)


@personalizer.post("/events/{eventId}/activate", status_code=204, responses=P_EVENT_ERRORS)
def p_activate(eventId: Identifier, svc: Any = Depends(instance.required),  # noqa: N803
               api_version: str | None = Query(None, alias="api-version")) -> Response:
    """Personalizer's Activate, for ranks made with ``deferActivation``."""
    svc.rt.decider.activate(eventId)
    return Response(status_code=204)


@personalizer.post("/multislot/events/{eventId}/reward", status_code=204, responses=P_SLOT_ERRORS)
def p_reward_slots(eventId: Identifier, body: MultiSlotRewardRequest, svc: Any = Depends(instance.required),  # noqa: N803
                   api_version: str | None = Query(None, alias="api-version")) -> Response:
    """Personalizer's multi-slot Reward: each slot's value becomes a ``reward`` outcome of its decision."""
    slots = svc.slot_events(eventId)
    for i, r in enumerate(body.reward):
        if r.slot_id not in slots:
            raise InvalidRequest(f"reward[{i}].slotId", f"event '{eventId}' has no slot '{r.slot_id}'")
    for r in body.reward:
        svc.rt.decider.record_outcome(slots[r.slot_id], OutcomeType.REWARD, value=r.value)
    return Response(status_code=204)


@personalizer.post("/multislot/events/{eventId}/activate", status_code=204, responses=P_SLOT_ERRORS)
def p_activate_slots(eventId: Identifier, svc: Any = Depends(instance.required),  # noqa: N803
                     api_version: str | None = Query(None, alias="api-version")) -> Response:
    """Personalizer's multi-slot Activate: every slot's decision is activated."""
    for slot_event in svc.slot_events(eventId).values():
        svc.rt.decider.activate(slot_event)
    return Response(status_code=204)


for _prefix in PREFIXES:
    app.include_router(personalizer, prefix=_prefix)
    app.include_router(management, prefix=_prefix)


def readiness_detail(status: ModelStatus) -> str:
    """What ``/readyz`` says in words: which model serves, and why not the source's when
    the source failed (unreachable, or its current version does not load)."""
    if status.source == "cold_start":
        detail = "cold start: no model, exploring around no_offer"
    else:
        detail = f"serving {status.version} from {status.source}"
    return f"{detail}; last model error: {status.last_error}" if status.last_error else detail


def _model_source(settings: Settings) -> ModelSource | None:
    """A model file when one is configured (``None`` here: the runtime's default), else the
    MLflow registry's alias (``tracking.registry``: MLflow is imported only once a tracking
    store exists)."""
    if settings.model_path:
        return None
    from tracking.registry import RegistryModelSource

    return RegistryModelSource(settings.tracking_uri, settings.registered_model,
                               settings.home / "models" / "registry", settings.model_alias)


def _actor(body: SuspendRequest | None) -> str:
    """Who set a kill switch, for its history: the caller's ``by``, else the admin key's holder."""
    return f"admin: {body.by}" if body is not None and body.by else "admin"


def _observer() -> "metrics.PrometheusObserver | None":
    svc = instance.current()
    return svc.observer if svc is not None else None


def _readiness() -> dict | None:
    svc = instance.current()
    return svc.readiness() if svc is not None else None
