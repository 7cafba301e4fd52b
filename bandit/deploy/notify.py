"""Notices to the people who must act, at once: composing them (pure) and delivering them.

Who is told what (the seeds: "exception reports can be sent to the right owners
immediately"):

- an offer suspended for complaints: its owner (the catalog's ``owner`` of the offer, else
  the catalog's) and the operators, with the figures, the channels and the contexts the
  complaints came from, and a link to the run's report;
- a lift over the control group that is significantly harmful (revenue per decision's
  interval below 0, or complaint rate's above 0): the operators;
- a failed or crashed flow run, a configuration the flows cannot load: the operators;
- once a week, offers working well (``bandit.deploy.working_well``): their owners and the
  operators, "so those offers can be scaled up".

Delivery goes to every configured channel of the policy file's ``notifications`` section
(``bandit.config.notifications``): the webhook gets every notice, email goes to the
notice's addressable recipients. A delivery that fails is not swallowed: ``send`` tries
every channel, then raises ``NotificationError`` naming each failure, so that the flow
step fails, is retried, and shows as failed.
"""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from bandit.config.catalog import Catalog
from bandit.config.notifications import Notifications, is_address
from bandit.deploy.monitoring import Assessment, breach_lines, harmful_lift, lift_lines
from bandit.deploy.working_well import OfferValue


@dataclass(frozen=True)
class Notice:
    """One message: ``kind`` (``suspension``, ``negative_lift``, ``flow_failed``, ...) for
    routing and tests, a subject line, a plain-text body, and the people it is for besides
    the operators (offer owners: addresses get an email, names are named in the text)."""

    kind: str
    subject: str
    text: str
    owners: tuple[str, ...] = ()

    def recipients(self, cfg: Notifications) -> list[str]:
        """Email recipients: the owners that are addresses, then the operators, once each."""
        out: list[str] = []
        for r in (*self.owners, *cfg.operators):
            if is_address(r) and r not in out:
                out.append(r)
        return out


@dataclass(frozen=True)
class Delivery:
    channel: str  # "webhook" | "email"
    target: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class NotificationError(RuntimeError):
    """At least one channel failed to take a notice (each failure named)."""

    def __init__(self, notice: Notice, failed: Sequence[Delivery]):
        self.notice, self.failed = notice, list(failed)
        said = "; ".join(f"{d.channel} {d.target}: {d.error}" for d in failed)
        super().__init__(f"notice {notice.subject!r} not delivered: {said}")


# -- composing (pure) -----------------------------------------------------------------------------

def offer_owner(catalog: Catalog, offer_id: str) -> str | None:
    """Who owns an offer: its own ``owner``, else the catalog's."""
    offer = catalog.get(offer_id)
    return (offer.owner if offer is not None and offer.owner else None) or catalog.owner


def _link(report_url: str | None, where: str) -> list[str]:
    """Where the full report is: ``where`` names it, ``report_url`` (the MLflow UI) is linked."""
    return ["", f"Full report: {where}" + (f", {report_url}" if report_url else "")]


def suspension_notices(a: Assessment, suspended_now: Collection[str], catalog: Catalog,
                       report_url: str | None = None, where: str = "the monitor run") -> list[Notice]:
    """One notice per offer suspended by this run, for its owner."""
    out = []
    for b in a.breaches:
        if b.offer_id not in suspended_now:
            continue
        owner = offer_owner(catalog, b.offer_id)
        s = b.stats
        head = [f"Owner: {owner}" if owner else "Owner: (none in the catalog)", ""]
        text = "\n".join(head + breach_lines(b, a.window, acted=True) + _link(report_url, where))
        subject = (f"[offer-bandit] {b.offer_id} suspended: complaint rate {100 * s.complaint_rate:.1f}% "
                   f"({s.complaints} in {s.offers} offers)")
        out.append(Notice("suspension", subject, text, (owner,) if owner else ()))
    return out


def lift_notice(a: Assessment, report_url: str | None = None, where: str = "the monitor run") -> Notice | None:
    """A notice when the bandit does significantly worse than the control group, else None."""
    harm = harmful_lift(a.lift)
    if not harm:
        return None
    text = "\n".join([f"Window {a.window.label}: " + "; ".join(harm), ""] + lift_lines(a.lift)
                     + _link(report_url, where))
    return Notice("negative_lift", "[offer-bandit] the bandit does worse than the control group", text)


def working_well_notice(values: Sequence[OfferValue], text: str, catalog: Catalog, report_url: str | None = None,
                        where: str = "the working-well run") -> Notice | None:
    """The weekly note (``text``, ``bandit.deploy.working_well.note``) for the owners of the
    offers working well; None when no offer does (a week with nothing to scale up sends nothing)."""
    good = [v.offer_id for v in values if v.working_well]
    if not good:
        return None
    owners = tuple(dict.fromkeys(o for oid in good if (o := offer_owner(catalog, oid)) is not None))
    return Notice("working_well", f"[offer-bandit] working well: {', '.join(good)}",
                  text + "\n".join(_link(report_url, where)), owners)


def flow_failure_notice(flow: str, run: str, state: str, message: str | None) -> Notice:
    """A flow run that failed or crashed: for the operators."""
    return Notice("flow_failed", f"[offer-bandit] flow {flow} run {run}: {state}",
                  f"The {flow} flow's run {run} ended {state}.\n\n{message or '(no message)'}")


# -- delivering (the side effects) ------------------------------------------------------------------

def deliver(notice: Notice, cfg: Notifications, smtp_login: tuple[str, str] | None = None) -> list[Delivery]:
    """Try every configured channel; return how each went (nothing configured: [])."""
    out: list[Delivery] = []
    if cfg.webhook_url is not None:
        out.append(_post(cfg.webhook_url, notice, cfg.timeout_seconds))
    to = notice.recipients(cfg)
    if cfg.smtp.host is not None and to:
        out.append(_mail(cfg, notice, to, smtp_login))
    return out


def send(notice: Notice, cfg: Notifications, smtp_login: tuple[str, str] | None = None) -> list[Delivery]:
    """``deliver``, raising ``NotificationError`` when any channel failed."""
    done = deliver(notice, cfg, smtp_login)
    failed = [d for d in done if not d.ok]
    if failed:
        raise NotificationError(notice, failed)
    return done


def _post(url: str, notice: Notice, timeout: float) -> Delivery:
    body = json.dumps({"text": f"*{notice.subject}*\n{notice.text}"}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (the operator's configured URL)
            resp.read()
    except urllib.error.HTTPError as exc:
        return Delivery("webhook", url, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        return Delivery("webhook", url, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")
    return Delivery("webhook", url)


def _mail(cfg: Notifications, notice: Notice, to: list[str], login: tuple[str, str] | None) -> Delivery:
    smtp = cfg.smtp
    assert smtp.host is not None  # deliver checks
    target = f"{smtp.host}:{smtp.port} to {', '.join(to)}"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = smtp.sender, ", ".join(to), notice.subject
    msg.set_content(notice.text)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as conn:
            if smtp.starttls:
                conn.starttls()
            if login is not None:
                conn.login(*login)
            conn.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        return Delivery("email", target, f"{type(exc).__name__}: {exc}")
    return Delivery("email", target)
