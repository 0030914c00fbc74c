"""Repeating tasks, reminders, and the events outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("recurrence", sa.Text(), nullable=True))
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=True))
        batch.add_column(sa.Column("series_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("series_start", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("remind_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("remind_before", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reminded_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("reminder_lease", TIMESTAMP, nullable=True))
        batch.create_index("ux_tasks_series_due", ["series_id", "due"], unique=True)
        batch.create_index("ix_tasks_reminders", ["reminded_at", "remind_at"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("delivered_at", TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("lease_until", TIMESTAMP, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_owner_id", "events", ["owner_id", "id"])
    op.create_index("ix_events_webhook", "events", ["delivered_at", "next_attempt_at", "id"])


def downgrade() -> None:
    op.drop_table("events")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_reminders")
        batch.drop_index("ux_tasks_series_due")
        for column in (
            "reminder_lease",
            "reminded_at",
            "remind_before",
            "remind_at",
            "series_start",
            "series_id",
            "timezone",
            "recurrence",
        ):
            batch.drop_column(column)
