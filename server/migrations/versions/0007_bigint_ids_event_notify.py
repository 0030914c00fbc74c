"""64-bit ids; on PostgreSQL, a NOTIFY when events are written

Every id column becomes BIGINT (SQLite's INTEGER already is 64-bit), with its sequence.
A statement that inserts events notifies `todo_chat_events` with the highest new id. The
notification is sent when the transaction commits and dropped when it rolls back, so it says
only what happened; it is a wake-up call, the events themselves are read from the table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, its sequence if it is the primary key)
ID_COLUMNS = [
    ("tasks", "id", "tasks_id_seq"),
    ("tasks", "series_id", None),
    ("events", "id", "events_id_seq"),
    ("events", "task_id", None),
    ("conversations", "id", "conversations_id_seq"),
    ("messages", "id", "messages_id_seq"),
    ("messages", "conversation_id", None),
    ("messages", "reply_to", None),
    ("turn_effects", "id", "turn_effects_id_seq"),
    ("turn_effects", "message_id", None),
]

NOTIFY_FUNCTION = """
CREATE FUNCTION todo_chat_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('todo_chat_events', (SELECT max(id)::text FROM written));
    RETURN NULL;
END
$$
"""
NOTIFY_TRIGGER = """
CREATE TRIGGER events_notify AFTER INSERT ON events
REFERENCING NEW TABLE AS written
FOR EACH STATEMENT EXECUTE FUNCTION todo_chat_notify_events()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, sequence in ID_COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE BIGINT")
        if sequence:
            op.execute(f"ALTER SEQUENCE {sequence} AS BIGINT")
    op.execute(NOTIFY_FUNCTION)
    op.execute(NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER events_notify ON events")
    op.execute("DROP FUNCTION todo_chat_notify_events()")
    for table, column, sequence in ID_COLUMNS:
        if sequence:
            op.execute(f"ALTER SEQUENCE {sequence} AS INTEGER")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE INTEGER")
