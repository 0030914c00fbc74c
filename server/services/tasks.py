"""The task service: every rule about tasks, shared by REST, MCP and chat.

Every statement filters by owner, so another user's task is simply not found. A read is one
statement. A change is written together with its events in the outbox (`events.py`), so both
commit or neither: on PostgreSQL in one statement (see `_change`), otherwise in a transaction
that locks the task first. A task that vanishes between two requests is "not found", never
half-updated, and a concurrent complete and delete cannot trip over each other.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
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
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB

from server.database import Database, Transaction
from server.errors import InvalidInput, NotFound
from server.models import (
    Due,
    Occurrences,
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
from server.recurrence import describe, from_phrase, next_after, upcoming
from server.services import cursors
from server.services.events import emit, event_data, with_events

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
# A page of rows is validated in one call, not one call per row.
_PAGE = TypeAdapter(list[TaskPublic])
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
    repeating: bool | None = Field(
        default=None, description="true: only repeating tasks; false: only one-off tasks"
    )


class TaskService:
    def __init__(self, db: Database, owner_id: str, timezone: str = "UTC") -> None:
        self.db = db
        self.owner_id = owner_id
        self.timezone = timezone  # for repeating tasks that name no zone of their own

    async def create(self, data: TaskCreate) -> TaskPublic:
        # Left out and null are the same for a new task.
        changes = data.model_dump(exclude_none=True, exclude={"priority"})
        values = self._plan(_NEW, changes | {"priority": data.priority}, None, utcnow())
        params = {**_blank(values), "owner": self.owner_id}
        if self.db.is_postgres and not values.get("recurrence"):
            # The task and its event in one statement; the event is the task as it is written.
            written = {name: params[f"v_{name}"] for name in _WRITTEN}
            expected = _as_stored(
                _NEW | written | {"id": 0, "created_at": params["now"], "updated_at": params["now"]}
            )
            event = {
                "type": "task.created",
                "data": event_data(TaskPublic.model_validate(expected)),
            }
            rows = await self.db.rows(_CREATE_WITH_EVENT, {**params, "events": [event]})
            return TaskPublic.model_validate(rows[0])
        async with self.db.transaction() as tx:
            row = await tx.one(_CREATE, params)
            assert row is not None
            if values.get("recurrence"):
                # A series is named after its first task.
                row = await tx.one(_START_SERIES, self._ids(row["id"]))
                assert row is not None
            task = TaskPublic.model_validate(row)
            await emit(tx, "task.created", self.owner_id, task)
        return task

    async def get(self, task_id: int) -> TaskPublic:
        if not id_in_range(task_id):
            raise _not_found(task_id)
        rows = await self.db.rows(_GET, self._ids(task_id))
        if not rows:
            raise _not_found(task_id)
        return TaskPublic.model_validate(rows[0])

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

    async def upcoming(self, task_id: int, limit: int) -> Occurrences:
        """The due times after this occurrence of a repeating task: as many as asked, never
        the whole series."""
        if not id_in_range(task_id):
            raise _not_found(task_id)
        rows = await self.db.rows(_ROW, self._ids(task_id))
        if not rows:
            raise _not_found(task_id)
        row = rows[0]
        if not row["recurrence"] or row["due"] is None:
            return Occurrences(repeats=None, due=[])
        zone = row["timezone"] or self.timezone
        start = row["series_start"] or row["due"]
        due = upcoming(row["recurrence"], zone, start, row["due"], limit)
        return Occurrences(repeats=describe(row["recurrence"]), due=due)

    async def update(self, task_id: int, data: TaskUpdate) -> TaskPublic:
        changes = data.model_dump(exclude_unset=True)
        completed = changes.pop("completed", None)
        completion = None if completed is None else ("done" if completed else "open")
        return await self._change(task_id, changes, completion)

    async def replace(self, task_id: int, data: TaskReplace) -> TaskPublic:
        changes = data.model_dump(exclude={"completed", "priority"}) | {"priority": data.priority}
        return await self._change(task_id, changes, "done" if data.completed else "open")

    async def set_completed(self, task_id: int, completed: bool | None) -> TaskPublic:
        """Mark done (True), reopen (False) or toggle (None)."""
        completion = "toggle" if completed is None else ("done" if completed else "open")
        return await self._change(task_id, {}, completion)

    async def delete(self, task_id: int, whole_series: bool = False) -> TaskPublic:
        """Delete and return what was deleted; a second delete of the same task is not found.

        Deleting the open occurrence of a repeating task skips it: the next one is made. With
        `whole_series`, every occurrence of its series goes, done or not.
        """
        if not id_in_range(task_id):
            raise _not_found(task_id)
        async with self.db.transaction() as tx:
            statement = _DELETE_SERIES if whole_series else _DELETE
            rows = await tx.rows(statement, self._ids(task_id))
            if not rows:
                raise _not_found(task_id)
            for row in rows:
                await emit(tx, "task.deleted", self.owner_id, TaskPublic.model_validate(row))
            [asked] = [row for row in rows if row["id"] == task_id]
            if not whole_series and asked["recurrence"] and not asked["completed"]:
                await self._continue_series(tx, asked, utcnow())
        return TaskPublic.model_validate(asked)

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
            query.repeating,
            self.db.is_postgres,
        )
        statement = _LISTINGS.get(shape)
        if statement is None:
            statement = _LISTINGS[shape] = _listing(
                query.status,
                params,
                query.sort,
                cursor_kind,
                counted,
                query.repeating,
                self.db.is_postgres,
            )

        rows = await self.db.rows(
            statement, params, plan_per_call="pattern" in params or "tag" in params
        )
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

    async def _change(
        self, task_id: int, changes: dict[str, Any], completion: str | None
    ) -> TaskPublic:
        """One change, written together with its events, decided from the task as it was.

        On PostgreSQL the task is read, the new values decided, and the change and its events
        written in one statement that applies only if the row is still the version that was
        read (its `xmin`); if another change came in between, it is read and decided again.
        That is two round trips instead of a five-round-trip locking transaction. A change of
        plain fields needs no read at all (`_change_plain`). Completing a repeating task, which
        also makes the next occurrence, takes the locking path.
        """
        if not id_in_range(task_id):
            raise _not_found(task_id)
        if self.db.is_postgres and completion is None and changes and changes.keys() <= _PLAIN:
            return await self._change_plain(task_id, changes)
        if self.db.is_postgres:
            for _ in range(_TRIES):
                now = utcnow()
                old = await self._versioned(task_id)
                values = self._plan(old, changes, completion, now)
                if not values:
                    return TaskPublic.model_validate(old)
                if values.get("completed") and old["recurrence"]:
                    break
                task = await self._write_if_unchanged(old, values, now)
                if task is not None:
                    return task
        return await self._change_locked(task_id, changes, completion)

    async def _change_plain(self, task_id: int, changes: dict[str, Any]) -> TaskPublic:
        """PostgreSQL: a change of fields that nothing else depends on (title, description,
        priority, tags), in one statement with its event: the row is written only if one of
        them differs, and the event is made from the row as written."""
        values = {
            name: Priority(value).rank if name == "priority" else value
            for name, value in changes.items()
        }
        shape = tuple(sorted(values))
        statement = _PLAIN_UPDATES.get(shape)
        if statement is None:
            differs = or_(*(_table.c[name].is_distinct_from(_value(name)) for name in shape))
            statement = _PLAIN_UPDATES[shape] = with_events(
                _update(shape).where(differs), from_row=True
            )
        params = {f"v_{name}": value for name, value in values.items()}
        params |= {"now": utcnow(), "events": [{"type": "task.updated"}], **self._ids(task_id)}
        rows = await self.db.rows(statement, params)
        # No row: nothing differed, or there is no such task of this user.
        return TaskPublic.model_validate(rows[0]) if rows else await self.get(task_id)

    async def _versioned(self, task_id: int) -> dict[str, Any]:
        rows = await self.db.rows(_VERSIONED, self._ids(task_id))
        if not rows:
            raise _not_found(task_id)
        return rows[0]

    async def _write_if_unchanged(
        self, old: dict[str, Any], values: dict[str, Any], now: datetime
    ) -> TaskPublic | None:
        """Write `values` and their events if the task is still `old`; None if it is not."""
        shape = tuple(sorted(values))
        statement = _VERSIONED_UPDATES.get(shape)
        if statement is None:
            statement = _VERSIONED_UPDATES[shape] = with_events(
                _update(shape).where(_VERSION == _SEEN_VERSION)
            )
        # The events are made from the task as the statement will leave it.
        expected = TaskPublic.model_validate(_as_stored(old | values | {"updated_at": now}))
        events = [{"type": kind, "data": event_data(expected)} for kind in _kinds(values)]
        params = {f"v_{name}": value for name, value in values.items()}
        params |= {"now": now, "version": old["version"], "events": events}
        rows = await self.db.rows(statement, {**params, **self._ids(old["id"])})
        return TaskPublic.model_validate(rows[0]) if rows else None

    async def _change_locked(
        self, task_id: int, changes: dict[str, Any], completion: str | None
    ) -> TaskPublic:
        """The change in one transaction: the task read and locked, the new values decided,
        written, and each kind of change recorded."""
        now = utcnow()
        async with self.db.transaction() as tx:
            old = await tx.one(_LOCK, self._ids(task_id))
            if old is None:
                raise _not_found(task_id)
            values = self._plan(old, changes, completion, now)
            if not values:
                return TaskPublic.model_validate(old)
            shape = tuple(sorted(values))
            statement = _UPDATES.get(shape)
            if statement is None:
                statement = _UPDATES[shape] = _update(shape)
            params = {f"v_{name}": value for name, value in values.items()}
            row = await tx.one(statement, {**params, **self._ids(task_id), "now": now})
            assert row is not None
            task = TaskPublic.model_validate(row)
            for kind in _kinds(values):
                await emit(tx, kind, self.owner_id, task)
            if values.get("completed") and row["recurrence"]:
                await self._continue_series(tx, row, now)
        return task

    def _plan(
        self,
        old: dict[str, Any],
        changes: dict[str, Any],
        completion: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        """The columns to write (only those that change), or a clear error."""
        values: dict[str, Any] = {}
        for name in ("title", "description", "due", "tags"):
            if name in changes and changes[name] != old[name]:
                values[name] = changes[name]
        if "priority" in changes and Priority(changes["priority"]).rank != old["priority"]:
            values["priority"] = Priority(changes["priority"]).rank
        done = {"toggle": not old["completed"], "done": True, "open": False}.get(completion or "")
        if done is not None and done != old["completed"]:
            values.update(completed=done, completed_at=now if done else None)
        due = values.get("due", old["due"])
        self._plan_repetition(old, changes, due, values)
        self._plan_reminder(old, changes, due, now, values)
        return values

    def _plan_repetition(
        self, old: dict[str, Any], changes: dict[str, Any], due: Any, values: dict[str, Any]
    ) -> None:
        rule = old["recurrence"]
        if "recurrence" in changes:
            rule = from_phrase(changes["recurrence"]) if changes["recurrence"] else None
        zone = changes.get("timezone") or old["timezone"] or self.timezone
        try:
            ZoneInfo(zone)
        except (ValueError, KeyError):
            raise InvalidInput(f"unknown timezone {zone!r}: use an IANA name") from None
        if rule is None:
            if old["recurrence"] is not None:
                values["recurrence"] = None  # stop repeating; its history keeps its series
            return
        if due is None:
            raise InvalidInput("a repeating task needs a due date: its first occurrence")
        if rule != old["recurrence"]:
            values["recurrence"] = rule
        if zone != old["timezone"]:
            values["timezone"] = zone
        if old["series_id"] is None and old["id"] is not None:
            values["series_id"] = old["id"]
        # The series runs from this occurrence on when its rule or its date is changed.
        if "recurrence" in values or "due" in values or old["series_start"] is None:
            values["series_start"] = due

    @staticmethod
    def _plan_reminder(
        old: dict[str, Any],
        changes: dict[str, Any],
        due: Any,
        now: datetime,
        values: dict[str, Any],
    ) -> None:
        explicit = changes.get("remind_at")
        if explicit is not None and changes.get("remind_before") is not None:
            raise InvalidInput("give remind_at or remind_before, not both")
        before = changes["remind_before"] if "remind_before" in changes else old["remind_before"]
        if "remind_at" in changes and explicit is None and "remind_before" not in changes:
            before = None  # remind_at: null clears the reminder, whichever kind it was
        if explicit is not None:
            if explicit <= now:
                raise InvalidInput("remind_at is in the past: a reminder needs a future time")
            remind_at, before = explicit, None  # an absolute time replaces an offset
        elif before is not None:
            if due is None:
                raise InvalidInput("remind_before needs a due date to count back from")
            remind_at = due - timedelta(minutes=before)
        elif "remind_at" in changes or "remind_before" in changes:
            remind_at = None
        else:
            remind_at = old["remind_at"]
        if before != old["remind_before"]:
            values["remind_before"] = before
        if remind_at != old["remind_at"]:
            # A new time is a new reminder: it has not been sent.
            values.update(remind_at=remind_at, reminded_at=None, reminder_lease=None)

    async def _continue_series(self, tx: Transaction, row: dict[str, Any], now: datetime) -> None:
        """The occurrence after this one, exactly once: two completes of one occurrence, even in
        two processes, meet the unique (series, due) index and make one."""
        following = next_after(
            row["recurrence"],
            row["timezone"] or self.timezone,
            row["series_start"] or row["due"],
            max(row["due"], now),
        )
        if following is None:
            return  # COUNT or UNTIL reached
        before = row["remind_before"]
        remind_at = following - timedelta(minutes=before) if before is not None else None
        params = {
            "owner": self.owner_id,
            "now": now,
            **{f"v_{name}": row[name] for name in _CARRIED},
            "v_due": following,
            "v_series_id": row["series_id"] or row["id"],
            "v_remind_at": remind_at,
        }
        statement = _OCCURRENCE_POSTGRES if self.db.is_postgres else _OCCURRENCE
        created = await tx.one(statement, params)
        if created is not None:
            task = TaskPublic.model_validate(created)
            await emit(tx, "task.occurrence_created", self.owner_id, task)

    def _ids(self, task_id: int) -> dict[str, Any]:
        return {"task_id": task_id, "owner": self.owner_id}


def _kinds(values: dict[str, Any]) -> list[str]:
    """The events a change of these columns makes, in order."""
    kinds = ["task.updated"] if set(values) - _COMPLETION else []
    if "completed" in values:
        kinds.append("task.completed" if values["completed"] else "task.reopened")
    return kinds


def _as_stored(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the database gives it back: timestamps in UTC."""
    return {k: v.astimezone(UTC) if isinstance(v, datetime) else v for k, v in row.items()}


def _blank(values: dict[str, Any]) -> dict[str, Any]:
    """Every column of a new task as a bindparam value."""
    return {f"v_{name}": values.get(name, _NEW[name]) for name in _WRITTEN} | {"now": utcnow()}


# ---------------------------------------------------------------- statements
# Built once each (per shape, for the listing and updates): SQLAlchemy then compiles each once,
# and a request only supplies the values of its bindparams. Every one filters by owner.

_OWNER = bindparam("owner", type_=String())
_TASK_ID = bindparam("task_id", type_=Integer())
_OWNED_TASK = and_(_table.c.id == _TASK_ID, _table.c.owner_id == _OWNER)
_NOW = bindparam("now", type_=UTCDateTime())

# The columns written when a task is made; and those an occurrence takes from the one before.
_WRITTEN = (
    "title",
    "description",
    "priority",
    "due",
    "tags",
    "recurrence",
    "timezone",
    "series_start",
    "remind_at",
    "remind_before",
)
_CARRIED = (
    "title",
    "description",
    "priority",
    "tags",
    "recurrence",
    "timezone",
    "series_start",
    "remind_before",
)
_COMPLETION = {"completed", "completed_at"}
# A task before it exists: what `_plan` compares a new task's fields with.
_NEW: dict[str, Any] = {column.name: None for column in _table.columns} | {
    "completed": False,
    "priority": 0,
    "tags": [],
}
_ALL = list(_table.columns)


def _value(name: str) -> Any:
    return bindparam(f"v_{name}", type_=_table.c[name].type)


_CREATE = (
    insert(_table)
    .values(
        owner_id=_OWNER,
        completed=False,
        completed_at=None,
        created_at=_NOW,
        updated_at=_NOW,
        **{name: _value(name) for name in _WRITTEN},
    )
    .returning(*_ALL)
)
_CREATE_WITH_EVENT = with_events(_CREATE)
_START_SERIES = (
    update(_table)
    .where(_OWNED_TASK)
    .values(series_id=_table.c.id, updated_at=_table.c.updated_at)
    .returning(*_ALL)
)
_GET = select(*_COLUMNS).where(_OWNED_TASK)
# Read and lock the row for a change: concurrent changes of one task queue here.
_LOCK = select(*_ALL).where(_OWNED_TASK).with_for_update()
_ROW = select(*_ALL).where(_OWNED_TASK)
# A row's version: PostgreSQL gives each new version of a row a new `xmin`.
_VERSION = cast(literal_column("tasks.xmin"), Text())
_SEEN_VERSION = bindparam("version", type_=Text())
_VERSIONED = select(*_ALL, _VERSION.label("version")).where(_OWNED_TASK)
_VERSIONED_UPDATES: dict[tuple[str, ...], Any] = {}
# Fields whose new values depend on nothing but themselves (unlike due, which moves reminders
# and the series of a repeating task).
_PLAIN = frozenset({"title", "description", "priority", "tags"})
_PLAIN_UPDATES: dict[tuple[str, ...], Any] = {}
# Changes that keep meeting another change in between end up on the locking path.
_TRIES = 3
# An expanding IN renders anew per call; on PostgreSQL the statement is compiled once for
# asyncpg, so there the ids travel as one array.
_MANY = select(*_COLUMNS).where(
    _table.c.owner_id == _OWNER, _table.c.id.in_(bindparam("task_ids", expanding=True))
)
_MANY_POSTGRES = select(*_COLUMNS).where(
    _table.c.owner_id == _OWNER,
    _table.c.id == any_(bindparam("task_ids", type_=postgresql.ARRAY(Integer()))),
)
_DELETE = delete(_table).where(_OWNED_TASK).returning(*_ALL)
_series_of = select(_table.c.series_id).where(_OWNED_TASK).scalar_subquery()
_DELETE_SERIES = (
    delete(_table)
    .where(
        _table.c.owner_id == _OWNER,
        or_(_table.c.id == _TASK_ID, _table.c.series_id == _series_of),
    )
    .returning(*_ALL)
)


def _occurrence(dialect_insert: Any) -> Any:
    columns = {name: _value(name) for name in (*_CARRIED, "due", "series_id", "remind_at")}
    return (
        dialect_insert(_table)
        .values(
            owner_id=_OWNER,
            completed=False,
            completed_at=None,
            created_at=_NOW,
            updated_at=_NOW,
            **columns,
        )
        .on_conflict_do_nothing(index_elements=["series_id", "due"])
        .returning(*_ALL)
    )


_OCCURRENCE = _occurrence(sqlite.insert)
_OCCURRENCE_POSTGRES = _occurrence(postgresql.insert)
_UPDATES: dict[tuple[Any, ...], Any] = {}
_LISTINGS: dict[tuple[Any, ...], Any] = {}


def _update(fields: tuple[str, ...]) -> Any:
    values = {name: _value(name) for name in fields}
    return update(_table).where(_OWNED_TASK).values(**values, updated_at=_NOW).returning(*_ALL)


def _listing(
    status: str,
    params: dict[str, Any],
    sort: str,
    cursor: str | None,
    counted: bool,
    repeating: bool | None,
    postgres: bool,
) -> Any:
    filters: list[ColumnElement[bool]] = [_table.c.owner_id == _OWNER]
    if repeating is not None:
        rule = _table.c.recurrence
        filters.append(rule.is_not(None) if repeating else rule.is_(None))
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
