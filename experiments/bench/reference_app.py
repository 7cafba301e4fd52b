"""The bare reference for ``serving.py``: a Starlette app that does the same VW
predict on the same payloads, and nothing else (no guardrails, history, sampling,
logging or rendering). Run by the benchmark under uvicorn; not part of the product.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bandit.config.catalog import load_catalog
from bandit.domain.context import DecisionRequest, History
from bandit.decide.features import offer_features, shared_features
from bandit.decide.vw import VWModel

_catalog = load_catalog(Path(os.environ["BENCH_CATALOG"]))
_model = VWModel.load(Path(os.environ["BENCH_MODEL"]))
_actions = [offer_features(None)] + [offer_features(o) for o in _catalog.offers.values()]
_ids = ["no_offer", *_catalog.offers]
_empty = History()


async def decide(request: Request) -> Response:
    from datetime import UTC, datetime

    req = DecisionRequest.model_validate_json(await request.body())
    pmf = _model.pmf(shared_features(req, _empty, datetime.now(UTC)), _actions)
    best = max(range(len(pmf)), key=pmf.__getitem__)
    return Response(json.dumps({"offer_id": _ids[best], "probability": pmf[best]}), media_type="application/json")


app = Starlette(routes=[Route("/decide", decide, methods=["POST"])])
