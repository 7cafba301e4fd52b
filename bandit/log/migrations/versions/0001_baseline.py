"""The baseline: the decision log as it was before migrations existed.

Decisions, their outcomes (appended, deduplicated by event id and identity) and the
kill switch's suspensions.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("customer_key", sa.String(64)),
        sa.Column("channel", sa.String(16)),
        sa.Column("request_type", sa.String(16)),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("catalog_version", sa.String(32)),
        sa.Column("chosen_id", sa.String(128), nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("activated", sa.Boolean, nullable=False),
        sa.Column("activated_ts", sa.Float),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_decisions_customer_ts", "decisions", ["customer_key", "ts"])
    op.create_index("ix_decisions_ts", "decisions", ["ts"])
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128), sa.ForeignKey("decisions.event_id"), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("score", sa.Float),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("dedupe", sa.String(128), nullable=False),
        sa.UniqueConstraint("event_id", "dedupe", name="uq_outcome_dedupe"),
    )
    op.create_index("ix_outcomes_event", "outcomes", ["event_id"])
    op.create_table(
        "suspensions",
        sa.Column("offer_id", sa.String(128), primary_key=True),
        sa.Column("suspended", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("ts", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("suspensions")
    op.drop_table("outcomes")
    op.drop_table("decisions")
