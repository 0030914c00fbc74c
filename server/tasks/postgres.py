"""The PostgreSQL writer: most changes in one or two round trips instead of a transaction.

- A one-off task and its event: one statement (a data-modifying CTE, `events.with_events`).
- A change of plain fields (title, description, priority, tags): one UPDATE, written only if
  a field differs, with its event in the same statement.
- Any other change: the row read with its version (`xmin`), the plan decided in Python, and
  the change and its events written by one statement that applies only to the version read;
  if another change came in between, it is read and decided again (a few times, then the
  locking transaction takes over).
- Completing a repeating task, which also makes the next occurrence, and every delete, take
  the locking transaction (`locking`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Text, bindparam, cast, literal_column, or_, select

from server.models import Priority, TaskPublic, utcnow
from server.services.events import with_events
from server.tasks import rules, statements
from server.tasks.locking import LockingWriter, not_found
from server.tasks.rules import PLAIN, Completion

# Changes that keep meeting another change in between end up on the locking path.
TRIES = 3
_CREATE_WITH_EVENT = with_events(statements.CREATE)
# A row's version: PostgreSQL gives each new version of a row a new `xmin`.
_VERSION = cast(literal_column("tasks.xmin"), Text())
_SEEN_VERSION = bindparam("version", type_=Text())
_VERSIONED = select(*statements.ALL, _VERSION.label("version")).where(statements.OWNED_TASK)
_VERSIONED_UPDATES: dict[tuple[str, ...], Any] = {}
_PLAIN_UPDATES: dict[tuple[str, ...], Any] = {}


class PostgresWriter(LockingWriter):
    async def create(self, values: dict[str, Any], now: datetime) -> TaskPublic:
        if values.get("recurrence"):
            return await super().create(values, now)  # a series is named after its first task
        params = {**self.new_row(values, now), "events": [{"type": "task.created"}]}
        rows = await self.db.rows(_CREATE_WITH_EVENT, params)
        return TaskPublic.model_validate(rows[0])

    async def change(
        self, task_id: int, changes: dict[str, Any], completion: Completion | None
    ) -> TaskPublic:
        if completion is None and changes and changes.keys() <= PLAIN:
            return await self._change_plain(task_id, changes)
        for _ in range(TRIES):
            now = utcnow()
            old = await self._versioned(task_id)
            values = rules.plan(old, changes, completion, now, self.default_zone)
            if not values:
                return TaskPublic.model_validate(old)
            if rules.continues_series(old, values):
                break
            task = await self._write_if_unchanged(old, values, now)
            if task is not None:
                return task
        return await super().change(task_id, changes, completion)

    async def _change_plain(self, task_id: int, changes: dict[str, Any]) -> TaskPublic:
        """Fields that nothing else depends on, in one statement with their event: the row is
        written only if one of them differs, and the event is made from the row as written."""
        values = {
            name: Priority(value).rank if name == "priority" else value
            for name, value in changes.items()
        }
        shape = tuple(sorted(values))
        statement = _PLAIN_UPDATES.get(shape)
        if statement is None:
            table = statements.table
            differs = or_(
                *(table.c[name].is_distinct_from(statements.value(name)) for name in shape)
            )
            statement = _PLAIN_UPDATES[shape] = with_events(
                statements.update_of(shape).where(differs)
            )
        params = {**statements.values_of(values), **self.ids(task_id), "now": utcnow()}
        rows = await self.db.rows(statement, {**params, "events": [{"type": "task.updated"}]})
        if rows:
            return TaskPublic.model_validate(rows[0])
        # No row: nothing differed, or there is no such task of this user.
        found = await self.db.rows(statements.GET, self.ids(task_id))
        if not found:
            raise not_found(task_id)
        return TaskPublic.model_validate(found[0])

    async def _versioned(self, task_id: int) -> dict[str, Any]:
        rows = await self.db.rows(_VERSIONED, self.ids(task_id))
        if not rows:
            raise not_found(task_id)
        return rows[0]

    async def _write_if_unchanged(
        self, old: dict[str, Any], values: dict[str, Any], now: datetime
    ) -> TaskPublic | None:
        """Write `values` and their events if the task is still `old`; None if it is not."""
        shape = tuple(sorted(values))
        statement = _VERSIONED_UPDATES.get(shape)
        if statement is None:
            statement = _VERSIONED_UPDATES[shape] = with_events(
                statements.update_of(shape).where(_VERSION == _SEEN_VERSION)
            )
        params = {**statements.values_of(values), **self.ids(old["id"]), "now": now}
        params |= {
            "version": old["version"],
            "events": [{"type": k} for k in rules.events_of(values)],
        }
        rows = await self.db.rows(statement, params)
        return TaskPublic.model_validate(rows[0]) if rows else None
