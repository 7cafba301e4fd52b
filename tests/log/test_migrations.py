"""The decision log's schema versions: the migrations build exactly the tables the code
declares, a fresh log is created at the head revision without Alembic, and a log at any
other revision is refused until `offer-bandit migrate` upgrades it."""

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import ForeignKeyConstraint, MetaData, create_engine, text

from bandit.cli import main
from bandit.log.migrations import BASELINE, HEAD, REVISIONS, SCRIPTS, SchemaError, upgrade
from bandit.log.partitions import decision_ids
from bandit.log.records import DecisionRecord
from bandit.log.store import DecisionStore
from bandit.log.schema import metadata
from conftest import REPO


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: an SQLite file not yet made, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'log.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def schema_differences(url: str) -> list:
    """What Alembic's autogenerate would change to make the database match the metadata.

    PostgreSQL's layout (``bandit.log.partitions``) is the metadata's tables partitioned:
    the partitions themselves are not compared (each is its table's copy), ``decision_ids``
    is compared with its own declaration, and the outcomes' foreign key names it."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
                return compare_metadata(ctx, metadata)
            children = set(conn.execute(text("select inhrelid::regclass::text from pg_inherits")).scalars())
            expected = MetaData()
            for table in [*metadata.tables.values(), decision_ids]:
                table.to_metadata(expected)
            fk = next(iter(expected.tables["outcomes"].foreign_keys))
            expected.tables["outcomes"].c.event_id.foreign_keys.discard(fk)
            expected.tables["outcomes"].constraints.discard(fk.constraint)
            expected.tables["outcomes"].append_constraint(ForeignKeyConstraint(["event_id"], ["decision_ids.event_id"]))

            def include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
                table = obj if type_ == "table" else getattr(obj, "table", None)
                return getattr(table, "name", name) not in children

            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True,
                                                         "include_object": include})
            return compare_metadata(ctx, expected)
    finally:
        engine.dispose()


def legacy_log(url: str) -> None:
    """The log as the code made it before revisions existed: revision 0001's tables, unversioned."""
    from alembic import command
    from alembic.config import Config

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(SCRIPTS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, BASELINE)
            conn.execute(text("drop table alembic_version"))
    finally:
        engine.dispose()


def revision_of(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("select version_num from alembic_version"))]
    finally:
        engine.dispose()


def test_the_revision_constants_are_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    scripts = ScriptDirectory.from_config(cfg)
    assert scripts.get_heads() == [HEAD]
    assert tuple(reversed([s.revision for s in scripts.walk_revisions()])) == REVISIONS


def test_the_migrations_build_exactly_the_declared_schema(empty_url: str) -> None:
    before, after = upgrade(empty_url)  # Alembic's machinery, revision by revision
    assert before.empty and after == HEAD
    assert schema_differences(empty_url) == []
    assert revision_of(empty_url) == [HEAD]
    DecisionStore(empty_url).close()  # and the store opens it as it is


def test_a_fresh_log_is_created_at_head_without_alembic(empty_url: str) -> None:
    DecisionStore(empty_url).close()
    assert revision_of(empty_url) == [HEAD]
    assert schema_differences(empty_url) == []  # the same schema as the migrations build (test above)


def test_opening_a_store_does_not_import_alembic(tmp_path: Path) -> None:
    code = ("import sys; from bandit.log.store import DecisionStore; "
            f"DecisionStore('sqlite:///{tmp_path / 'a.db'}').close(); "
            f"DecisionStore('sqlite:///{tmp_path / 'a.db'}').close(); "
            "assert 'alembic' not in sys.modules, 'alembic imported'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert p.returncode == 0, p.stderr


def test_an_unversioned_log_is_refused_until_migrate_stamps_it(empty_url: str, capsys) -> None:
    legacy_log(empty_url)
    engine = create_engine(empty_url)
    with engine.begin() as c:
        c.execute(text("insert into suspensions (offer_id, suspended, reason, ts) values ('x', true, 'r', 1)"))
    engine.dispose()
    with pytest.raises(SchemaError, match=r"unversioned .* run `offer-bandit migrate --database-url "):
        DecisionStore(empty_url)

    assert main(["migrate", "--check", "--database-url", empty_url]) == 1
    assert "offer-bandit migrate" in capsys.readouterr().out
    assert main(["migrate", "--database-url", empty_url]) == 0
    assert "upgraded from unversioned (made before migrations existed) to revision " + HEAD in capsys.readouterr().out
    assert main(["migrate", "--check", "--database-url", empty_url]) == 0
    assert main(["migrate", "--database-url", empty_url]) == 0
    assert "already at revision " + HEAD in capsys.readouterr().out
    store = DecisionStore(empty_url)
    try:
        assert store.suspended() == {"x"}  # the rows are kept
    finally:
        store.close()


def test_a_log_at_a_revision_this_code_does_not_know_is_refused(empty_url: str, capsys) -> None:
    DecisionStore(empty_url).close()
    engine = create_engine(empty_url)
    with engine.begin() as c:
        c.execute(text("update alembic_version set version_num = '9999'"))
    engine.dispose()
    with pytest.raises(SchemaError, match="revision 9999, which this code does not know"):
        DecisionStore(empty_url)
    assert main(["migrate", "--database-url", empty_url]) == 2
    assert "revision 9999, which this code does not know" in capsys.readouterr().err
    assert revision_of(empty_url) == ["9999"]


def test_a_legacy_log_whose_tables_differ_is_not_stamped(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    legacy_log(url)
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("alter table decisions drop column source"))
    engine.dispose()
    assert main(["migrate", "--database-url", url]) == 2
    assert "table 'decisions' does not match" in capsys.readouterr().err


def test_processes_opening_a_fresh_log_together_create_it_once(empty_url: str) -> None:
    """Replicas starting at the same moment on an empty database: each waits for the
    lock, the first creates the tables, the others find them at head."""
    barrier, errors = threading.Barrier(6), []

    def open_one() -> None:
        barrier.wait()
        try:
            DecisionStore(empty_url).close()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert revision_of(empty_url) == [HEAD]


def test_revision_0002_moves_the_contact_history_into_contacts(empty_url: str) -> None:
    """A log at 0001 (history read from decisions and outcomes) keeps the same history after
    the upgrade: offers shown (a deferred one at its activation, a no_offer never), declines,
    acceptances (a conversion too), complaints (one about a no_offer decision too); nps is
    no contact."""
    from datetime import UTC, datetime

    legacy_log(empty_url)
    engine = create_engine(empty_url)
    cols = "event_id, ts, customer_key, mode, model_version, chosen_id, probability, activated, activated_ts, source, payload"
    with engine.begin() as c:
        for eid, ts, key, chosen, activated, activated_ts in [
            ("shown", 100.0, "k", "a", True, 100.0), ("none", 110.0, "k", "no_offer", True, 110.0),
            ("deferred", 120.0, "k", "b", True, 125.0), ("never", 130.0, "k", "c", False, None),
            ("other", 140.0, "k2", "a", True, 140.0),
        ]:
            c.execute(text(f"insert into decisions ({cols}) values (:e, :ts, :k, 'online', 'm', :ch, 0.5, :act, :ats,"
                           " 'live', '{}')"), {"e": eid, "ts": ts, "k": key, "ch": chosen, "act": activated,
                                               "ats": activated_ts})
        for eid, type_, ts in [("shown", "declined", 200.0), ("deferred", "converted", 210.0),
                               ("none", "complaint", 220.0), ("shown", "nps", 230.0)]:
            c.execute(text("insert into outcomes (event_id, type, ts, dedupe) values (:e, :t, :ts, :t)"),
                      {"e": eid, "t": type_, "ts": ts})
        c.execute(text("create table alembic_version (version_num varchar(32) not null primary key)"))
        c.execute(text(f"insert into alembic_version values ('{BASELINE}')"))
    engine.dispose()

    assert upgrade(empty_url)[1] == HEAD
    assert schema_differences(empty_url) == []
    store = DecisionStore(empty_url)
    try:
        h = store.history("k", datetime.fromtimestamp(1000, UTC), 1)
        assert [(e.offer_id, e.at.timestamp()) for e in h.shown] == [("a", 100.0), ("b", 125.0)]
        assert [(e.offer_id, e.at.timestamp()) for e in h.declined] == [("a", 200.0)]
        assert [(e.offer_id, e.at.timestamp()) for e in h.accepted] == [("b", 210.0)]
        assert h.last_complaint is not None and h.last_complaint.timestamp() == 220.0
        assert [e.offer_id for e in store.history("k2", datetime.fromtimestamp(1000, UTC), 1).shown] == ["a"]
    finally:
        store.close()


@pytest.mark.postgres
def test_revision_0006_partitions_a_log_with_rows_keeps_them_and_downgrades(pg_url: str) -> None:
    """A PostgreSQL log at 0005 with decisions (long past, today, dated ahead), an outcome, a
    contact and a capacity use: after the upgrade every row is there, each table is its own
    history partition followed by days ahead, ``decision_ids`` holds the ids, and a repeated
    id is refused; the downgrade gives back the unpartitioned tables with the same rows."""
    import time

    from alembic import command
    from alembic.config import Config

    engine = create_engine(pg_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    with engine.begin() as c:
        cfg.attributes["connection"] = c
        command.upgrade(cfg, "0005")
        cols = "event_id, ts, customer_key, mode, model_version, chosen_id, probability, activated, source, payload"
        now = time.time()
        for eid, ts in [("old", 1_000_000.0), ("today", now), ("later", now + 3 * 86400)]:
            c.execute(text(f"insert into decisions ({cols}) values (:e, :ts, 'k', 'online', 'm', 'a', 0.5, true, "
                           "'live', '{}')"), {"e": eid, "ts": ts})
        c.execute(text("insert into outcomes (event_id, type, ts, dedupe) values ('old', 'declined', 2e6, 'd')"))
        c.execute(text("insert into contacts (customer_key, ts, kind, offer_id) values ('k', :ts, 'shown', 'a')"),
                  {"ts": now})
        c.execute(text("insert into offer_uses (offer_id, channel, ts, event_id) values ('a', 'chat', :ts, 'today')"),
                  {"ts": now})
    tables = ("decisions", "outcomes", "contacts", "offer_uses")

    def counts() -> list[int]:
        with engine.connect() as c:
            return [c.execute(text(f"select count(*) from {t}")).scalar_one() for t in tables]

    assert upgrade(pg_url)[1] == HEAD
    assert counts() == [3, 1, 1, 1]
    assert schema_differences(pg_url) == []
    with engine.connect() as c:
        assert set(c.execute(text("select event_id from decision_ids")).scalars()) == {"old", "today", "later"}
        later = time.strftime("decisions_p%Y%m%d", time.gmtime(now + 3 * 86400))
        assert c.execute(text(f"select event_id from {later}")).scalars().all() == ["later"]  # in its day
        kinds = set(c.execute(text("select relname from pg_class where relname like 'decisions\\_%'")).scalars())
    assert {"decisions_history", "decisions_default"} <= kinds and len(kinds & {f"decisions_p{d}" for d in (
        time.strftime("%Y%m%d", time.gmtime(now + k * 86400)) for k in range(1, 8))}) == 7
    store = DecisionStore(pg_url)
    try:
        assert store.time_range() == (1_000_000.0, now + 3 * 86400) and store.outcomes_for("old")[0].type == "declined"
        again = DecisionRecord(event_id="today", ts=now + 86400, mode="online", model_version="m",
                               action_ids=["a"], pmf=[1.0], chosen_index=0, activated=True, payload={})
        assert store.log_decision(again) is False  # the id is taken, whatever the day
    finally:
        store.close()
    with engine.begin() as c:
        cfg.attributes["connection"] = c
        command.downgrade(cfg, "0005")
    assert counts() == [3, 1, 1, 1]
    with engine.connect() as c:
        assert c.execute(text("select relkind from pg_class where relname = 'decisions' "
                              "and relnamespace = current_schema()::regnamespace")).scalar() == "r"
    engine.dispose()
