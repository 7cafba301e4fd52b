"""The weekly working-well note: which offers clearly pay (pure), and the note reaching
their owners through a real local SMTP server and webhook receiver."""

from __future__ import annotations

import math
import random
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from bandit.config.catalog import parse_catalog
from bandit.config.policyfile import Monitoring
from bandit.deploy.monitoring import MonitorWindow, Observation
from bandit.deploy.notify import working_well_notice
from bandit.deploy.working_well import MIN_OFFERS, mean_interval, note, offer_values
from conftest import NOW, REPO, request

CATALOG = parse_catalog("""
owner: marketing@example.com
offers:
  - {id: pays, title: P, family: upgrade, value: 40, channels: [phone], owner: sales@example.com, templates: {phone: P}}
  - {id: complained, title: C, family: upgrade, value: 40, channels: [phone], templates: {phone: C}}
  - {id: rare, title: R, family: upgrade, value: 40, channels: [phone], templates: {phone: R}}
  - {id: strict, title: S, family: upgrade, value: 40, channels: [phone], max_complaint_rate: 0.02, templates: {phone: S}}
""")
PENALTY = 300.0


def obs(offer_id: str, n: int, accepted_every: int, complaints: int, value: float = 40.0) -> list[Observation]:
    """``n`` offers of ``offer_id``: every ``accepted_every``-th accepted (revenue ``value``),
    the first ``complaints`` complained about."""
    return [Observation(offer_id, "phone", "online", True, i % accepted_every == 0, i < complaints,
                        value if i % accepted_every == 0 else 0.0) for i in range(n)]


def test_an_offer_that_pays_without_complaints_works_well_and_the_others_say_why_not() -> None:
    observations = (obs("pays", 200, 2, 0) + obs("complained", 200, 2, 20) + obs("rare", MIN_OFFERS - 1, 1, 0)
                    + obs("strict", 200, 2, 3) + obs("no_offer", 300, 1, 0))
    values = {v.offer_id: v for v in offer_values(observations, CATALOG, Monitoring(), PENALTY)}
    assert set(values) == {"pays", "complained", "rare", "strict"}  # no_offer is not an offer
    assert values["pays"].working_well and values["pays"].value == pytest.approx(20.0)
    assert values["pays"].low > 0
    assert not values["complained"].working_well and values["complained"].value < 0  # 10% complaints at 300 each
    assert not values["rare"].working_well and values["rare"].low > 0  # pays, but too few offers to say
    assert values["strict"].value > 0 and values["strict"].low > 0  # pays...
    assert not values["strict"].working_well  # ...but 1.5% complaints' upper bound is over its own 2% limit
    window = MonitorWindow(NOW.timestamp(), 7 * 24)
    text = note(list(values.values()), window, PENALTY, {"pays": "sales@example.com"})
    assert "1 offer(s) working well" in text and "| pays | sales@example.com | 200 |" in text
    assert "Other offers made in the window" in text and "| complained |" in text


def test_a_week_with_nothing_to_scale_up_sends_nothing() -> None:
    values = offer_values(obs("complained", 200, 2, 20), CATALOG, Monitoring(), PENALTY)
    assert working_well_notice(values, "text", CATALOG) is None


@given(st.lists(st.floats(-500, 500, allow_nan=False), max_size=60))
def test_the_interval_holds_the_mean_and_is_unbounded_below_two_values(xs: list[float]) -> None:
    m, low, high = mean_interval(xs)
    if len(xs) < 2:
        assert low == -math.inf and high == math.inf
    else:
        assert low <= m + 1e-9 and m <= high + 1e-9


@given(st.lists(st.tuples(st.sampled_from(["pays", "complained", "strict", "gone"]), st.booleans(), st.booleans(),
                          st.floats(0, 200, allow_nan=False)), max_size=150))
def test_working_well_means_enough_offers_a_positive_lower_bound_and_complaints_clearly_under_the_limit(
        rows: list[tuple[str, bool, bool, float]]) -> None:
    observations = [Observation(oid, "phone", "online", True, acc, comp, rev if acc else 0.0)
                    for oid, acc, comp, rev in rows]
    for v in offer_values(observations, CATALOG, Monitoring(), PENALTY):
        if v.working_well:
            assert v.stats.offers >= MIN_OFFERS and v.low > 0 and v.stats.complaint_interval()[1] < v.limit
            assert v.stats.complaints * PENALTY < v.stats.revenue  # it pays after its complaints


def test_the_note_reaches_the_owner_of_an_offer_that_pays_by_email_and_webhook(
        tmp_path: Path, migrated_db: Path) -> None:
    """Through the real decider and log: the chosen offers of one kind are all accepted a
    week before ``as_of``; the run values them, mails the catalog owner and the operators,
    posts to the webhook, and records the note in MLflow."""
    import mlflow

    from bandit.config.loader import LiveConfig
    from bandit.config.settings import get_settings
    from bandit.decide.decider import Decider, ModelSlot
    from bandit.decide.vw import ColdStart
    from bandit.deploy.runtime import open_store
    from flows.working_well import working_well
    from receivers import smtp_server, webhook_receiver

    with smtp_server() as box, webhook_receiver() as hook:
        policy = tmp_path / "policy.yaml"
        policy.write_text(f"notifications: {{webhook_url: '{hook.url}', operators: [ops@example.com],\n"
                          f"  smtp: {{host: {box.host}, port: {box.port}}}}}\n")
        settings = get_settings(home=tmp_path / "home", catalog=REPO / "config/offers.yaml", policy=policy,
                                salt="x", sqlite_synchronous="NORMAL")
        settings.ensure_home()
        shutil.copy(migrated_db, settings.home / "mlflow.db")
        store = open_store(settings)
        decider = Decider(LiveConfig(settings), store, ModelSlot(ColdStart(0.9)), settings.secret)
        rng = random.Random(3)
        made = []
        for i in range(700):  # about 120 of each offer: enough for 0 complaints to be clearly under 5%
            req = request(customer__id=f"c{i}", channel="phone", interaction__sentiment=round(rng.uniform(0.3, 1), 2))
            made.append(decider.decide(req.model_copy(update={"event_id": f"e{i}"}),
                                       now=NOW - timedelta(days=3, seconds=-60 * i)))
        chosen = [d for d in made if d.offer_id != "no_offer"]
        target = max({d.offer_id for d in chosen}, key=lambda o: sum(d.offer_id == o for d in chosen))
        for d in chosen:
            decider.record_outcome(d.event_id, "accepted" if d.offer_id == target else "declined",
                                   now=NOW - timedelta(days=2))
        store.close()
        result = working_well(settings, as_of=NOW.timestamp(), days=7)
    assert target in result.working_well and set(result.working_well) == {target}, result.note
    [(rcpt, msg)] = box.messages
    assert msg["Subject"] == f"[offer-bandit] working well: {target}"
    assert rcpt[-1] == "ops@example.com" and len(rcpt) == 2  # the catalog's owner, then the operators
    assert f"| {target} |" in msg.get_payload()
    assert len(hook.bodies) == 1 and target in hook.bodies[0]["text"]
    mlflow.set_tracking_uri(settings.tracking_uri)
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["working_well"] == target and run.data.metrics[f"offer.{target}.lift_low"] > 0
    assert "working well" in mlflow.artifacts.load_text(f"runs:/{result.run_id}/working-well.md")
