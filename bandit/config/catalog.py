"""The offer catalog: marketing decides *what* may be offered.

A YAML file owned by marketing (``config/offers.yaml``). Loading validates the
whole file and reports every problem at once, each with file, offer id and field,
so a marketer fixes a catalog in one pass. ``no_offer`` is built in: it is not in
the file and is always eligible.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from bandit.domain.context import NO_OFFER_ID, Channel, Identifier, Label, RequestType, Strict
from bandit.domain.errors import ConfigError, read_config_file
from bandit.config.templates import CompiledOfferTemplates, compile_offer_templates

NO_OFFER = NO_OFFER_ID


class TemplatePart(Strict):
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    when: str | None = None


class Eligibility(Strict):
    """Marketing's targeting. ``None`` means "any"."""

    tiers: tuple[Label, ...] | None = None
    regions: tuple[Label, ...] | None = None
    request_types: tuple[RequestType, ...] | None = None
    intents: tuple[Label, ...] | None = None
    excluded_products: tuple[Label, ...] = Field((), description="Holding any of these excludes the offer.")
    required_products: tuple[Label, ...] = Field((), description="The customer must hold at least one of these.")
    min_tenure_months: int = Field(0, ge=0)
    authenticated_only: bool = False
    requires_attributes: tuple[Label, ...] = Field(
        (), description="Context attributes the templates need; without them the offer is not eligible."
    )


CAPACITY_PERIODS = {"hour": 3600.0, "day": 86400.0}


class Capacity(Strict):
    """How often an offer may be made: at most ``max_offers`` in any ``per`` (a rolling hour
    or 24 hours), counted across every replica in the shared log; on ``channels`` only when
    set (a callback team that serves phone and chat), else on all. Why: an offer that
    promises a person's time (a callback from a sales specialist) must not be made more
    often than those people can keep it; once reached, it is ineligible (reason
    ``capacity``) and the learner never sees it."""

    max_offers: int = Field(ge=1)
    per: Literal["hour", "day"]
    channels: tuple[Channel, ...] | None = None

    @property
    def seconds(self) -> float:
        return CAPACITY_PERIODS[self.per]

    def counts_on(self, channel: str | None) -> bool:
        return self.channels is None or any(c.value == channel for c in self.channels)


class Offer(Strict):
    id: Identifier
    title: Annotated[str, Field(min_length=1, max_length=200)]
    family: Identifier = Field(description="Product family, e.g. upgrade, warranty, protection, goodwill.")
    value: float = Field(ge=0, allow_inf_nan=False, description="Expected margin per acceptance.")
    channels: tuple[Channel, ...] = Field(min_length=1)
    eligibility: Eligibility = Eligibility()
    valid_from: date | None = None
    valid_until: date | None = None
    max_complaint_rate: float | None = Field(None, gt=0, le=1, description="Overrides the policy's limit.")
    computed: dict[Identifier, str] = Field(default_factory=dict)
    capacity: Capacity | None = Field(None, description="At most this many offers made per hour or day.")
    owner: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="Who is told when the offer is suspended (an email address gets an email); "
                          "unset: the catalog's owner.")
    templates: dict[Channel, str | list[TemplatePart]]

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v == NO_OFFER:
            raise ValueError(f"'{NO_OFFER}' is built in and cannot be defined")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> "Offer":
        if self.valid_from and self.valid_until and self.valid_from > self.valid_until:
            raise ValueError("valid_from is after valid_until")
        missing = [c.value for c in self.channels if c not in self.templates]
        if missing:
            raise ValueError(f"no template for channel(s) {missing}")
        return self

    def template_parts(self) -> dict[str, list[tuple[str, str | None]]]:
        out: dict[str, list[tuple[str, str | None]]] = {}
        for channel, tpl in self.templates.items():
            parts = [TemplatePart(text=tpl)] if isinstance(tpl, str) else tpl
            out[channel.value] = [(p.text, p.when) for p in parts]
        return out

    def live_status(self, today: date, suspended: bool) -> str:
        if suspended:
            return "suspended"
        if (self.valid_from and today < self.valid_from) or (self.valid_until and today > self.valid_until):
            return "outside_window"
        return "active"


@dataclass(frozen=True)
class Catalog:
    offers: dict[str, Offer]
    templates: dict[str, CompiledOfferTemplates]
    version: str  # content hash: which catalog a decision or model saw
    source: str
    owner: str | None = None  # the catalog's owner: told of an offer's suspension when the offer names none

    def get(self, offer_id: str) -> Offer | None:
        return self.offers.get(offer_id)

    @cached_property
    def capacities(self) -> dict[str, Capacity]:
        """The offers that carry a capacity (asked on every decision: computed once)."""
        return {oid: o.capacity for oid, o in self.offers.items() if o.capacity is not None}

    def render(self, offer_id: str, channel: str, variables: dict[str, Any]) -> str | None:
        if offer_id == NO_OFFER:
            return None
        return self.templates[offer_id].render(channel, variables)


def parse_catalog(text: str, source: str = "<catalog>") -> Catalog:
    """Validate catalog YAML text; raise ``ConfigError`` listing every problem."""
    problems: list[str] = []
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("offers"), list):
        raise ConfigError([f"{source}: expected a mapping with a list under 'offers'"])
    unknown_top = set(raw) - {"offers", "version", "owner", "description"}
    if unknown_top:
        problems.append(f"{source}: unknown top-level field(s) {sorted(unknown_top)}")
    owner = raw.get("owner")
    if owner is not None and (not isinstance(owner, str) or not owner.strip()):
        problems.append(f"{source}: field 'owner': a name or an email address")

    offers: dict[str, Offer] = {}
    compiled: dict[str, CompiledOfferTemplates] = {}
    for i, item in enumerate(raw["offers"]):
        oid = item.get("id", f"#{i}") if isinstance(item, dict) else f"#{i}"
        where = f"{source}: offer '{oid}'"
        try:
            offer = Offer.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "(offer)"
                problems.append(f"{where}: field '{loc}': {err['msg']}")
            continue
        if offer.id in offers:
            problems.append(f"{where}: field 'id': duplicate offer id")
            continue
        tpl, errs = compile_offer_templates(offer.computed, offer.template_parts())
        for field, msg in errs:
            problems.append(f"{where}: field '{field}': {msg}")
        if tpl is None:
            continue
        offers[offer.id] = offer
        compiled[offer.id] = tpl
    if problems:
        raise ConfigError(problems)
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Catalog(offers=offers, templates=compiled, version=version, source=source,
                   owner=owner.strip() if isinstance(owner, str) else None)


def load_catalog(path: Path) -> Catalog:
    return parse_catalog(read_config_file(path, "catalog"), str(path))
