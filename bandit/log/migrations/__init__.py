"""The decision log's schema version: checked whenever a store opens, changed only by
``offer-bandit migrate``.

The schema is versioned with Alembic (revisions in ``versions/``, the first being the
schema the log had before migrations existed). Opening a store must stay cheap (the
service, every command and the test suite open stores all the time) and must never
race another process, so opening does not run Alembic:

- an empty database is created at the head revision in one transaction (the tables from
  ``bandit.log.schema.metadata``, on PostgreSQL partitioned by time as revision 0006 makes
  them, ``bandit.log.partitions``; then the version stamped), under a lock: SQLite's write lock
  (``BEGIN IMMEDIATE``), or a PostgreSQL advisory lock per schema, so replicas starting
  together on a fresh database create it once. A test proves the migrations produce
  exactly these tables on both backends;
- a database at the head revision is used as it is (one query);
- anything else is refused with ``SchemaError`` naming ``offer-bandit migrate``: a log at
  an older revision (or one made before revisions existed), and one at a revision this
  code does not know (newer code migrated it). A schema change is a step an operator
  takes, once, with a backup, not a side effect of whichever replica starts first; SQLite
  is held to the same rule so that the embedded log and the production one behave alike.

``upgrade`` (the ``migrate`` command) takes the same lock and runs Alembic to head.
Alembic is imported only there: importing it costs start-up time the request path
never needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, inspect, select, text
from sqlalchemy.engine import Connection, Engine, make_url

from bandit.domain.errors import OfferBanditError
from bandit.log import partitions

# The newest revision in versions/. Kept here so that opening a store needs no Alembic;
# tests/log/test_migrations.py fails when it differs from Alembic's own head.
HEAD = "0006"
# Every revision this code knows, oldest first (the same test checks it against Alembic).
REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006")
BASELINE = "0001"
# The columns the log had before revisions existed (revision 0001): a database with
# these tables and no version is stamped at 0001 by ``upgrade`` before it upgrades.
BASELINE_COLUMNS = {
    "decisions": ("event_id", "ts", "customer_key", "channel", "request_type", "mode", "model_version",
                  "catalog_version", "chosen_id", "probability", "activated", "activated_ts", "source",
                  "payload"),
    "outcomes": ("id", "event_id", "type", "value", "score", "ts", "dedupe"),
    "suspensions": ("offer_id", "suspended", "reason", "ts"),
}
SCRIPTS = Path(__file__).resolve().parent

# Alembic's own version table, as Alembic creates it: stamping a fresh database with it
# is what ``alembic stamp`` would write.
_version_table = Table(
    "alembic_version", MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


class SchemaError(OfferBanditError):
    """The decision log's schema is not the one this code needs."""


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: its revision (``None``: no version table) and which of the
    log's tables exist."""

    revision: str | None
    tables: frozenset[str]

    @property
    def empty(self) -> bool:
        return self.revision is None and not self.tables

    @property
    def described(self) -> str:
        if self.revision is not None:
            return f"revision {self.revision}"
        return "unversioned (made before migrations existed)" if self.tables else "empty"


def display_url(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def read_state(conn: Connection) -> SchemaState:
    insp = inspect(conn)
    names = set(insp.get_table_names())
    revision = None
    if _version_table.name in names:
        revision = conn.execute(select(_version_table.c.version_num)).scalar()
    return SchemaState(revision, frozenset(names & set(BASELINE_COLUMNS)))


def lock(conn: Connection) -> None:
    """Begin the transaction that creates or migrates the schema, holding a lock that
    every other process doing so waits for: SQLite's write lock, or a PostgreSQL
    advisory lock for this schema (released at commit)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('offer-bandit schema ' || current_schema()))"))


def ensure_schema(engine: Engine, metadata: MetaData) -> None:
    """Use the database as it is if it is at ``HEAD``; create it at ``HEAD`` if it is
    empty; else raise ``SchemaError`` naming the command that fixes it."""
    with engine.connect() as conn:
        state = read_state(conn)
        conn.rollback()
        if state.revision == HEAD:
            return
        if state.empty:
            lock(conn)
            state = read_state(conn)  # another process may have created it meanwhile
            if state.empty:
                metadata.create_all(conn)
                if conn.dialect.name == "postgresql":  # what migration 0006 makes of the tables
                    partitions.convert(conn, days_ahead=partitions.FRESH_DAYS_AHEAD)
                _version_table.create(conn)
                conn.execute(_version_table.insert().values(version_num=HEAD))
                state = SchemaState(HEAD, frozenset(BASELINE_COLUMNS))
            conn.commit()
    if state.revision != HEAD:
        raise SchemaError(refusal(engine.url.render_as_string(hide_password=False), state))


def refusal(url: str, state: SchemaState) -> str:
    """Why a database at ``state`` is not used, and what to do."""
    where = f"decision log {display_url(url)}"
    if state.revision is not None and state.revision not in REVISIONS:
        return (f"{where} is at revision {state.revision}, which this code does not know (its newest is "
                f"{HEAD}): newer code has migrated it; run that version, or restore a backup")
    return (f"{where} is {state.described}, this code needs revision {HEAD}: run `offer-bandit migrate "
            f"--database-url {display_url(url)}` (back it up first), then start again")


def upgrade(url: str) -> tuple[SchemaState, str]:
    """Migrate the database at ``url`` to ``HEAD`` (``offer-bandit migrate``), under the
    same lock as creation; returns the state it was found in and the revision it is at.

    A database made before revisions existed is stamped at the baseline first, after
    checking that its tables have the baseline's columns."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            lock(conn)
            before = read_state(conn)
            if before.revision is not None and before.revision not in REVISIONS:
                raise SchemaError(refusal(url, before))
            cfg = Config()
            cfg.set_main_option("script_location", str(SCRIPTS))
            cfg.attributes["connection"] = conn
            if before.revision is None and before.tables:
                _check_baseline(conn, url)
                command.stamp(cfg, BASELINE)
            command.upgrade(cfg, "head")
            after = read_state(conn)
            conn.commit()
    finally:
        engine.dispose()
    return before, after.revision or "?"


def _check_baseline(conn: Connection, url: str) -> None:
    insp = inspect(conn)
    for table, want in BASELINE_COLUMNS.items():
        have = tuple(c["name"] for c in insp.get_columns(table)) if insp.has_table(table) else ()
        if set(have) != set(want):
            raise SchemaError(
                f"decision log {display_url(url)} has no version and its table '{table}' does not match the "
                f"log before migrations (columns {sorted(have)}, expected {sorted(want)}): not migrating it")


def current(url: str) -> SchemaState:
    """The state of the database at ``url`` (``offer-bandit migrate --check``); an SQLite
    file that does not exist is empty, and is not created."""
    from sqlalchemy import create_engine

    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:") and not Path(u.database).exists():
        return SchemaState(None, frozenset())
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return read_state(conn)
    finally:
        engine.dispose()
