"""Alembic's environment for the decision log.

``bandit.log.migrations.upgrade`` passes the connection it holds (inside its transaction and
lock) as ``config.attributes["connection"]``. Run by hand (``.venv/bin/alembic`` with the
repository's ``alembic.ini``, e.g. ``revision --autogenerate``) it connects to
``-x url=...``, else to the settings' log (``OFFER_BANDIT_DATABASE_URL`` or the home's
SQLite file)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from bandit.log.schema import metadata


def run() -> None:
    conn = context.config.attributes.get("connection")
    if conn is not None:
        _migrate(conn)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url is None:
        from bandit.config.settings import get_settings

        url = get_settings().db_url
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _migrate(conn)
    finally:
        engine.dispose()


def _migrate(conn) -> None:  # type: ignore[no-untyped-def]
    # SQLite cannot ALTER most things: batch mode rewrites a table instead.
    context.configure(connection=conn, target_metadata=metadata,
                      render_as_batch=conn.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run()
