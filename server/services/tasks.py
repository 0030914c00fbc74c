"""The task service: every rule about tasks, shared by REST, MCP and chat.

Every statement filters by owner, so another user's task is simply not found. Each operation
is one statement (INSERT/UPDATE/DELETE ... RETURNING, or one SELECT), atomic on its own: a
task that vanishes between two requests is "not found", never half-updated, and a concurrent
complete and delete cannot trip over each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.dml import ReturningDelete, ReturningUpdate

from server.database import Database
from server.errors import InvalidInput, NotFound
from server.models import (
    Priority,
    Task,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TasksPublic,
    TaskUpdate,
    id_in_range,
    utcnow,
)
from server.services import cursors

Status = Literal["all", "pending", "completed"]
MAX_PAGE = 100
# The first page says how many tasks match, counted up to this many: an exact count of a
# very large set costs a scan on every first page, and no one pages through 10,000 tasks.
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


@dataclass(frozen=True)
class TaskQuery:
    status: Status = "all"
    q: str | None = None
    priority: Priority | None = None
    tag: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    sort: str = "-created"
    limit: int = 20
    cursor: str | None = None


class TaskService:
    def __init__(self, db: Database, owner_id: str) -> None:
        self.db = db
        self.owner_id = owner_id

    async def create(self, data: TaskCreate) -> TaskPublic:
        now = utcnow()
        statement = (
            insert(_table)
            .values(
                owner_id=self.owner_id,
                title=data.title,
                description=data.description,
                completed=False,
                completed_at=None,
                priority=data.priority.rank,
                due=data.due,
                tags=data.tags,
                created_at=now,
                updated_at=now,
            )
            .returning(*_COLUMNS)
        )
        async with self.db.connect() as connection:
            row = (await connection.execute(statement)).mappings().one()
        return TaskPublic.model_validate(row)

    async def get(self, task_id: int) -> TaskPublic:
        if not id_in_range(task_id):
            raise _not_found(task_id)
        statement = select(*_COLUMNS).where(_table.c.id == task_id, self._owned())
        async with self.db.connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        if row is None:
            raise _not_found(task_id)
        return TaskPublic.model_validate(row)

    async def update(self, task_id: int, data: TaskUpdate) -> TaskPublic:
        changes = data.model_dump(exclude_unset=True)
        if "priority" in changes:
            changes["priority"] = Priority(changes["priority"]).rank
        completed = changes.pop("completed", None)
        if completed is not None:
            changes.update(_completion(completed))
        return await self._change(task_id, changes)

    async def replace(self, task_id: int, data: TaskReplace) -> TaskPublic:
        return await self._change(
            task_id,
            {
                "title": data.title,
                "description": data.description,
                "priority": data.priority.rank,
                "due": data.due,
                "tags": data.tags,
                **_completion(data.completed),
            },
        )

    async def set_completed(self, task_id: int, completed: bool | None) -> TaskPublic:
        """Mark done (True), reopen (False) or toggle (None)."""
        if completed is None:
            now = utcnow()
            # In an UPDATE every SET reads the row as it was: the toggle of the old value.
            changes: dict[str, Any] = {
                "completed": not_(_table.c.completed),
                "completed_at": case((_table.c.completed, None), else_=literal(now, _stamp())),
            }
        else:
            changes = _completion(completed)
        return await self._change(task_id, changes)

    async def delete(self, task_id: int) -> TaskPublic:
        """Delete and return what was deleted; a second delete of the same task is not found."""
        if not id_in_range(task_id):
            raise _not_found(task_id)
        statement: ReturningDelete[Any] = (
            delete(_table).where(_table.c.id == task_id, self._owned()).returning(*_COLUMNS)
        )
        return await self._returning(task_id, statement)

    async def find(self, query: TaskQuery) -> TasksPublic:
        """A page of tasks. `count` is given on the first page only (see COUNT_CAP)."""
        if query.sort not in SORTS:
            raise InvalidInput(f"sort must be one of {', '.join(SORTS)}")
        if not 1 <= query.limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        filters = self._filters(query)
        descending = query.sort.startswith("-")
        name = query.sort.lstrip("-")
        column = _SORT_COLUMNS[name]
        nullable = name == "due"

        columns: list[Any] = list(_COLUMNS)
        if not query.cursor:
            # Counted in the same statement as the page: one round trip for the first page.
            capped = select(literal(1)).where(*filters).correlate(None).limit(COUNT_CAP)
            total = select(func.count()).select_from(capped.subquery()).scalar_subquery()
            columns.append(total.label("total"))
        statement: Select[Any] = select(*columns).where(*filters)
        if query.cursor:
            value, last_id = cursors.decode(query.cursor, query.sort)
            statement = statement.where(_after(column, descending, nullable, value, last_id))
        order = column.desc() if descending else column.asc()
        if nullable:
            order = order.nulls_last()
        id_order = _table.c.id.desc() if descending else _table.c.id.asc()
        statement = statement.order_by(order, id_order).limit(query.limit + 1)

        async with self.db.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        page = [TaskPublic.model_validate(row) for row in rows[: query.limit]]
        count: int | None = None
        if not query.cursor:
            count = rows[0]["total"] if rows else 0
        next_cursor = None
        if len(rows) > query.limit:
            last = page[-1]
            next_cursor = cursors.encode(query.sort, getattr(last, _ATTR[name]), last.id)
        return TasksPublic(data=page, count=count, next_cursor=next_cursor)

    async def _change(self, task_id: int, changes: dict[str, Any]) -> TaskPublic:
        if not id_in_range(task_id):
            raise _not_found(task_id)
        statement: ReturningUpdate[Any] = (
            update(_table)
            .where(_table.c.id == task_id, self._owned())
            .values(**changes, updated_at=utcnow())
            .returning(*_COLUMNS)
        )
        return await self._returning(task_id, statement)

    async def _returning(
        self, task_id: int, statement: ReturningUpdate[Any] | ReturningDelete[Any]
    ) -> TaskPublic:
        async with self.db.connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        if row is None:
            raise _not_found(task_id)
        return TaskPublic.model_validate(row)

    def _owned(self) -> ColumnElement[bool]:
        return _table.c.owner_id == self.owner_id  # type: ignore[no-any-return]

    def _filters(self, query: TaskQuery) -> list[ColumnElement[bool]]:
        filters: list[ColumnElement[bool]] = [self._owned()]
        if query.status != "all":
            filters.append(_table.c.completed == (query.status == "completed"))
        if query.q and query.q.strip():
            pattern = "%" + _escape_like(query.q.strip()) + "%"
            filters.append(
                or_(
                    _table.c.title.ilike(pattern, escape="\\"),
                    _table.c.description.ilike(pattern, escape="\\"),
                )
            )
        if query.priority is not None:
            filters.append(_table.c.priority == query.priority.rank)
        if query.tag and query.tag.strip():
            filters.append(self._has_tag(query.tag.strip().lower()))
        if query.due_before is not None:
            filters.append(_table.c.due < query.due_before)
        if query.due_after is not None:
            filters.append(_table.c.due > query.due_after)
        return filters

    def _has_tag(self, tag: str) -> ColumnElement[bool]:
        if self.db.engine.dialect.name == "postgresql":
            return type_coerce(_table.c.tags, JSONB).contains([tag])
        elements = func.json_each(_table.c.tags).table_valued("value")
        return exists(select(1).select_from(elements).where(elements.c.value == tag))


def _not_found(task_id: int) -> NotFound:
    return NotFound(f"Task {task_id} not found")


def _stamp() -> Any:
    return _table.c.completed_at.type


def _completion(completed: bool) -> dict[str, Any]:
    """SET values that mark a task done or not done; a done task keeps its first completion time."""
    if not completed:
        return {"completed": False, "completed_at": None}
    now = literal(utcnow(), _stamp())
    return {
        "completed": True,
        "completed_at": case((_table.c.completed, _table.c.completed_at), else_=now),
    }


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _after(
    column: Any, descending: bool, nullable: bool, value: Any, last_id: int
) -> ColumnElement[bool]:
    """Rows strictly after (value, id) in the listing's order; NULLs sort last.

    Non-null values compare as a row, `(column, id) < (value, last_id)`, which PostgreSQL
    answers from the (owner, column, id) index without scanning the rows before the cursor.
    """
    id_after = _table.c.id < last_id if descending else _table.c.id > last_id
    if value is None:
        return and_(column.is_(None), id_after)
    pair, cursor = tuple_(column, _table.c.id), tuple_(literal(value, column.type), last_id)
    beyond = pair < cursor if descending else pair > cursor
    return or_(beyond, column.is_(None)) if nullable else beyond
