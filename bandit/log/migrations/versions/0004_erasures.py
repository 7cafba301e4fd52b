"""The audit of erasures (``offer-bandit forget``): when, and how many rows, never whose.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("decisions", sa.Integer, nullable=False),
        sa.Column("outcomes", sa.Integer, nullable=False),
        sa.Column("contacts", sa.Integer, nullable=False),
        sa.Column("requested_by", sa.String(128)),
    )


def downgrade() -> None:
    op.drop_table("erasures")
