"""Offers made against a capacity, in a table of their own (``offer_uses``).

An offer may carry a capacity (at most N per hour or day, ``bandit.config.catalog.Capacity``),
counted across replicas in the shared log. Each decision choosing such an offer writes one
narrow row here in its own transaction; the index on (offer, time) makes the count read
only that offer's recent rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "offer_uses",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("offer_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(16)),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
    )
    op.create_index("ix_offer_uses_offer_ts", "offer_uses", ["offer_id", "ts"])


def downgrade() -> None:
    op.drop_index("ix_offer_uses_offer_ts", table_name="offer_uses")
    op.drop_table("offer_uses")
