"""Monitoring: rates per offer and channel, the complaint limit and its floor, the kill
switch, control-group lift, the reports; and the monitor flow under Prefect suspending an
offer whose complaints were injected into a log the real decider wrote."""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from bandit.config.catalog import Catalog, load_catalog
from bandit.domain.errors import ConfigError, InvalidRequest
from bandit.deploy.monitoring import (
    MonitorWindow,
    Observation,
    OfferStats,
    assess,
    breaches,
    complaint_contexts,
    complaint_limit,
    exception_report,
    lift,
    observe,
    offer_stats,
    report,
    sentiment_bucket,
    welch_difference,
    wilson_interval,
)
from bandit.learn.ope import Z95
from bandit.config.policyfile import Monitoring, load_policy, parse_policy
from bandit.log.records import DecisionRecord
from bandit.log.store import DecisionStore
from bandit.domain.outcomes import Outcome
from conftest import NOW, REPO, request

AS_OF = NOW.timestamp()
WINDOW = MonitorWindow(AS_OF, 24)


def rec(i: int, offer: str, channel: str = "phone", mode: str = "online", activated: bool = True,
        ts: float = AS_OF - 3600, sentiment: float = 0.6, tier: str = "gold", request_type: str = "advisory",
        value: float = 10.0) -> DecisionRecord:
    """A logged decision choosing ``offer``, with the context the decider logs."""
    actions = ["no_offer"] if offer == "no_offer" else ["no_offer", offer]
    context = {"channel": channel, "customer": {"tier": tier, "authenticated": True},
               "interaction": {"request_type": request_type, "resolved": "true", "sentiment": sentiment,
                               "distress": False}}
    return DecisionRecord(event_id=f"e{i}", ts=ts, mode=mode, model_version="m", action_ids=actions,
                          pmf=[1.0 / len(actions)] * len(actions), chosen_index=len(actions) - 1,
                          activated=activated, channel=channel, request_type=request_type,
                          payload={"context": context, "offer_value": value})


def out(i: int, type_: str, value: float | None = None, ts: float = AS_OF - 1800) -> Outcome:
    return Outcome(f"e{i}", type_, ts, value)


def obs(offer: str = "a", channel: str = "phone", accepted: bool = False, complaint: bool = False,
        revenue: float = 0.0, mode: str = "online", activated: bool = True) -> Observation:
    return Observation(offer, channel, mode, activated, accepted, complaint, revenue,
                       {"channel": channel} if complaint else None)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(REPO / "config/offers.yaml")


# -- rates, by hand --------------------------------------------------------------------------------

def test_rates_per_offer_and_channel_match_a_hand_count() -> None:
    log = [
        (rec(1, "a"), [out(1, "accepted", 30.0)]),                               # phone: accepted, 30
        (rec(2, "a"), [out(2, "accepted")]),                                     # phone: accepted, offer value 10
        (rec(3, "a"), [out(3, "complaint"), out(3, "complaint", ts=AS_OF - 60)]),  # two complaints count once
        (rec(4, "a"), [out(4, "declined")]),
        (rec(5, "a", "chat"), [out(5, "accepted", 99.0), out(5, "converted", 50.0), out(5, "converted", 20.0)]),
        (rec(6, "b"), [out(6, "declined")]),
        (rec(7, "no_offer"), [out(7, "complaint")]),                           # not an offer
        (rec(8, "a", activated=False), [out(8, "accepted", 5.0)]),                # never shown
        (rec(9, "b"), [out(9, "complaint", ts=AS_OF + 1)]),                       # recorded after as_of
    ]
    by_offer, by_channel = offer_stats([observe(r, o, AS_OF) for r, o in log])
    assert set(by_offer) == {"a", "b"}
    a = by_offer["a"]
    assert (a.offers, a.accepted, a.complaints, a.revenue) == (5, 3, 1, 30 + 10 + 70)
    assert (a.acceptance_rate, a.complaint_rate, a.revenue_per_offer) == (0.6, 0.2, 22.0)
    assert by_offer["b"] == OfferStats("b", None, 2, 0, 0, 0.0)
    assert by_channel[("a", "phone")] == OfferStats("a", "phone", 4, 2, 1, 40.0)
    assert by_channel[("a", "chat")] == OfferStats("a", "chat", 1, 1, 0, 70.0)
    assert set(by_channel) == {("a", "phone"), ("a", "chat"), ("b", "phone")}


def test_wilson_interval_by_hand() -> None:
    # 1 complaint in 5: p = 0.2, z² = 3.8415; (0.2 + 0.3841) / 1.7683 ± 1.96·√(0.032 + 0.0384) / 1.7683
    lo, hi = wilson_interval(1, 5)
    assert lo == pytest.approx(0.03622, abs=1e-5) and hi == pytest.approx(0.62447, abs=1e-5)
    assert wilson_interval(0, 40)[0] == 0.0 and wilson_interval(0, 40)[1] == pytest.approx(0.0876, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_sentiment_buckets() -> None:
    assert [sentiment_bucket(s) for s in (-1.0, -0.01, 0.0, 0.25, 0.49, 0.5, 0.75, 1.0)] == [
        "[-1, 0)", "[-1, 0)", "[0, 0.25)", "[0.25, 0.5)", "[0.25, 0.5)", "[0.5, 0.75)", "[0.75, 1]", "[0.75, 1]"]
    assert sentiment_bucket(None) == sentiment_bucket(True) == sentiment_bucket("x") == "unknown"


def test_complaint_contexts_count_where_complaints_came_from() -> None:
    log = [
        (rec(1, "a", "chat", sentiment=0.1, tier="gold"), [out(1, "complaint")]),
        (rec(2, "a", "chat", sentiment=0.2, tier="standard", request_type="diagnostic"), [out(2, "complaint")]),
        (rec(3, "a", "phone", sentiment=0.9, tier="standard"), [out(3, "complaint")]),
        (rec(4, "a", "phone", sentiment=0.9), [out(4, "accepted")]),    # no complaint: not counted
        (rec(5, "b", "phone", sentiment=0.9), [out(5, "complaint")]),   # another offer
    ]
    ctx = complaint_contexts([observe(r, o, AS_OF) for r, o in log], "a")
    assert ctx["channel"] == {"chat": 2, "phone": 1}
    assert ctx["request_type"] == {"advisory": 2, "diagnostic": 1}
    assert ctx["sentiment"] == {"[0, 0.25)": 2, "[0.75, 1]": 1}
    assert ctx["tier"] == {"standard": 2, "gold": 1}
    assert ctx["resolved"] == {"true": 3} and ctx["distress"] == {"false": 3}


# -- the limit, its floor and the kill switch ------------------------------------------------------------

def stats(offer: str, n: int, k: int) -> OfferStats:
    return OfferStats(offer, None, n, 0, k, 0.0)


def test_min_offers_floor_and_the_limit_itself() -> None:
    limits = {o: 0.05 for o in "abcdef"}
    s = [stats("a", 2, 1),    # 50%, but 2 offers: not judged
         stats("b", 29, 10),  # 34%, 29 offers: not judged yet
         stats("c", 30, 2),   # 6.7% over 30 offers: breach
         stats("d", 30, 1),   # 3.3%: fine
         stats("e", 40, 2),   # exactly 5%: not over the limit
         stats("f", 100, 30)]  # 30%: breach, the worst first
    assert [b.offer_id for b in breaches(s, limits, 30, set())] == ["f", "c"]
    assert [b.offer_id for b in breaches(s, limits, 1, set())] == ["a", "b", "f", "c"]
    assert [b.offer_id for b in breaches(s, limits, 30, {"f"})] == ["c"]  # suspended already: not judged again


def test_catalog_override_of_the_limit(catalog: Catalog) -> None:
    loose = catalog.offers["card_protection_plan"].model_copy(update={"max_complaint_rate": 0.2})
    strict = catalog.offers["fiber_upgrade"].model_copy(update={"max_complaint_rate": 0.01})
    cat = dataclasses.replace(catalog, offers={**catalog.offers, loose.id: loose, strict.id: strict})
    m = Monitoring(max_complaint_rate=0.05, min_offers=30)
    assert complaint_limit("card_protection_plan", cat, m) == 0.2
    assert complaint_limit("fiber_upgrade", cat, m) == 0.01
    assert complaint_limit("premium_bundle", cat, m) == 0.05
    assert complaint_limit("gone_from_the_catalog", cat, m) == 0.05
    # the same numbers for each: 5 complaints in 40 offers (12.5%), and 1 in 40 (2.5%)
    observations = ([obs("card_protection_plan", complaint=i < 5) for i in range(40)]
                    + [obs("premium_bundle", complaint=i < 5) for i in range(40)]
                    + [obs("fiber_upgrade", complaint=i < 1) for i in range(40)])
    a = assess(observations, WINDOW, cat, m, set())
    assert sorted(b.offer_id for b in a.breaches) == ["fiber_upgrade", "premium_bundle"]
    assert a.limits["card_protection_plan"] == 0.2


def test_policy_file_monitoring_keys_defaults_and_errors() -> None:
    assert Monitoring() == Monitoring(max_complaint_rate=0.05, window_hours=24, min_offers=30)
    assert load_policy(REPO / "config/policy.yaml").monitoring == Monitoring()  # the shipped file shows the defaults
    assert parse_policy("monitoring: {window_hours: 6, min_offers: 100}").monitoring.min_offers == 100
    for bad, where in (("window_hours: 0", "monitoring.window_hours"),
                       ("window_hours: .inf", "monitoring.window_hours"),
                       ("min_offers: 0", "monitoring.min_offers"), ("min_ofers: 3", "monitoring.min_ofers")):
        with pytest.raises(ConfigError, match=f"policy.yaml: field '{where}'"):
            parse_policy(f"monitoring: {{{bad}}}", "policy.yaml")


def test_a_window_must_be_positive_and_finite() -> None:
    for hours in (0, -1, math.nan, math.inf):
        with pytest.raises(InvalidRequest, match="window_hours: must be a positive number of hours"):
            MonitorWindow(AS_OF, hours)
    w = MonitorWindow(AS_OF, 6)
    assert w.start == AS_OF - 6 * 3600 and w.label == "2026-11-23T06:00:00Z/2026-11-23T12:00:00Z"


# -- lift over the control group --------------------------------------------------------------------------

def test_lift_by_hand_with_a_control_group() -> None:
    bandit = [obs(revenue=10, accepted=True), obs(), obs(complaint=True), obs(revenue=20, accepted=True)]
    control = [obs("no_offer", mode="control"), obs(revenue=5, accepted=True, mode="control"),
               obs("no_offer", mode="control"), obs("no_offer", mode="control"),
               obs(revenue=5, accepted=True, mode="control")]
    ignored = [obs(revenue=1000, mode="apprentice"), obs(revenue=1000, activated=False),
               obs(revenue=1000, mode="control", activated=False)]
    result = lift(bandit + control + ignored)
    assert result.available and (result.n_bandit, result.n_control) == (4, 5)
    assert result.note == "fewer than 30 decisions in a group: the normal intervals are optimistic"
    assert lift(bandit * 8 + control * 6).note is None  # 32 and 30 decisions: nothing to warn about
    rev = result.metrics["revenue_per_decision"]
    # bandit mean 7.5, sample variance 275/3; control mean 2, sample variance 30/4
    se = math.sqrt(275 / 3 / 4 + 7.5 / 5)
    assert (rev.bandit, rev.control, rev.diff) == (7.5, 2.0, 5.5)
    assert rev.se == pytest.approx(se) and rev.low == pytest.approx(5.5 - Z95 * se)
    assert rev.high == pytest.approx(5.5 + Z95 * se)
    acc = result.metrics["acceptance_rate"]
    assert (acc.bandit, acc.control) == (0.5, 0.4) and acc.diff == pytest.approx(0.1)
    comp = result.metrics["complaint_rate"]
    assert (comp.bandit, comp.control, comp.diff) == (0.25, 0.0, 0.25)
    assert comp.se == pytest.approx(math.sqrt(0.25 / 4))  # a constant group adds no variance


def test_lift_without_control_decisions_says_so() -> None:
    result = lift([obs(revenue=10, accepted=True), obs()])
    assert not result.available and result.metrics == {} and result.n_bandit == 2
    assert "no control-group decisions" in (result.note or "")
    a = assess([obs(revenue=10, accepted=True), obs()], WINDOW, load_catalog(REPO / "config/offers.yaml"),
               Monitoring(), set())
    assert "No control-group decisions in the window: lift not measured (2 bandit, 0 control" in report(a, [])
    assert "no bandit decisions" in (lift([obs(mode="control")]).note or "")


def test_a_bandit_significantly_worse_than_control_is_flagged_and_told() -> None:
    from bandit.deploy.monitoring import harmful_lift
    from bandit.deploy.notify import lift_notice

    worse = [obs("no_offer")] * 40 + [obs(complaint=True)] * 10
    control = [obs(revenue=5, accepted=True, mode="control")] * 20 + [obs("no_offer", mode="control")] * 20
    harmed = lift(worse + control)
    said = harmful_lift(harmed)
    assert len(said) == 2 and said[0].startswith("revenue per decision -2.500")
    assert "complaint rate +20.00 pp" in said[1]
    a = assess(worse + control, WINDOW, load_catalog(REPO / "config/offers.yaml"), Monitoring(), set())
    assert "**The bandit does significantly worse than the control group" in report(a, [])
    notice = lift_notice(a)
    assert notice is not None and notice.kind == "negative_lift" and said[0] in notice.text
    better = lift([obs(revenue=5, accepted=True)] * 40 + [obs("no_offer", mode="control")] * 40)
    assert harmful_lift(better) == [] and harmful_lift(lift([obs()])) == []  # no control group: nothing to flag
    a = assess([obs(revenue=5, accepted=True)] * 40, WINDOW, load_catalog(REPO / "config/offers.yaml"),
               Monitoring(), set())
    assert lift_notice(a) is None


def test_welch_with_a_group_of_one_is_unbounded() -> None:
    d = welch_difference("x", [1.0], [0.0, 1.0])
    assert d.diff == 0.5 and d.se == math.inf and d.low == -math.inf and d.high == math.inf


# -- the reports ----------------------------------------------------------------------------------------------

def _tables_are_rectangular(md: str) -> None:
    """Every row of a Markdown table has as many cells as its header."""
    width = None
    for line in md.splitlines():
        if line.startswith("|"):
            cells = line.count("|")
            width = width or cells
            assert cells == width, f"{line!r}: {cells - 1} cells, header has {width - 1}"
        else:
            width = None


def test_the_exception_report_names_the_offer_its_numbers_and_contexts(catalog: Catalog) -> None:
    log = []
    for i in range(40):
        channel = "chat" if i % 2 else "phone"
        outs = [out(i, "complaint")] if i < 6 else [out(i, "accepted", 12.5)] if i < 16 else []
        log.append((rec(i, "premium_bundle", channel, sentiment=0.1 if i < 6 else 0.8), outs))
    log += [(rec(100 + i, "fiber_upgrade"), [out(100 + i, "declined")]) for i in range(3)]
    log += [(rec(200 + i, "no_offer", mode="control"), []) for i in range(3)]
    a = assess([observe(r, o, AS_OF) for r, o in log], WINDOW, catalog, Monitoring(), set())
    assert [b.offer_id for b in a.breaches] == ["premium_bundle"]
    b = a.breaches[0]
    assert b.reason(WINDOW) == ("monitor: complaint rate 0.150 (6 complaints in 40 offers) over the 24 h to "
                                "2026-11-23T12:00:00Z exceeds the limit 0.050")
    md = exception_report(a, ["premium_bundle"])
    assert "`premium_bundle`: suspended" in md and "**15.0%** (6 complaints in 40 offers)" in md
    assert "limit 5.0%" in md and "- sentiment: [0, 0.25) (6)" in md and "- channel: chat (3), phone (3)" in md
    assert "| chat | 20 | 25.0% | 3 | 15.0% |" in md  # by channel: 20 offers each, 5 accepted, 3 complaints
    assert "| revenue_per_decision |" in md  # the lift, with the three control decisions
    full = report(a, ["premium_bundle"])
    assert "**Suspended for complaints: `premium_bundle`**" in full
    assert "| `fiber_upgrade` | 3 | 0.0% | 0 | 0.0% |" in full and "too few offers to judge" in full
    _tables_are_rectangular(md)
    _tables_are_rectangular(full)
    assert "**Over their complaint limit, not suspended: `premium_bundle`**" in report(a, [])


# -- properties -------------------------------------------------------------------------------------------------

observation = st.builds(
    Observation, offer_id=st.sampled_from(["a", "b", "c", "no_offer"]), channel=st.sampled_from(["phone", "chat"]),
    mode=st.sampled_from(["online", "cold_start", "control", "apprentice"]), activated=st.booleans(),
    accepted=st.booleans(), complaint=st.booleans(), revenue=st.floats(0, 1000), context=st.none())


@hsettings(max_examples=200, deadline=None)
@given(st.lists(observation, max_size=80), st.integers(1, 20), st.floats(0.01, 1.0),
       st.sets(st.sampled_from(["a", "b", "c"])))
def test_rates_stay_in_range_and_only_offers_over_their_limit_are_judged(
        observations: list[Observation], min_offers: int, limit: float, suspended: set[str]) -> None:
    by_offer, by_channel = offer_stats(observations)
    assert "no_offer" not in by_offer
    for s in [*by_offer.values(), *by_channel.values()]:
        assert 0 <= s.acceptance_rate <= 1 and 0 <= s.complaint_rate <= 1
        lo, hi = s.complaint_interval()
        assert 0 <= lo <= s.complaint_rate + 1e-12 and s.complaint_rate - 1e-12 <= hi <= 1
    for oid, s in by_offer.items():  # the channels add up to the offer
        parts = [c for (o, _), c in by_channel.items() if o == oid]
        assert sum(c.offers for c in parts) == s.offers and sum(c.complaints for c in parts) == s.complaints
    limits = {oid: limit for oid in by_offer}
    judged = {b.offer_id for b in breaches(by_offer.values(), limits, min_offers, suspended)}
    expected = {oid for oid, s in by_offer.items()
                if s.complaint_rate > limit and s.offers >= min_offers and oid not in suspended}
    assert judged == expected


# -- the flow, end to end --------------------------------------------------------------------------------------

TARGET = "card_protection_plan"


def test_cli_monitor_suspends_and_rejects_a_bad_window(tmp_path: Path, migrated_db: Path, capsys,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain function through the CLI: decisions outside the window are not read; an
    offer over its limit is suspended with the numbers as the reason; MLflow has the run."""
    import mlflow
    from sqlalchemy import select

    from bandit.cli import main
    from bandit.log.schema import suspensions

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(migrated_db, home / "mlflow.db")
    store = DecisionStore(f"sqlite:///{home / 'decisions.db'}")
    for i in range(40):  # 4 complaints in 40 offers inside the window: 10%
        store.log_decision(rec(i, TARGET, ts=AS_OF - 3600 + i))
        store.add_outcome(out(i, "complaint" if i < 4 else "declined", ts=AS_OF - 60))
    for i in range(40, 80):  # complaints galore, but before the window or at its end (exclusive)
        store.log_decision(rec(i, "fiber_upgrade", ts=AS_OF - 25 * 3600 if i < 60 else AS_OF))
        store.add_outcome(out(i, "complaint", ts=AS_OF - 60))
    store.close()
    common = ["--home", str(home), "--catalog", str(REPO / "config/offers.yaml"),
              "--policy", str(REPO / "config/policy.yaml")]
    iso = NOW.isoformat()
    with pytest.raises(SystemExit) as exit_:
        main(["monitor", *common, "--as-of", iso, "--window-hours", "0", "--no-prefect"])
    assert exit_.value.code == 2
    assert "argument --window-hours: must be a positive number of hours, got 0.0" in capsys.readouterr().err

    assert main(["monitor", *common, "--as-of", iso, "--no-prefect"]) == 0
    printed = capsys.readouterr().out
    assert "40 decisions, 40 offers made" in printed
    assert f"SUSPENDED {TARGET}: monitor: complaint rate 0.100 (4 complaints in 40 offers)" in printed
    assert "no control-group decisions in the window" in printed
    store = DecisionStore(f"sqlite:///{home / 'decisions.db'}")
    assert store.suspended(fresh=True) == {TARGET}
    with store.engine.connect() as c:
        reason = c.execute(select(suspensions.c.reason).where(suspensions.c.offer_id == TARGET)).scalar_one()
    assert "exceeds the limit 0.050" in reason
    store.close()
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["offer-bandit-monitor"], output_format="list")
    assert len(runs) == 1 and runs[0].data.tags["suspended"] == TARGET
    assert runs[0].data.metrics[f"offer.{TARGET}.complaint_rate"] == pytest.approx(0.1)
    assert runs[0].data.metrics[f"offer.{TARGET}.channel.phone.offers"] == 40

    assert main(["monitor", *common, "--as-of", iso, "--no-prefect"]) == 0  # again: suspended already, not judged again
    assert "no offer over its complaint limit" in capsys.readouterr().out


def _decide_many(decider, n: int, start: datetime, prefix: str) -> list:
    """``n`` decisions through the real decider, each for a new customer (no frequency cap)
    in a happy advisory phone or chat interaction, where the target offer is eligible."""
    rng = random.Random(prefix)
    out_ = []
    for i in range(n):
        req = request(customer__id=f"{prefix}-{i}", channel=rng.choice(["phone", "chat"]),
                      interaction__sentiment=round(rng.uniform(0.1, 1.0), 2)).model_copy(
            update={"event_id": f"{prefix}-{i}"})
        out_.append(decider.decide(req, now=start + timedelta(seconds=10 * i)))
    return out_


def test_the_monitor_flow_suspends_an_offer_with_injected_complaints_and_the_service_stops_offering_it(
        tmp_path: Path, migrated_db: Path, monkeypatch: pytest.MonkeyPatch, prefect_server: None) -> None:
    import mlflow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    from bandit.config.loader import LiveConfig
    from bandit.decide.decider import Decider, ModelSlot
    from bandit.deploy.runtime import open_store
    from bandit.config.settings import get_settings
    from bandit.decide.vw import ColdStart
    from flows.monitor_flow import ARTIFACT_KEY, EXCEPTION_KEY, monitor_flow

    from receivers import smtp_server, webhook_receiver

    mail, hook = smtp_server(), webhook_receiver()
    box, received = mail.__enter__(), hook.__enter__()
    policy = tmp_path / "policy.yaml"
    policy.write_text("control: {share: 0.2}\n"  # enough control customers for a lift
                      f"notifications: {{webhook_url: '{received.url}', operators: [ops@example.com],\n"
                      f"  smtp: {{host: {box.host}, port: {box.port}}}}}\n")
    home = tmp_path / "home"
    env = {"OFFER_BANDIT_HOME": home, "OFFER_BANDIT_POLICY": policy,
           "OFFER_BANDIT_CATALOG": REPO / "config/offers.yaml", "OFFER_BANDIT_SALT": "x",
           "OFFER_BANDIT_SQLITE_SYNCHRONOUS": "NORMAL", "MLFLOW_DISABLE_TELEMETRY": "true"}
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    settings = get_settings()
    settings.ensure_home()
    shutil.copy(migrated_db, home / "mlflow.db")
    store = open_store(settings)
    decider = Decider(LiveConfig(settings), store, ModelSlot(ColdStart(0.9)), settings.secret)

    before = _decide_many(decider, 400, NOW - timedelta(hours=3), "before")
    assert all(TARGET in [r.id for r in d.ranking] for d in before)  # eligible everywhere
    made = [d for d in before if d.offer_id == TARGET]
    assert len(made) >= 30
    for k, d in enumerate(made):  # complaints about one offer in every fourth case
        if k % 4 == 0:
            decider.record_outcome(d.event_id, "complaint", now=NOW - timedelta(minutes=5))
    for k, d in enumerate(x for x in before if x.offer_id not in (TARGET, "no_offer")):
        decider.record_outcome(d.event_id, "accepted" if k % 3 == 0 else "declined", now=NOW - timedelta(minutes=5))

    try:
        state = monitor_flow(as_of=NOW.timestamp(), return_state=True)
    finally:
        hook.__exit__(None, None, None)
        mail.__exit__(None, None, None)
    assert state.is_completed(), state
    result = state.result()
    assert result["suspended"] == [TARGET] and [b["offer_id"] for b in result["breaches"]] == [TARGET]
    assert result["decisions"] == 400

    # the owners told at once: the offer's owner (the catalog's, as the offer names none) and
    # the operators by email, and the webhook, with the figures and the complaints' contexts
    mails = {msg["Subject"].split(":")[0]: (rcpt, msg) for rcpt, msg in box.messages}
    rcpt, msg = mails[f"[offer-bandit] {TARGET} suspended"]
    assert rcpt == ["marketing@example.com", "ops@example.com"]
    assert "Where the complaints came from" in msg.get_payload()
    assert "Owner: marketing@example.com" in msg.get_payload()
    assert any(f"{TARGET} suspended" in b["text"] for b in received.bodies)
    # the injected complaints also make the bandit's complaint rate significantly worse than the
    # control group's: the operators hear of that too
    harm = result["lift"]["complaint_rate"]
    flagged = harm["low"] > 0
    assert set(mails) == {f"[offer-bandit] {TARGET} suspended"} | (
        {"[offer-bandit] the bandit does worse than the control group"} if flagged else set())
    assert len(result["notified"]) == 2 * len(mails) == 2 * len(received.bodies)

    # the kill switch: in the table every replica reads
    fresh = open_store(settings)
    assert fresh.suspended(fresh=True) == {TARGET}
    fresh.close()

    # the exception report is its own Prefect artifact, naming the offer; the routine report has another key
    with get_client(sync_client=True) as client:
        artifacts = {a.key: a.data for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[ARTIFACT_KEY, EXCEPTION_KEY]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))}
    md = artifacts[EXCEPTION_KEY]
    assert md.startswith("# Exception") and f"`{TARGET}`: suspended" in md and "Where the complaints came from" in md
    assert artifacts[ARTIFACT_KEY].startswith("# Offer monitoring")

    # MLflow: the run, its report and its tag
    mlflow.set_tracking_uri(settings.tracking_uri)
    run = mlflow.get_run(result["run_id"])
    assert run.data.tags["suspended"] == TARGET
    assert f"`{TARGET}`" in mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/report.md")
    assert "Where the complaints came from" in mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/exceptions.md")
    assert run.data.metrics[f"offer.{TARGET}.complaint_rate"] > 0.05
    assert result["lift"] and "lift.revenue_per_decision.diff" in run.data.metrics  # control decisions were there

    # the service stops offering it: the same decider, once its kill-switch cache has expired
    time.sleep(settings.suspension_refresh_seconds + 0.1)
    after = _decide_many(decider, 300, NOW + timedelta(minutes=1), "after")
    assert not any(d.offer_id == TARGET for d in after)
    assert all(any(e.offer_id == TARGET and e.reason == "suspended" for e in d.excluded) for d in after)
    assert sum(d.offer_id != "no_offer" for d in after) > 100  # the other offers still are
    store.close()
