"""PostgreSQL: decisions, contacts and capacity uses partitioned by day, so that retention
drops whole partitions; ``decision_ids`` keeps a decision exactly once by event id (a
partitioned table's unique keys must include its partition key) and outcomes reference it.

The existing rows are not copied: each table becomes its own ``_history`` partition (up to
the next UTC midnight), day partitions follow for the week ahead, and the purge drops the
history partition once all of it is past the retention (``bandit.log.partitions``,
``docs/partitioning.md``). SQLite: nothing changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from bandit.log.partitions import convert, unconvert

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        convert(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        unconvert(op.get_bind())
