"""Where the service's notices go: the policy file's ``notifications`` section.

The seeds ask that "exception reports can be sent to the right owners immediately": an
offer suspended for complaints is news for the marketer who owns it (the catalog's
``owner``, per offer or for the whole catalog), a failed flow run or a configuration that
no longer loads is news for the operators. Two channels, both optional: a Slack-compatible
incoming webhook (a POST of ``{"text": ...}``; Slack, Mattermost, Teams' and Rocket.Chat's
incoming webhooks take it) and email over SMTP. SMTP credentials are secrets, so they come
from the settings (``OFFER_BANDIT_SMTP_USERNAME`` / ``_PASSWORD``), not from this file.

``notifications_of`` reads this section alone from a policy file's text, so that a policy
file broken elsewhere can still say where to report that it is broken.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from bandit.domain.context import Strict


def is_address(value: str) -> bool:
    """An email address, as far as routing cares: one ``@`` with text on both sides. An owner
    that is not one (``owner: marketing``) is named in the webhook's text but gets no email."""
    local, at, domain = value.partition("@")
    return bool(at and local and domain and "@" not in domain and not any(c.isspace() for c in value))


class Smtp(Strict):
    host: str | None = Field(None, description="SMTP server; unset: no email is sent.")
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field("offer-bandit@localhost", description="The From address.")
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS before sending.")
    timeout_seconds: float = Field(10.0, gt=0, le=120)

    @field_validator("sender")
    @classmethod
    def _sender_is_address(cls, value: str) -> str:
        if not is_address(value):
            raise ValueError(f"{value!r} is not an email address")
        return value


class Notifications(Strict):
    """Where notices go. With neither channel set, notices are only logged (the default: a
    fresh install sends nothing anywhere until told where)."""

    webhook_url: str | None = Field(None, description="Slack-compatible incoming webhook (POST {\"text\": ...}).")
    smtp: Smtp = Smtp()
    operators: tuple[str, ...] = Field((), description="Email addresses told of failed or late flow runs, "
                                                       "configuration errors and a negative lift.")
    report_url: str | None = Field(None, description="Base URL of the MLflow UI, to link a notice to its report.")
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="The webhook call's timeout.")

    @field_validator("webhook_url", "report_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("operators")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not is_address(v)]
        if bad:
            raise ValueError(f"not email addresses: {bad}")
        return value

    @property
    def configured(self) -> bool:
        return self.webhook_url is not None or self.smtp.host is not None


def notifications_of(text: str) -> Notifications | None:
    """The ``notifications`` section of a policy file's text, read on its own: ``None`` when
    the text is not YAML or the section itself is invalid (nothing can be sent then), the
    defaults when the section is absent."""
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    section = raw.get("notifications") if isinstance(raw, dict) else None
    try:
        return Notifications.model_validate(section or {})
    except ValidationError:
        return None
