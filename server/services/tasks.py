"""The task service: every rule about tasks, shared by REST, MCP and chat.

Every statement filters by owner, so another user's task is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, delete, exists, func, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import InvalidInput, NotFound
from server.models import (
    Priority,
    Task,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TasksPublic,
    TaskUpdate,
    utcnow,
)
from server.services import cursors

Status = Literal["all", "pending", "completed"]
MAX_PAGE = 100

_table = Task.__table__  # type: ignore[attr-defined]
_SORT_COLUMNS: dict[str, Any] = {
    "created": _table.c.created_at,
    "due": _table.c.due,
    "priority": _table.c.priority,
}
SORTS = tuple(f"{sign}{name}" for name in _SORT_COLUMNS for sign in ("", "-"))


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
    def __init__(self, session: AsyncSession, owner_id: str) -> None:
        self.session = session
        self.owner_id = owner_id

    async def create(self, data: TaskCreate) -> TaskPublic:
        task = Task(
            owner_id=self.owner_id,
            title=data.title,
            description=data.description,
            priority=data.priority.rank,
            due=data.due,
            tags=data.tags,
        )
        self.session.add(task)
        await self.session.commit()
        return TaskPublic.model_validate(task)

    async def get(self, task_id: int) -> TaskPublic:
        return TaskPublic.model_validate(await self._load(task_id))

    async def update(self, task_id: int, data: TaskUpdate) -> TaskPublic:
        task = await self._load(task_id)
        changes = data.model_dump(exclude_unset=True)
        if "priority" in changes:
            changes["priority"] = Priority(changes["priority"]).rank
        completed = changes.pop("completed", None)
        for field, value in changes.items():
            setattr(task, field, value)
        if completed is not None:
            _set_completed(task, completed)
        task.updated_at = utcnow()
        await self.session.commit()
        return TaskPublic.model_validate(task)

    async def replace(self, task_id: int, data: TaskReplace) -> TaskPublic:
        task = await self._load(task_id)
        task.title = data.title
        task.description = data.description
        task.priority = data.priority.rank
        task.due = data.due
        task.tags = data.tags
        _set_completed(task, data.completed)
        task.updated_at = utcnow()
        await self.session.commit()
        return TaskPublic.model_validate(task)

    async def set_completed(self, task_id: int, completed: bool | None) -> TaskPublic:
        """Mark done (True), reopen (False) or toggle (None)."""
        task = await self._load(task_id)
        _set_completed(task, (not task.completed) if completed is None else completed)
        task.updated_at = utcnow()
        await self.session.commit()
        return TaskPublic.model_validate(task)

    async def delete(self, task_id: int) -> TaskPublic:
        task = await self._load(task_id)
        deleted = TaskPublic.model_validate(task)
        await self.session.execute(
            delete(Task).where(_table.c.id == task_id, _table.c.owner_id == self.owner_id)
        )
        await self.session.commit()
        return deleted

    async def find(self, query: TaskQuery) -> TasksPublic:
        if query.sort not in SORTS:
            raise InvalidInput(f"sort must be one of {', '.join(SORTS)}")
        if not 1 <= query.limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        filters = self._filters(query)
        count = await self.session.scalar(select(func.count()).select_from(_table).where(*filters))

        descending = query.sort.startswith("-")
        name = query.sort.lstrip("-")
        column = _SORT_COLUMNS[name]
        nullable = name == "due"
        statement: Select[Any] = select(_table).where(*filters)
        if query.cursor:
            value, last_id = cursors.decode(query.cursor, query.sort)
            statement = statement.where(_after(column, descending, nullable, value, last_id))
        order = column.desc() if descending else column.asc()
        if nullable:
            order = order.nulls_last()
        id_order = _table.c.id.desc() if descending else _table.c.id.asc()
        statement = statement.order_by(order, id_order).limit(query.limit + 1)

        rows = (await self.session.execute(statement)).mappings().all()
        page = [TaskPublic.model_validate(row) for row in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last = page[-1]
            next_cursor = cursors.encode(query.sort, getattr(last, _ATTR[name]), last.id)
        return TasksPublic(data=page, count=count or 0, next_cursor=next_cursor)

    async def _load(self, task_id: int) -> Task:
        task = await self.session.scalar(
            select(Task).where(_table.c.id == task_id, _table.c.owner_id == self.owner_id)
        )
        if task is None:
            raise NotFound(f"Task {task_id} not found")
        return task

    def _filters(self, query: TaskQuery) -> list[ColumnElement[bool]]:
        filters: list[ColumnElement[bool]] = [_table.c.owner_id == self.owner_id]
        if query.status != "all":
            filters.append(_table.c.completed.is_(query.status == "completed"))
        if query.q:
            pattern = "%" + _escape_like(query.q.strip()) + "%"
            filters.append(
                or_(
                    _table.c.title.ilike(pattern, escape="\\"),
                    _table.c.description.ilike(pattern, escape="\\"),
                )
            )
        if query.priority is not None:
            filters.append(_table.c.priority == query.priority.rank)
        if query.tag:
            filters.append(self._has_tag(query.tag.strip().lower()))
        if query.due_before is not None:
            filters.append(_table.c.due < query.due_before)
        if query.due_after is not None:
            filters.append(_table.c.due > query.due_after)
        return filters

    def _has_tag(self, tag: str) -> ColumnElement[bool]:
        if self.session.get_bind().dialect.name == "postgresql":
            return type_coerce(_table.c.tags, JSONB).contains([tag])
        elements = func.json_each(_table.c.tags).table_valued("value")
        return exists(select(1).select_from(elements).where(elements.c.value == tag))


_ATTR = {"created": "created_at", "due": "due", "priority": "priority"}


def _set_completed(task: Task, completed: bool) -> None:
    if completed and not task.completed:
        task.completed_at = utcnow()
    elif not completed:
        task.completed_at = None
    task.completed = completed


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _after(
    column: Any, descending: bool, nullable: bool, value: Any, last_id: int
) -> ColumnElement[bool]:
    """Rows strictly after (value, id) in the listing's order; NULLs sort last."""
    id_after = _table.c.id < last_id if descending else _table.c.id > last_id
    if value is None:
        return and_(column.is_(None), id_after)
    beyond = column < value if descending else column > value
    condition = or_(beyond, and_(column == value, id_after))
    return or_(condition, column.is_(None)) if nullable else condition
