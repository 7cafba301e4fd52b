"""Errors the core raises for its callers to turn into clear messages or 4xx answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class OfferBanditError(Exception):
    """Base class: every error here carries a message fit for a user."""


class ConfigError(OfferBanditError):
    """A catalog or policy file is invalid; ``problems`` lists each with file and field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class UnknownEvent(OfferBanditError):
    """An outcome or activation names an event id the log has never seen."""

    def __init__(self, event_id: str):
        self.event_id = event_id
        super().__init__(f"unknown event_id '{event_id}': no decision with this id is in the log")


class EventConflict(OfferBanditError):
    """A decision request reuses an event id that the log holds for a different request.

    Why an error and not the logged answer: a channel that uses its call id as event id
    for two customers would otherwise show the first customer's offer to the second,
    whatever the second's guardrails say (opted out, distressed)."""

    def __init__(self, event_id: str):
        self.event_id = event_id
        super().__init__(f"event_id '{event_id}' was already used for a different request; "
                         "send a new event id (the same id replays only the identical request)")


class OutcomeConflict(OfferBanditError):
    """An outcome contradicts one already recorded for the decision (a decline after an
    acceptance, a second acceptance with another value): the first recorded stands."""

    def __init__(self, event_id: str, type_: str, existing: str):
        self.event_id = event_id
        super().__init__(f"event '{event_id}': a {type_} outcome conflicts with the {existing} outcome already "
                         f"recorded; the first outcome stands")


class Unreachable(OfferBanditError):
    """A store the command needs does not answer (the command line exits 3 for it, told
    apart from bad input's 2)."""


class LogUnavailable(Unreachable):
    """The decision log cannot be read or written now (its database is down or refuses):
    nothing was recorded; the caller may retry. Answered 503, never as a server bug."""

    def __init__(self, what: str, error: BaseException):
        super().__init__(f"the decision log is unavailable, {what} was not recorded; retry later "
                         f"({type(error).__name__})")


class InvalidRequest(OfferBanditError):
    """A request is well-formed but refers to something that does not exist (e.g. an offer id)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def read_config_file(path: Path, what: str) -> str:
    """Read a configuration file, turning I/O errors into a ``ConfigError`` naming it."""
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read {what}: {exc.strerror}"]) from exc


def yaml_mapping(text: str, source: str, empty_ok: bool = True) -> dict[str, Any]:
    """Parse a YAML configuration whose top level is a mapping (the catalog, the policy
    file, the simulator's parameters); anything else is a ``ConfigError`` naming ``source``.
    ``empty_ok``: an empty file is an empty mapping (every default)."""
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from exc
    if raw is None and empty_ok:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: expected a mapping at the top level"])
    return raw
