"""The task service: every rule about tasks, shared by REST, MCP and chat.

Every statement filters by owner, so another user's task is simply not found. Each operation
is one statement (INSERT/UPDATE/DELETE ... RETURNING, or one SELECT), atomic on its own: a
task that vanishes between two requests is "not found", never half-updated, and a concurrent
complete and delete cannot trip over each other.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    SmallInteger,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

from server.database import Database
from server.errors import InvalidInput, NotFound
from server.models import (
    Due,
    PortableJSON,
    Priority,
    SearchText,
    Tag,
    Task,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TasksPublic,
    TaskUpdate,
    UTCDateTime,
    id_in_range,
    utcnow,
)
from server.services import cursors

Status = Literal["all", "pending", "completed"]
MAX_PAGE = 100
# A count, when asked for, counts the matches up to this many: an exact count of a very large
# set costs a scan every time, and no one pages through 10,000 tasks.
COUNT_CAP = 10_000

_table = Task.__table__  # type: ignore[attr-defined]
_SORT_COLUMNS: dict[str, Any] = {
    "created": _table.c.created_at,
    "due": _table.c.due,
    "priority": _table.c.priority,
}
_ATTR = {"created": "created_at", "due": "due", "priority": "priority"}
SORTS = tuple(f"{sign}{name}" for name in _SORT_COLUMNS for sign in ("", "-"))
_COLUMNS = [_table.c[name] for name in TaskPublic.model_fields]


class TaskQuery(BaseModel):
    """What a listing asks for: REST reads it from the query string as one model."""

    model_config = ConfigDict(frozen=True)

    status: Status = Field(default="all", description="all, pending (not done) or completed")
    q: SearchText | None = Field(default=None, description="Text in title or description")
    priority: Priority | None = Field(default=None, description="Only tasks of this priority")
    tag: Tag | None = Field(default=None, description="Only tasks with this tag")
    due_before: Due | None = Field(default=None, description="Due strictly before")
    due_after: Due | None = Field(default=None, description="Due strictly after")
    sort: str = Field(default="-created", description=f"One of {', '.join(SORTS)}")
    limit: int = Field(default=20, ge=1, le=MAX_PAGE, description="Tasks per page")
    cursor: str | None = Field(
        default=None, max_length=500, description="`next_cursor` of the previous page"
    )
    # Counting costs a scan of the matches; a client that shows "N tasks" asks for it.
    count: bool = Field(
        default=False, description="Also say how many tasks match (up to 10,000), on the first page"
    )


class TaskService:
    def __init__(self, db: Database, owner_id: str) -> None:
        self.db = db
        self.owner_id = owner_id

    async def create(self, data: TaskCreate) -> TaskPublic:
        now = utcnow()
        [row] = await self.db.rows(
            _CREATE,
            {
                "owner": self.owner_id,
                "v_title": data.title,
                "v_description": data.description,
                "v_priority": data.priority.rank,
                "v_due": data.due,
                "v_tags": data.tags,
                "now": now,
            },
        )
        return TaskPublic.model_validate(row)

    async def get(self, task_id: int) -> TaskPublic:
        return await self._one(task_id, _GET, {})

    async def many(self, task_ids: list[int]) -> list[TaskPublic]:
        """The user's tasks among these ids, in the order given (others' and gone ones left
        out)."""
        wanted = [task_id for task_id in task_ids if id_in_range(task_id)]
        if not wanted:
            return []
        statement = _MANY_POSTGRES if self.db.is_postgres else _MANY
        rows = await self.db.rows(statement, {"owner": self.owner_id, "task_ids": wanted})
        found = {row["id"]: TaskPublic.model_validate(row) for row in rows}
        return [found[task_id] for task_id in dict.fromkeys(wanted) if task_id in found]

    async def update(self, task_id: int, data: TaskUpdate) -> TaskPublic:
        changes = data.model_dump(exclude_unset=True)
        if "priority" in changes:
            changes["priority"] = Priority(changes["priority"]).rank
        completed = changes.pop("completed", None)
        completion = None if completed is None else ("done" if completed else "open")
        return await self._change(task_id, changes, completion)

    async def replace(self, task_id: int, data: TaskReplace) -> TaskPublic:
        changes = {
            "title": data.title,
            "description": data.description,
            "priority": data.priority.rank,
            "due": data.due,
            "tags": data.tags,
        }
        return await self._change(task_id, changes, "done" if data.completed else "open")

    async def set_completed(self, task_id: int, completed: bool | None) -> TaskPublic:
        """Mark done (True), reopen (False) or toggle (None)."""
        completion = "toggle" if completed is None else ("done" if completed else "open")
        return await self._change(task_id, {}, completion)

    async def delete(self, task_id: int) -> TaskPublic:
        """Delete and return what was deleted; a second delete of the same task is not found."""
        return await self._one(task_id, _DELETE, {})

    async def find(self, query: TaskQuery) -> TasksPublic:
        """A page of tasks; `count` when asked for, on the first page (see COUNT_CAP)."""
        if query.sort not in SORTS:
            raise InvalidInput(f"sort must be one of {', '.join(SORTS)}")
        if not 1 <= query.limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        params: dict[str, Any] = {"owner": self.owner_id, "limit": query.limit + 1}
        if query.status != "all":
            params["completed"] = query.status == "completed"
        if query.q and query.q.strip():
            params["pattern"] = "%" + _escape_like(query.q.strip()) + "%"
        if query.priority is not None:
            params["priority"] = query.priority.rank
        if query.tag and query.tag.strip():
            tag = query.tag.strip().lower()
            params["tag"] = [tag] if self.db.is_postgres else tag
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
            *(name in params for name in ("pattern", "priority", "tag", "due_before", "due_after")),
            query.sort,
            cursor_kind,
            counted,
            self.db.is_postgres,
        )
        statement = _LISTINGS.get(shape)
        if statement is None:
            statement = _LISTINGS[shape] = _listing(
                query.status, params, query.sort, cursor_kind, counted, self.db.is_postgres
            )

        rows = await self.db.rows(
            statement, params, plan_per_call="pattern" in params or "tag" in params
        )
        page = [TaskPublic.model_validate(row) for row in rows[: query.limit]]
        count: int | None = None
        if counted:
            count = rows[0]["total"] if rows else 0
        next_cursor = None
        if len(rows) > query.limit:
            last = page[-1]
            name = query.sort.lstrip("-")
            next_cursor = cursors.encode(query.sort, getattr(last, _ATTR[name]), last.id)
        return TasksPublic(data=page, count=count, next_cursor=next_cursor)

    async def _change(
        self, task_id: int, changes: dict[str, Any], completion: str | None
    ) -> TaskPublic:
        shape = (tuple(sorted(changes)), completion)
        statement = _UPDATES.get(shape)
        if statement is None:
            statement = _UPDATES[shape] = _update(*shape)
        values = {f"v_{name}": value for name, value in changes.items()}
        return await self._one(task_id, statement, {**values, "now": utcnow()})

    async def _one(self, task_id: int, statement: Any, params: dict[str, Any]) -> TaskPublic:
        if not id_in_range(task_id):
            raise _not_found(task_id)
        rows = await self.db.rows(statement, {**params, "task_id": task_id, "owner": self.owner_id})
        if not rows:
            raise _not_found(task_id)
        return TaskPublic.model_validate(rows[0])


# ---------------------------------------------------------------- statements
# Built once each (per shape, for the listing and updates): SQLAlchemy then compiles each once,
# and a request only supplies the values of its bindparams. Every one filters by owner.

_OWNER = bindparam("owner", type_=String())
_TASK_ID = bindparam("task_id", type_=Integer())
_OWNED_TASK = and_(_table.c.id == _TASK_ID, _table.c.owner_id == _OWNER)
_NOW = bindparam("now", type_=UTCDateTime())

_CREATE = (
    insert(_table)
    .values(
        owner_id=_OWNER,
        title=bindparam("v_title", type_=String()),
        description=bindparam("v_description", type_=Text()),
        completed=False,
        completed_at=None,
        priority=bindparam("v_priority", type_=SmallInteger()),
        due=bindparam("v_due", type_=UTCDateTime()),
        tags=bindparam("v_tags", type_=PortableJSON),
        created_at=_NOW,
        updated_at=_NOW,
    )
    .returning(*_COLUMNS)
)
_GET = select(*_COLUMNS).where(_OWNED_TASK)
# An expanding IN renders anew per call; on PostgreSQL the statement is compiled once for
# asyncpg, so there the ids travel as one array.
_MANY = select(*_COLUMNS).where(
    _table.c.owner_id == _OWNER, _table.c.id.in_(bindparam("task_ids", expanding=True))
)
_MANY_POSTGRES = select(*_COLUMNS).where(
    _table.c.owner_id == _OWNER,
    _table.c.id == any_(bindparam("task_ids", type_=postgresql.ARRAY(Integer()))),
)
_DELETE = delete(_table).where(_OWNED_TASK).returning(*_COLUMNS)
_UPDATES: dict[tuple[Any, ...], Any] = {}
_LISTINGS: dict[tuple[Any, ...], Any] = {}


def _update(fields: tuple[str, ...], completion: str | None) -> Any:
    values: dict[str, Any] = {
        name: bindparam(f"v_{name}", type_=_table.c[name].type) for name in fields
    }
    if completion == "open":
        values.update(completed=False, completed_at=None)
    elif completion == "done":
        # A done task keeps its first completion time.
        values.update(
            completed=True,
            completed_at=case((_table.c.completed, _table.c.completed_at), else_=_NOW),
        )
    elif completion == "toggle":
        # In an UPDATE every SET reads the row as it was: the toggle of the old value.
        values.update(
            completed=not_(_table.c.completed),
            completed_at=case((_table.c.completed, None), else_=_NOW),
        )
    return update(_table).where(_OWNED_TASK).values(**values, updated_at=_NOW).returning(*_COLUMNS)


def _listing(
    status: str,
    params: dict[str, Any],
    sort: str,
    cursor: str | None,
    counted: bool,
    postgres: bool,
) -> Any:
    filters: list[ColumnElement[bool]] = [_table.c.owner_id == _OWNER]
    if status != "all":
        filters.append(_table.c.completed == bindparam("completed", type_=Boolean()))
    if "pattern" in params:
        pattern = bindparam("pattern", type_=String())
        filters.append(
            or_(
                _table.c.title.ilike(pattern, escape="\\"),
                _table.c.description.ilike(pattern, escape="\\"),
            )
        )
    if "priority" in params:
        filters.append(_table.c.priority == bindparam("priority", type_=SmallInteger()))
    if "tag" in params:
        if postgres:
            tag_list = bindparam("tag", type_=JSONB())
            filters.append(type_coerce(_table.c.tags, JSONB).contains(tag_list))
        else:
            elements = func.json_each(_table.c.tags).table_valued("value")
            tag = bindparam("tag", type_=String())
            filters.append(exists(select(1).select_from(elements).where(elements.c.value == tag)))
    if "due_before" in params:
        filters.append(_table.c.due < bindparam("due_before", type_=UTCDateTime()))
    if "due_after" in params:
        filters.append(_table.c.due > bindparam("due_after", type_=UTCDateTime()))

    descending = sort.startswith("-")
    name = sort.lstrip("-")
    column = _SORT_COLUMNS[name]
    nullable = name == "due"
    columns: list[Any] = list(_COLUMNS)
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
    id_order = _table.c.id.desc() if descending else _table.c.id.asc()
    return statement.order_by(order, id_order).limit(bindparam("limit", type_=Integer()))


def _not_found(task_id: int) -> NotFound:
    return NotFound(f"Task {task_id} not found")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _after(column: Any, descending: bool, nullable: bool, after_null: bool) -> ColumnElement[bool]:
    """Rows strictly after the cursor's (value, id) in the listing's order; NULLs sort last.

    Non-null values compare as a row, `(column, id) < (value, last_id)`, which PostgreSQL
    answers from the (owner, column, id) index without scanning the rows before the cursor.
    """
    last_id = bindparam("last_id", type_=Integer())
    id_after = _table.c.id < last_id if descending else _table.c.id > last_id
    if after_null:
        return and_(column.is_(None), id_after)
    value = bindparam("last_value", type_=column.type)
    pair, cursor = tuple_(column, _table.c.id), tuple_(value, last_id)
    beyond = pair < cursor if descending else pair > cursor
    return or_(beyond, column.is_(None)) if nullable else beyond
