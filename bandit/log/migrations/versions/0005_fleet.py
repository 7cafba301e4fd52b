"""A fleet that agrees: every suspension and resume kept (``suspension_events``), and the
catalog and policy a reload published for every replica (``config_versions``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suspension_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("offer_id", sa.String(128), nullable=False),
        sa.Column("suspended", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("actor", sa.String(128)),
        sa.Column("ts", sa.Float, nullable=False),
    )
    op.create_index("ix_suspension_events_offer", "suspension_events", ["offer_id", "ts"])
    # the history starts with the state as it is
    op.execute("INSERT INTO suspension_events (offer_id, suspended, reason, actor, ts) "
               "SELECT offer_id, suspended, reason, 'migration 0005', ts FROM suspensions")
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("catalog_version", sa.String(32), nullable=False),
        sa.Column("policy_version", sa.String(32), nullable=False),
        sa.Column("catalog_text", sa.Text, nullable=False),
        sa.Column("policy_text", sa.Text, nullable=False),
        sa.Column("catalog_source", sa.Text),
        sa.Column("policy_source", sa.Text),
        sa.Column("published_by", sa.String(128)),
    )


def downgrade() -> None:
    op.drop_table("config_versions")
    op.drop_index("ix_suspension_events_offer", table_name="suspension_events")
    op.drop_table("suspension_events")
