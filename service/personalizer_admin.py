"""Personalizer's management operations (``PersonalizerAdministrationClient``), mapped onto
this service's concepts, under each of ``service.personalizer.PREFIXES``; admin key only.

=================================  ==========================================================
Personalizer                       here
=================================  ==========================================================
service configuration (GET)        the policy file (reward wait = ``reward.window_hours``,
                                   default reward, exploration, apprentice mode) and the
                                   settings (model poll interval); logs are never deleted
learning settings / policy (GET)   the policy file's VW arguments
evaluations (GET, list)            the retrain flow's offline evaluations (MLflow runs,
                                   ``tracking.evaluations``), by the gate's estimator
model (GET: export)                the model file serving now (cold start: 409, no model yet)
model properties (GET)             when the serving model was written and loaded
model (PUT: import)                a model file source (``OFFER_BANDIT_MODEL_PATH``): the
                                   file is replaced once the upload loads and scores a probe
log properties (GET)               the first and last decision in the log
anything else                      501, with what to do instead (``NotSupported``)
=================================  ==========================================================

Why some answer 501 and not something that looks like success: each would change what the
service decides outside the policy file, the promotion gate or the log, the three places
that are the record of why a decision was made. The 501's message says where to do it.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from bandit.deploy.models import load_checked
from bandit.decide.vw import file_version
from bandit.domain.errors import InvalidRequest, OfferBanditError
from service import instance
from service.personalizer import PREFIXES
from tracking.evaluations import Estimate, Evaluation, evaluation, evaluations


class NotSupported(OfferBanditError):
    """A Personalizer operation this service does not do: answered 501 with the reason and
    what to do instead (``service.answers.not_supported``)."""


class NoModel(OfferBanditError):
    """The service serves cold start: there is no model to export (409)."""


class NotFoundHere(OfferBanditError):
    """A resource Personalizer's API names that does not exist here (an evaluation id): 404."""


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts is not None else None


# -- answers -----------------------------------------------------------------------------
class ServiceConfiguration(BaseModel):
    rewardWaitTime: str = Field(description="reward.window_hours of the policy file, as an ISO 8601 duration")  # noqa: N815
    defaultReward: float = Field(description="reward.default_reward")  # noqa: N815
    rewardAggregation: str = Field(description="Sum: the reward values of an event add up")  # noqa: N815
    explorationPercentage: float | None = Field(description="exploration.epsilon when the explorer uses one "  # noqa: N815
                                                "(epsilon, bag, cover), else null")
    modelExportFrequency: str = Field(description="How often replicas look for a new model "  # noqa: N815
                                      "(OFFER_BANDIT_MODEL_POLL_SECONDS)")
    logRetentionDays: int = Field(description="-1: nothing deletes the decision log")  # noqa: N815
    modelRetrainDays: int = Field(description="The retrain flow's default window, in days")  # noqa: N815
    learningMode: str = Field(description="Online, or Apprentice (policy mode apprentice)")  # noqa: N815
    isAutoOptimizationEnabled: bool = Field(description="false: the nightly gate promotes, tune only recommends")  # noqa: N815
    lastConfigurationEditDate: str | None = Field(description="When the policy file was last written")  # noqa: N815


class PolicyContract(BaseModel):
    name: str
    arguments: str = Field(description="The VW arguments the policy file gives the learner")


class ModelProperties(BaseModel):
    creationTime: str | None = Field(description="When the serving model's file was written")  # noqa: N815
    lastModifiedTime: str | None = Field(description="When this replica began serving it")  # noqa: N815
    version: str
    source: str = Field(description="file, registry, last_known_good or cold_start")


class DateRange(BaseModel):
    from_: str | None = Field(alias="from", serialization_alias="from")
    to: str | None


class LogsProperties(BaseModel):
    dateRange: DateRange  # noqa: N815


class EvaluationSummary(BaseModel):
    expectedReward: float  # noqa: N815
    confidenceInterval: list[float]  # noqa: N815


class PolicyResult(BaseModel):
    name: str
    arguments: str = ""
    policySource: str  # noqa: N815
    summary: EvaluationSummary


class EvaluationContent(BaseModel):
    startTime: str | None  # noqa: N815
    endTime: str | None  # noqa: N815
    value: list[PolicyResult]


class EvaluationAnswer(BaseModel):
    id: str
    name: str
    startTime: str | None  # noqa: N815
    endTime: str | None  # noqa: N815
    creationTime: str | None  # noqa: N815
    status: str
    evaluationType: str = "Auto"  # noqa: N815
    description: str | None = None
    optimalPolicy: str | None = None  # noqa: N815
    content: EvaluationContent | None = None


class EvaluationList(BaseModel):
    value: list[EvaluationAnswer]
    nextLink: str | None = None  # noqa: N815


STATUS = {"FINISHED": "Succeeded", "FAILED": "Failed", "RUNNING": "Running", "KILLED": "Canceled",
          "SCHEDULED": "NotSubmitted"}
# Which Personalizer policy source each evaluated policy is.
SOURCES = {"champion": "Online", "no_offer": "Baseline", "random": "Random", "rules": "Custom",
           "candidate": "OfflineExperimentation"}


def evaluation_answer(ev: Evaluation, with_content: bool) -> EvaluationAnswer:
    start, end = ev.window if ev.window else (None, None)

    def interval(e: Estimate) -> list[float]:
        return [e.low, e.high] if e.low is not None and e.high is not None else []

    content = EvaluationContent(startTime=iso(start), endTime=iso(end), value=[
        PolicyResult(name=name, policySource=SOURCES.get(name, "Custom"),
                     summary=EvaluationSummary(expectedReward=e.value, confidenceInterval=interval(e)))
        for name, e in sorted(ev.estimates.items())]) if with_content else None
    optimal = None if ev.promoted is None else ("candidate" if ev.promoted else "champion")
    return EvaluationAnswer(id=ev.id, name=ev.name, startTime=iso(start), endTime=iso(end), creationTime=iso(ev.created),
                            status=STATUS.get(ev.status, ev.status), description="; ".join(ev.reasons) or None,
                            optimalPolicy=optimal, content=content)


# -- routes ------------------------------------------------------------------------------
management = APIRouter(tags=["personalizer management"])
P501 = "The operation is not done here; the message says what to do instead"


def unsupported(reason: str) -> dict[str, Any]:
    """The route arguments of an operation answered 501 with ``reason``."""
    return {"status_code": 501, "description": f"Not done by this service: {reason}.",
            "responses": {501: {"description": P501, "content": {"application/json": {"example": {
                "error": {"code": "NotImplemented", "message": reason}}}}}}}


CONFIG_501 = ("the service's configuration is its policy file (and OFFER_BANDIT_* settings): edit it, check it with "
              "`offer-bandit validate`, then POST /admin/reload")
POLICY_501 = ("learning settings are the policy file's learner and exploration blocks; `offer-bandit tune` "
              "evaluates alternatives and prints them as policy-file YAML; edit the file, then POST /admin/reload")
EVAL_501 = ("offline evaluations run in the nightly retrain flow (`offer-bandit retrain`) and `offer-bandit tune`; "
            "their results are MLflow runs, listed by GET evaluations")
EVAL_DELETE_501 = "evaluations are MLflow runs of the retrain flow; delete them in MLflow"
FI_501 = "feature importances are not computed by this service"
LOG_DELETE_501 = ("the decision log is the system of record and nothing deletes it; remove rows in its "
                  "database if you must")
MODEL_RESET_501 = ("models are never deleted: `offer-bandit rollback` moves the champion back a version; a model "
                   "file source serves cold start once OFFER_BANDIT_MODEL_PATH names no file")
APPLY_501 = ("a candidate is applied by the promotion gate of the retrain that evaluated it (`offer-bandit retrain`, "
             "`offer-bandit rollback`)")
IMPORT_501 = ("this service serves the MLflow registry's champion, which only the promotion gate moves "
              "(`offer-bandit retrain`, `offer-bandit rollback`); to serve a file, set OFFER_BANDIT_MODEL_PATH")


@management.get("/configurations/service", response_model=ServiceConfiguration)
def get_service_configuration(svc: Any = Depends(instance.required)) -> ServiceConfiguration:
    """Personalizer's service configuration, read from the policy file and the settings."""
    from bandit.learn.window import DEFAULT_WINDOW_DAYS

    policy, settings = svc.rt.config.current.policy, svc.rt.settings
    ex = policy.exploration
    edited = Path(settings.policy).stat().st_mtime if Path(settings.policy).is_file() else None
    return ServiceConfiguration(
        rewardWaitTime=f"PT{policy.reward.window_hours:g}H", defaultReward=policy.reward.default_reward,
        rewardAggregation="Sum", explorationPercentage=ex.epsilon if ex.algorithm in ("epsilon", "bag", "cover")
        else None, modelExportFrequency=f"PT{settings.model_poll_seconds:g}S", logRetentionDays=-1,
        modelRetrainDays=int(DEFAULT_WINDOW_DAYS), learningMode="Apprentice" if policy.mode == "apprentice"
        else "Online", isAutoOptimizationEnabled=False, lastConfigurationEditDate=iso(edited))


@management.put("/configurations/service", **unsupported(CONFIG_501))
def update_service_configuration() -> None:
    raise NotSupported(CONFIG_501)


@management.get("/configurations/policy", response_model=PolicyContract)
def get_policy(svc: Any = Depends(instance.required)) -> PolicyContract:
    """The learning settings: the policy file's VW arguments."""
    return PolicyContract(name=f"policy file {Path(svc.rt.settings.policy).name}",
                          arguments=" ".join(svc.rt.config.current.policy.vw_args()))


@management.put("/configurations/policy", **unsupported(POLICY_501))
def update_policy() -> None:
    raise NotSupported(POLICY_501)


@management.delete("/configurations/policy", **unsupported(POLICY_501))
def reset_policy() -> None:
    raise NotSupported(POLICY_501)


@management.post("/configurations/applyFromEvaluation", **unsupported(APPLY_501))
def apply_from_evaluation() -> None:
    raise NotSupported(APPLY_501)


@management.get("/evaluations", response_model=EvaluationList)
def list_evaluations(svc: Any = Depends(instance.required),
                     top: int | None = Query(None, ge=1, le=1000)) -> EvaluationList:
    """The retrain flow's offline evaluations (MLflow runs), newest first."""
    found = evaluations(svc.rt.settings.tracking_uri, svc.rt.config.current.policy.promotion.estimator, top)
    return EvaluationList(value=[evaluation_answer(ev, with_content=False) for ev in found])


@management.get("/evaluations/{evaluationId}", response_model=EvaluationAnswer, responses={404: {
    "description": "No retrain run with this id"}})
def get_evaluation(evaluationId: str, svc: Any = Depends(instance.required)) -> EvaluationAnswer:  # noqa: N803
    """One retrain run's evaluation: every policy's estimate (the gate's estimator) with its 95% interval."""
    ev = evaluation(svc.rt.settings.tracking_uri, evaluationId, svc.rt.config.current.policy.promotion.estimator)
    if ev is None:
        raise NotFoundHere(f"no retrain run '{evaluationId}' in the MLflow store")
    return evaluation_answer(ev, with_content=True)


@management.put("/evaluations/{evaluationId}", **unsupported(EVAL_501))
def create_evaluation(evaluationId: str) -> None:  # noqa: N803
    raise NotSupported(EVAL_501)


@management.delete("/evaluations/{evaluationId}", **unsupported(EVAL_DELETE_501))
def delete_evaluation(evaluationId: str) -> None:  # noqa: N803
    raise NotSupported(EVAL_DELETE_501)


@management.get("/featureImportances", **unsupported(FI_501))
def list_feature_importances() -> None:
    raise NotSupported(FI_501)


@management.get("/featureImportances/{featureImportanceId}", **unsupported(FI_501))
def get_feature_importance(featureImportanceId: str) -> None:  # noqa: N803
    raise NotSupported(FI_501)


@management.put("/featureImportances/{featureImportanceId}", **unsupported(FI_501))
def create_feature_importance(featureImportanceId: str) -> None:  # noqa: N803
    raise NotSupported(FI_501)


@management.delete("/featureImportances/{featureImportanceId}", **unsupported(FI_501))
def delete_feature_importance(featureImportanceId: str) -> None:  # noqa: N803
    raise NotSupported(FI_501)


@management.get("/logs/properties", response_model=LogsProperties, response_model_by_alias=True)
def get_log_properties(svc: Any = Depends(instance.required)) -> LogsProperties:
    """The time of the first and of the last decision in the log."""
    span = svc.rt.store.time_range()
    first, last = span if span else (None, None)
    return LogsProperties(dateRange=DateRange(**{"from": iso(first), "to": iso(last)}))


@management.delete("/logs", **unsupported(LOG_DELETE_501))
def delete_logs() -> None:
    raise NotSupported(LOG_DELETE_501)


@management.get("/model/properties", response_model=ModelProperties)
def get_model_properties(svc: Any = Depends(instance.required)) -> ModelProperties:
    status = svc.rt.models.status
    path = svc.rt.settings.model_path if status.source == "file" else svc.rt.models.serving_file()
    written = Path(path).stat().st_mtime if path is not None and Path(path).is_file() else None
    loaded = None if status.source == "cold_start" else status.loaded_at
    return ModelProperties(creationTime=iso(written), lastModifiedTime=iso(loaded), version=status.version,
                           source=status.source)


@management.get("/model", response_class=Response, responses={
    200: {"description": "The VW model file serving now", "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}},
    409: {"description": "Cold start: no model yet"},
    501: {"description": "A signed archive: not made here"}})
def export_model(svc: Any = Depends(instance.required), signed: bool = Query(False)) -> Response:
    """The model file serving now, as VW saved it (``vw -i`` reads it)."""
    if signed:
        raise NotSupported("models are not signed here; export with signed=false (the VW model file)")
    path = svc.rt.models.serving_file()
    if path is None:
        raise NoModel("the service serves cold start: there is no model to export yet")
    return Response(path.read_bytes(), media_type="application/octet-stream",
                    headers={"content-disposition": f'attachment; filename="{file_version(path)[5:]}.vw"'})


@management.put("/model", status_code=204, response_class=Response, responses={
    400: {"description": "Not a VW model this service can load"}, **unsupported(IMPORT_501)["responses"]},
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}}})
async def import_model(request: Request, svc: Any = Depends(instance.required)) -> Response:
    """Replace the model file the service serves (``OFFER_BANDIT_MODEL_PATH``), once the upload
    loads and scores a probe with the policy file's exploration; every replica watching the
    file serves it at its next poll, this one at once."""
    target = svc.rt.settings.model_path
    if target is None:
        raise NotSupported(IMPORT_501)
    body = await request.body()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".import-", suffix=".vw", delete=False) as fh:
        fh.write(body)
        upload = Path(fh.name)
    try:
        load_checked(upload, "upload", svc.rt.config.current.policy.exploration)
    except (RuntimeError, ValueError) as exc:  # what VW raises for a file it cannot read as a model
        upload.unlink(missing_ok=True)
        raise InvalidRequest("body", f"not a VW model this service can load: {exc}") from None
    upload.replace(target)  # atomic: the poller never reads half a model
    svc.rt.models.refresh()
    return Response(status_code=204)


@management.delete("/model", **unsupported(MODEL_RESET_501))
def reset_model() -> None:
    raise NotSupported(MODEL_RESET_501)


MANAGED = frozenset(route.path.split("/")[1] for route in management.routes)  # type: ignore[attr-defined]
"""The first path segments of the management operations (``configurations``, ``model``, ...)."""


def is_management(path: str) -> bool:
    """Whether ``path`` is one of Personalizer's management operations (admin key only)."""
    for prefix in sorted(PREFIXES, key=len, reverse=True):
        if path.startswith(prefix + "/"):
            return path[len(prefix) + 1:].split("/", 1)[0] in MANAGED
    return False


def is_model_upload(path: str) -> bool:
    """Whether ``path`` is the model route (``PUT`` there imports a model: a larger body)."""
    return any(path == f"{prefix}/model" for prefix in PREFIXES)
