"""Task listings: the query a client asks with, and keyset pages over it.

A page is one statement, built once per shape of query (which filters, which sort, whether
after a cursor, whether counted) and cached; a request only supplies the values.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Integer,
    Select,
    SmallInteger,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB

from server.database import Database
from server.errors import InvalidInput
from server.models import Due, Priority, QueryText, TagText, TaskPublic, TasksPublic, UTCDateTime
from server.services import cursors
from server.tasks.statements import OWNER, PUBLIC, table

Status = Literal["all", "pending", "completed"]
Sort = Literal["created", "-created", "due", "-due", "priority", "-priority"]
MAX_PAGE = 100
# A count, when asked for, counts the matches up to this many: an exact count of a very large
# set costs a scan every time, and no one pages through 10,000 tasks.
COUNT_CAP = 10_000

_SORT_COLUMNS: dict[str, Any] = {
    "created": table.c.created_at,
    "due": table.c.due,
    "priority": table.c.priority,
}
_ATTR = {"created": "created_at", "due": "due", "priority": "priority"}
# A page of rows is validated in one call, not one call per row.
_PAGE = TypeAdapter(list[TaskPublic])
_FILTERS = ("pattern", "priority", "tag", "due_before", "due_after")
_LISTINGS: dict[tuple[Any, ...], Any] = {}


class TaskQuery(BaseModel):
    """What a listing asks for: REST reads it from the query string as one model."""

    model_config = ConfigDict(frozen=True)

    status: Status = Field(default="all", description="all, pending (not done) or completed")
    q: QueryText | None = Field(default=None, description="Text in title or description")
    priority: Priority | None = Field(default=None, description="Only tasks of this priority")
    tag: TagText | None = Field(default=None, description="Only tasks with this tag")
    due_before: Due | None = Field(default=None, description="Due strictly before")
    due_after: Due | None = Field(default=None, description="Due strictly after")
    sort: Sort = Field(default="-created", description="Order: a leading - is newest/highest first")
    limit: int = Field(default=20, ge=1, le=MAX_PAGE, description="Tasks per page")
    cursor: cursors.Cursor | None = Field(
        default=None, description="`next_cursor` of the previous page"
    )
    # Counting costs a scan of the matches; a client that shows "N tasks" asks for it.
    count: bool = Field(
        default=False, description="Also say how many tasks match (up to 10,000), on the first page"
    )
    repeating: bool | None = Field(
        default=None, description="true: only repeating tasks; false: only one-off tasks"
    )


async def find(db: Database, owner_id: str, query: TaskQuery) -> TasksPublic:
    """A page of the owner's tasks; `count` when asked for, on the first page (see COUNT_CAP)."""
    if not 1 <= query.limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    params: dict[str, Any] = {"owner": owner_id, "limit": query.limit + 1}
    if query.status != "all":
        params["completed"] = query.status == "completed"
    if query.q and query.q.strip():
        params["pattern"] = "%" + _escape_like(query.q.strip()) + "%"
    if query.priority is not None:
        params["priority"] = query.priority.rank
    if query.tag and query.tag.strip():
        tag = query.tag.strip().lower()
        params["tag"] = [tag] if db.is_postgres else tag
    if query.due_before is not None:
        params["due_before"] = query.due_before
    if query.due_after is not None:
        params["due_after"] = query.due_after
    counted = query.count and not query.cursor
    cursor_kind = None
    if query.cursor:
        value, params["last_id"] = cursors.decode(query.cursor, query.sort)
        cursor_kind = "null" if value is None else "value"
        if value is not None:
            params["last_value"] = value
    shape = (
        query.status,
        *(name in params for name in _FILTERS),
        query.sort,
        cursor_kind,
        counted,
        query.repeating,
        db.is_postgres,
    )
    statement = _LISTINGS.get(shape)
    if statement is None:
        statement = _LISTINGS[shape] = _listing(
            query.status, params, query.sort, cursor_kind, counted, query.repeating, db.is_postgres
        )
    rows = await db.rows(statement, params, plan_per_call="pattern" in params or "tag" in params)
    page = _PAGE.validate_python(rows[: query.limit])
    count: int | None = None
    if counted:
        count = rows[0]["total"] if rows else 0
    next_cursor = None
    if len(rows) > query.limit:
        last = page[-1]
        name = query.sort.lstrip("-")
        next_cursor = cursors.encode(query.sort, getattr(last, _ATTR[name]), last.id)
    return TasksPublic(data=page, count=count, next_cursor=next_cursor)


def _listing(
    status: str,
    params: dict[str, Any],
    sort: str,
    cursor: str | None,
    counted: bool,
    repeating: bool | None,
    postgres: bool,
) -> Any:
    filters: list[ColumnElement[bool]] = [table.c.owner_id == OWNER]
    if repeating is not None:
        rule = table.c.recurrence
        filters.append(rule.is_not(None) if repeating else rule.is_(None))
    if status != "all":
        filters.append(table.c.completed == bindparam("completed", type_=Boolean()))
    if "pattern" in params:
        pattern = bindparam("pattern", type_=String())
        filters.append(
            or_(
                table.c.title.ilike(pattern, escape="\\"),
                table.c.description.ilike(pattern, escape="\\"),
            )
        )
    if "priority" in params:
        filters.append(table.c.priority == bindparam("priority", type_=SmallInteger()))
    if "tag" in params:
        if postgres:
            tag_list = bindparam("tag", type_=JSONB())
            filters.append(type_coerce(table.c.tags, JSONB).contains(tag_list))
        else:
            elements = func.json_each(table.c.tags).table_valued("value")
            tag = bindparam("tag", type_=String())
            filters.append(exists(select(1).select_from(elements).where(elements.c.value == tag)))
    if "due_before" in params:
        filters.append(table.c.due < bindparam("due_before", type_=UTCDateTime()))
    if "due_after" in params:
        filters.append(table.c.due > bindparam("due_after", type_=UTCDateTime()))

    descending = sort.startswith("-")
    name = sort.lstrip("-")
    column = _SORT_COLUMNS[name]
    nullable = name == "due"
    columns: list[Any] = list(PUBLIC)
    if counted:
        # Counted in the same statement as the page: one round trip.
        capped = select(literal(1)).where(*filters).correlate(None).limit(COUNT_CAP)
        total = select(func.count()).select_from(capped.subquery()).scalar_subquery()
        columns.append(total.label("total"))
    statement: Select[Any] = select(*columns).where(*filters)
    if cursor is not None:
        statement = statement.where(_after(column, descending, nullable, cursor == "null"))
    order = column.desc() if descending else column.asc()
    if nullable:
        order = order.nulls_last()
    id_order = table.c.id.desc() if descending else table.c.id.asc()
    return statement.order_by(order, id_order).limit(bindparam("limit", type_=Integer()))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _after(column: Any, descending: bool, nullable: bool, after_null: bool) -> ColumnElement[bool]:
    """Rows strictly after the cursor's (value, id) in the listing's order; NULLs sort last.

    Non-null values compare as a row, `(column, id) < (value, last_id)`, which PostgreSQL
    answers from the (owner, column, id) index without scanning the rows before the cursor.
    """
    last_id = bindparam("last_id", type_=BigInteger())
    id_after = table.c.id < last_id if descending else table.c.id > last_id
    if after_null:
        return and_(column.is_(None), id_after)
    value = bindparam("last_value", type_=column.type)
    pair, cursor = tuple_(column, table.c.id), tuple_(value, last_id)
    beyond = pair < cursor if descending else pair > cursor
    return or_(beyond, column.is_(None)) if nullable else beyond
