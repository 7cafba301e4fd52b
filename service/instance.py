"""The service instance of this worker process, for what is declared outside its class
(FastAPI routes of other modules, the decision lane, readiness)."""

from __future__ import annotations

from typing import Any

import bentoml
from bentoml.exceptions import BentoMLException


def current() -> Any | None:
    """The ``OfferBandit`` instance once BentoML has built it, else ``None``."""
    try:
        return bentoml.get_current_service()
    except BentoMLException:
        return None


def required() -> Any:
    """The instance, for a route's dependency (a route runs only once it is built)."""
    return bentoml.get_current_service()
