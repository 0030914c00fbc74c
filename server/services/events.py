"""The outbox: task events, written in the same transaction as the change they describe.

A change that rolls back leaves no event, and no committed change lacks its event. Events are
numbered in the order they were written; that number is what `GET /api/events` resumes from
(`Last-Event-ID`) and the `webhook-id` of their webhook delivery.

Every event reads, as JSON:
    {"id": 42, "type": "task.completed", "created_at": "2026-11-23T09:00:00Z",
     "user_id": "alice", "task": {... the task as the REST API shows it ...}}
Types: task.created, task.updated, task.completed, task.reopened, task.deleted (the task as
it was), task.occurrence_created (the next occurrence of a repeating task), and
reminder.due (with "remind_at" and "late": true when sent after the server was down).

Stored, an event keeps the task's row as it was written, {"row": ...} (with any extra fields
beside it), whoever wrote it: Python (`emit`) or PostgreSQL in the change's own statement
(`with_events`). `payload` makes the API's task of it at delivery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    bindparam,
    column,
    func,
    insert,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from server.database import Database, Transaction
from server.models import Event, PortableJSON, Task, TaskPublic, UTCDateTime, utcnow

_events = Event.__table__  # type: ignore[attr-defined]
_TIMES = {
    c.name
    for c in Task.__table__.columns  # type: ignore[attr-defined]
    if isinstance(c.type, UTCDateTime)
}


async def emit(tx: Transaction, kind: str, row: dict[str, Any], **extra: Any) -> None:
    """Write one event about the task `row` (as written) within the change's transaction."""
    params = {"owner": row["owner_id"], "type": kind, "task_id": row["id"], "now": utcnow()}
    await tx.rows(_EMIT, {**params, "data": {"row": _as_json(row), **extra}})
    tx.wrote_events = True


def with_events(write: Any) -> Any:
    """PostgreSQL: a task's write (an INSERT or UPDATE ... RETURNING the task) and its events
    as one statement, so one round trip with no BEGIN and COMMIT, and still all or nothing.

    The events are bound as `events`, a JSON list of {"type": ...}, and written in that order,
    each with the row as written. When the write touches no row, no event is written.
    """
    written = write.cte("written")
    listed = (
        func.jsonb_array_elements(bindparam("events", type_=JSONB))
        .table_valued(column("value", JSONB), with_ordinality="n")
        .render_derived()
        .alias("listed")
    )
    whole_row = func.to_jsonb(literal_column(written.name))
    data = func.jsonb_build_object(literal_column("'row'"), whole_row, type_=JSONB)
    emitted = insert(_events).from_select(
        ["owner_id", "type", "task_id", "data", "created_at", "attempts", "next_attempt_at"],
        select(
            written.c.owner_id,
            listed.c.value.op("->>")(literal("type")),
            written.c.id,
            data,
            _NOW,
            literal(0),
            _NOW,
        )
        .select_from(written)
        .join(listed, true())
        .order_by(listed.c.n),
    )
    return select(written).add_cte(emitted.cte("emitted"))


def payload(row: dict[str, Any]) -> dict[str, Any]:
    """An event row as it is delivered."""
    created = row["created_at"].isoformat().replace("+00:00", "Z")
    data = dict(row["data"])
    # Events written before rows were kept hold the API's task itself, and pass as they are.
    if "row" in data:
        data = {"task": _task_from_row(data.pop("row")), **data}
    return {
        "id": row["id"],
        "type": row["type"],
        "created_at": created,
        "user_id": row["owner_id"],
        **data,
    }


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    return {name: v.isoformat() if isinstance(v, datetime) else v for name, v in row.items()}


def _task_from_row(stored: dict[str, Any]) -> dict[str, Any]:
    """A task's row as stored (timestamps in ISO form, in PostgreSQL's session zone when
    `to_jsonb` wrote them; priority as its rank), as the API shows the task."""
    values = {
        name: datetime.fromisoformat(value).astimezone(UTC) if name in _TIMES and value else value
        for name, value in stored.items()
    }
    return TaskPublic.model_validate(values).model_dump(mode="json")


PAGE = 100


async def since(
    db: Database, owner_id: str, after_id: int, limit: int = PAGE
) -> list[dict[str, Any]]:
    """The user's events after this id, oldest first."""
    return await db.rows(_SINCE, {"owner": owner_id, "after": after_id, "limit": limit})


async def latest_id(db: Database, owner_id: str) -> int:
    rows = await db.rows(_LATEST, {"owner": owner_id})
    return int(rows[0]["id"]) if rows else 0


_NOW = bindparam("now", type_=UTCDateTime())
_EMIT = insert(_events).values(
    owner_id=bindparam("owner", type_=String()),
    type=bindparam("type", type_=String()),
    task_id=bindparam("task_id", type_=BigInteger()),
    data=bindparam("data", type_=PortableJSON),
    created_at=_NOW,
    attempts=0,
    next_attempt_at=_NOW,
)
_COLUMNS = [_events.c[name] for name in ("id", "owner_id", "type", "data", "created_at")]
_SINCE = (
    select(*_COLUMNS)
    .where(
        _events.c.owner_id == bindparam("owner", type_=String()),
        _events.c.id > bindparam("after", type_=BigInteger()),
    )
    .order_by(_events.c.id)
    .limit(bindparam("limit", type_=Integer()))
)
_LATEST = (
    select(_events.c.id)
    .where(_events.c.owner_id == bindparam("owner", type_=String()))
    .order_by(_events.c.id.desc())
    .limit(1)
)
