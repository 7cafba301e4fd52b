"""Contact history in a table of its own.

Until now the guardrails' contact history was a query over ``decisions`` (joined with
``outcomes``) by the index ``ix_decisions_customer_ts``. That index cost every decision,
``no_offer`` ones included, a random index page in its commit (WAL pages per 16-row commit
36.5 with it, 20.6 with ``contacts``: ``experiments/bench/log_pages.py``). ``contacts`` holds one narrow row per contact (an offer shown,
declined, accepted or converted, a complaint), written in the same transaction as the
decision, activation or outcome it comes from. This revision creates it, fills it from the
log, and drops the index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_key", sa.String(64), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("offer_id", sa.String(128), nullable=False),
    )
    # What the history query read before, as rows: offers shown (activated, not no_offer,
    # at their activation), and the outcomes that are contacts (at their own time).
    op.execute(
        "INSERT INTO contacts (customer_key, ts, kind, offer_id) "
        "SELECT customer_key, COALESCE(activated_ts, ts), 'shown', chosen_id FROM decisions "
        "WHERE customer_key IS NOT NULL AND activated AND chosen_id != 'no_offer'"
    )
    op.execute(
        "INSERT INTO contacts (customer_key, ts, kind, offer_id) "
        "SELECT d.customer_key, o.ts, "
        "CASE o.type WHEN 'converted' THEN 'accepted' ELSE o.type END, d.chosen_id "
        "FROM outcomes o JOIN decisions d ON d.event_id = o.event_id "
        "WHERE d.customer_key IS NOT NULL AND o.type IN ('declined', 'accepted', 'converted', 'complaint')"
    )
    op.create_index("ix_contacts_customer_ts", "contacts", ["customer_key", "ts"])
    op.drop_index("ix_decisions_customer_ts", table_name="decisions")


def downgrade() -> None:
    op.create_index("ix_decisions_customer_ts", "decisions", ["customer_key", "ts"])
    op.drop_index("ix_contacts_customer_ts", table_name="contacts")
    op.drop_table("contacts")
