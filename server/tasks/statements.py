"""The task statements both databases run, built once each; every one filters by owner.

A statement is built once (per shape, for updates) with named bindparams: SQLAlchemy then
compiles it once, and a request only supplies the values (`server.database.Database`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    and_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from server.models import Task, TaskPublic, UTCDateTime
from server.tasks.rules import CARRIED, WRITTEN

table = Task.__table__  # type: ignore[attr-defined]
ALL = list(table.columns)
PUBLIC = [table.c[name] for name in TaskPublic.model_fields]

OWNER = bindparam("owner", type_=String())
TASK_ID = bindparam("task_id", type_=BigInteger())
OWNED_TASK = and_(table.c.id == TASK_ID, table.c.owner_id == OWNER)
NOW = bindparam("now", type_=UTCDateTime())
COUNT = select(func.count().label("count")).where(table.c.owner_id == OWNER)


def value(name: str) -> Any:
    """The bindparam `v_<name>` that carries a column's new value."""
    return bindparam(f"v_{name}", type_=table.c[name].type)


def values_of(values: dict[str, Any]) -> dict[str, Any]:
    """Column values as the `v_<name>` bindparams of these statements."""
    return {f"v_{name}": new for name, new in values.items()}


# What every new task starts with, besides the values written.
_FRESH = {
    "owner_id": OWNER,
    "completed": False,
    "completed_at": None,
    "created_at": NOW,
    "updated_at": NOW,
}
CREATE = insert(table).values(**_FRESH, **{name: value(name) for name in WRITTEN}).returning(*ALL)
# A series is named after its first task.
START_SERIES = (
    update(table)
    .where(OWNED_TASK)
    .values(series_id=table.c.id, updated_at=table.c.updated_at)
    .returning(*ALL)
)
GET = select(*PUBLIC).where(OWNED_TASK)
ROW = select(*ALL).where(OWNED_TASK)
# Read and lock the row for a change: concurrent changes of one task queue here.
LOCK = select(*ALL).where(OWNED_TASK).with_for_update()
# An expanding IN renders anew per call; on PostgreSQL the statement is compiled once for
# asyncpg, so there the ids travel as one array.
MANY = select(*PUBLIC).where(
    table.c.owner_id == OWNER, table.c.id.in_(bindparam("task_ids", expanding=True))
)
MANY_POSTGRES = select(*PUBLIC).where(
    table.c.owner_id == OWNER,
    table.c.id == any_(bindparam("task_ids", type_=postgresql.ARRAY(BigInteger()))),
)
DELETE = delete(table).where(OWNED_TASK).returning(*ALL)
_series_of = select(table.c.series_id).where(OWNED_TASK).scalar_subquery()
DELETE_SERIES = (
    delete(table)
    .where(table.c.owner_id == OWNER, or_(table.c.id == TASK_ID, table.c.series_id == _series_of))
    .returning(*ALL)
)


def _occurrence(dialect_insert: Any) -> Any:
    """The next occurrence of a series, exactly once: two completes of one occurrence, even in
    two processes, meet the unique (series, due) index and make one."""
    columns = {name: value(name) for name in (*CARRIED, "due", "series_id", "remind_at")}
    return (
        dialect_insert(table)
        .values(**_FRESH, **columns)
        .on_conflict_do_nothing(index_elements=["series_id", "due"])
        .returning(*ALL)
    )


OCCURRENCE = {False: _occurrence(sqlite.insert), True: _occurrence(postgresql.insert)}
_UPDATES: dict[tuple[str, ...], Any] = {}


def update_of(fields: tuple[str, ...]) -> Any:
    """UPDATE of these columns (sorted names) of one owned task, RETURNING the row."""
    statement = _UPDATES.get(fields)
    if statement is None:
        values = {name: value(name) for name in fields}
        statement = _UPDATES[fields] = (
            update(table).where(OWNED_TASK).values(**values, updated_at=NOW).returning(*ALL)
        )
    return statement
