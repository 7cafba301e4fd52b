"""A fleet that agrees: a reload published on one replica is served by every replica
(``ConfigFollower``), publications from before a replica's start are not adopted, and one
that does not load here is said, not served. Every suspension and resume is kept with who,
when and why, and the monitor judges a resumed offer only on what came after the resume.
Through HTTP across two replicas: ``tests/service/test_replicas.py``."""

from __future__ import annotations

from pathlib import Path

from bandit.config.loader import LiveConfig
from bandit.config.settings import Settings
from bandit.deploy.fleet import ConfigFollower, publish
from bandit.deploy.monitoring import MonitorWindow, assess, observe
from bandit.config.policyfile import Monitoring
from bandit.config.catalog import load_catalog
from bandit.log.records import DecisionRecord
from bandit.domain.outcomes import Outcome
from bandit.log.store import DecisionStore
from conftest import NOW, REPO


def replica(settings: Settings, tmp: Path, name: str, catalog_text: str) -> LiveConfig:
    """A replica's configuration, from its own copy of the files."""
    d = tmp / name
    d.mkdir()
    (d / "offers.yaml").write_text(catalog_text)
    (d / "policy.yaml").write_text("")
    return LiveConfig(settings.model_copy(update={"catalog": d / "offers.yaml", "policy": d / "policy.yaml"}))


def test_a_reload_published_on_one_replica_is_served_by_the_others(settings: Settings, store: DecisionStore,
                                                                   tmp_path: Path) -> None:
    text = (REPO / "config/offers.yaml").read_text()
    a, b = replica(settings, tmp_path, "a", text), replica(settings, tmp_path, "b", text)
    changed: list = []
    follower = ConfigFollower(b, store, on_change=changed.append)
    assert not follower.check() and b.current.published == 0
    edited = text.replace("title: Fiber 1 Gbps upgrade at the current price for 3 months", "title: Fiber, cheaper")
    (Path(a.current.sources[0])).write_text(edited)
    a.reload()
    served = publish(a, store, published_by="test")
    assert served.published > 0 and served.catalog.version != b.current.catalog.version
    assert follower.check() and changed
    assert b.current.catalog.version == served.catalog.version and b.current.published == served.published
    assert b.current.catalog.offers["fiber_upgrade"].title == "Fiber, cheaper"
    assert not follower.check()  # nothing newer


def test_a_publication_from_before_the_start_is_not_adopted_and_a_bad_one_is_said(
        settings: Settings, store: DecisionStore, tmp_path: Path) -> None:
    text = (REPO / "config/offers.yaml").read_text()
    a = replica(settings, tmp_path, "a", text)
    publish(a, store)
    late = replica(settings, tmp_path, "late", text.replace("value: 120", "value: 99", 1))
    follower = ConfigFollower(late, store, on_change=lambda cfg: None)
    assert not follower.check() and late.current.catalog.offers["fiber_upgrade"].value == 99  # its own files
    store.publish_config("offers: [{id: x}]", "", "bad", "bad", ("elsewhere", "elsewhere"))
    assert not follower.check()
    assert follower.last_error is not None and follower.last_error.startswith("published configuration #")
    assert late.current.catalog.offers["fiber_upgrade"].value == 99


def _rec(i: int, offer: str, ts: float) -> DecisionRecord:
    return DecisionRecord(event_id=f"e{i}", ts=ts, mode="online", model_version="m", action_ids=["no_offer", offer],
                          pmf=[0.5, 0.5], chosen_index=1, activated=True, channel="phone",
                          payload={"context": {"channel": "phone"}, "offer_value": 10.0})


def test_every_switch_is_kept_and_a_resume_holds_until_new_complaints(store: DecisionStore) -> None:
    store.set_suspended("premium_bundle", True, "monitor: too many complaints", actor="monitor")
    store.set_suspended("premium_bundle", False, "fixed the eligibility", actor="admin: ana")
    history = store.suspension_history("premium_bundle")
    assert [(e["suspended"], e["actor"], e["reason"]) for e in history] == [
        (True, "monitor", "monitor: too many complaints"), (False, "admin: ana", "fixed the eligibility")]
    resumed = store.resumed_at()["premium_bundle"]
    window = MonitorWindow(resumed + 3600, 24)
    catalog = load_catalog(REPO / "config/offers.yaml")

    def judged(after: int) -> list[str]:
        """40 offers before the resume, a quarter complained about; ``after`` offers after it, as many."""
        obs = []
        for i in range(40 + after):
            ts = resumed - 600 + i if i < 40 else resumed + i
            outs = [Outcome(f"e{i}", "complaint", ts + 1)] if i % 4 == 0 else []
            obs.append(observe(_rec(i, "premium_bundle", ts), outs, window.as_of, store.resumed_at()))
        return [b.offer_id for b in assess(obs, window, catalog, Monitoring(), set()).breaches]

    assert judged(0) == []  # the old complaints alone: the resume holds
    assert judged(10) == []  # 10 new offers: fewer than min_offers (30) to judge by
    assert judged(40) == ["premium_bundle"]  # new evidence
