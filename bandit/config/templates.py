"""Offer templates: channel copy with placeholders, computed values and conditions.

Marketing writes Jinja2 text in a sandbox. A channel's template is a list of parts,
each with an optional ``when`` condition, and an offer may define ``computed``
values from the context, so the seeds' pharmacy rule is data, not code::

    computed:
      saving_pct: "100 * (attrs.drugstore_price - attrs.refill_price) / attrs.drugstore_price"
    templates:
      email:
        - text: "Your refill is on its way."
        - text: "You saved {{ saving_pct | round | int }}% against your local drugstore."
          when: "saving_pct > 5"

Templates are compiled once at catalog load (syntax errors and unknown placeholders
are load errors, naming the offer and channel); rendering on the request path only
evaluates compiled code. A part whose condition or text fails at render time is
left out rather than failing the decision: the offer itself was already chosen and
logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

log = logging.getLogger(__name__)

# The names a template may use. The customer id is deliberately absent.
CONTEXT_NAMES = frozenset({"customer", "interaction", "channel", "attrs", "offer"})

_env = SandboxedEnvironment(autoescape=False, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class CompiledPart:
    render: Callable[[Mapping[str, Any]], str]
    when: Callable[[Mapping[str, Any]], Any] | None


@dataclass(frozen=True)
class CompiledOfferTemplates:
    computed: tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...]
    channels: Mapping[str, tuple[CompiledPart, ...]]

    def render(self, channel: str, variables: Mapping[str, Any]) -> str | None:
        parts = self.channels.get(channel)
        if parts is None:
            return None
        scope = dict(variables)
        for name, expr in self.computed:
            try:
                scope[name] = expr(scope)
            except Exception as exc:  # noqa: BLE001 - marketing expressions; leave value undefined
                log.debug("computed %s failed: %s", name, exc)
                scope[name] = None
        out = []
        for part in parts:
            try:
                if part.when is not None and not part.when(scope):
                    continue
                out.append(part.render(scope))
            except Exception as exc:  # noqa: BLE001
                log.warning("template part left out: %s", exc)
        return "\n".join(s for s in out if s)


def _undeclared(source: str) -> set[str]:
    return meta.find_undeclared_variables(_env.parse(source))


def compile_offer_templates(
    computed: Mapping[str, str], templates: Mapping[str, list[tuple[str, str | None]]]
) -> tuple[CompiledOfferTemplates | None, list[tuple[str, str]]]:
    """Compile one offer's templates. Returns (compiled, [(field, problem), ...])."""
    problems: list[tuple[str, str]] = []
    known = set(CONTEXT_NAMES)
    comp: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = []
    for name, source in computed.items():
        field = f"computed.{name}"
        try:
            unknown = _undeclared("{{ " + source + " }}") - known
            if unknown:
                problems.append((field, f"unknown name(s) {sorted(unknown)}; use {sorted(known)}"))
            expr = _env.compile_expression(source, undefined_to_none=True)
            comp.append((name, lambda scope, e=expr: e(**scope)))
        except TemplateError as exc:
            problems.append((field, f"invalid expression: {exc}"))
        known.add(name)

    channels: dict[str, tuple[CompiledPart, ...]] = {}
    for channel, parts in templates.items():
        compiled: list[CompiledPart] = []
        for i, (text, when) in enumerate(parts):
            field = f"templates.{channel}[{i}]"
            try:
                unknown = _undeclared(text) - known
                if when is not None:
                    unknown |= _undeclared("{{ " + when + " }}") - known
                if unknown:
                    problems.append((field, f"unknown placeholder(s) {sorted(unknown)}; use {sorted(known)}"))
                tpl = _env.from_string(text)
                cond = _env.compile_expression(when, undefined_to_none=True) if when else None
                compiled.append(
                    CompiledPart(
                        render=lambda scope, t=tpl: t.render(**scope).strip(),
                        when=(lambda scope, c=cond: c(**scope)) if cond else None,
                    )
                )
            except TemplateError as exc:
                problems.append((field, f"invalid template: {exc}"))
        channels[channel] = tuple(compiled)
    if problems:
        return None, problems
    return CompiledOfferTemplates(computed=tuple(comp), channels=channels), []
