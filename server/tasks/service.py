"""The task service: the one way REST, MCP, chat and ChatKit read and change tasks.

Every statement filters by owner, so another user's task is simply not found. A read is one
statement. A change is planned by `rules` and written with its events in the outbox, both or
neither, by the writer for this database, chosen once here.
"""

from __future__ import annotations

from typing import Any

from server.database import Database
from server.errors import LimitReached
from server.models import (
    Occurrences,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TasksPublic,
    TaskUpdate,
    id_in_range,
    utcnow,
)
from server.tasks import listing, rules, statements
from server.tasks.listing import TaskQuery
from server.tasks.locking import Effect, LockingWriter, not_found
from server.tasks.postgres import PostgresWriter
from server.tasks.rules import Completion


class TaskService:
    def __init__(
        self,
        db: Database,
        owner_id: str,
        timezone: str = "UTC",
        *,
        effect: Effect | None = None,
        max_tasks: int = 0,
    ) -> None:
        """`timezone`: for repeating tasks that name no zone of their own. `effect`: record
        each change in its own transaction (then every write takes a transaction).
        `max_tasks`: how many tasks the user may have (0: no cap)."""
        self.db = db
        self.owner_id = owner_id
        self.timezone = timezone
        self.max_tasks = max_tasks
        fast = db.is_postgres and effect is None
        self._writer = (PostgresWriter if fast else LockingWriter)(db, owner_id, timezone, effect)

    async def create(self, data: TaskCreate) -> TaskPublic:
        if self.max_tasks:
            # Two creates at the same moment may both pass: a cap, not an exact quota.
            rows = await self.db.rows(statements.COUNT, {"owner": self.owner_id})
            if rows[0]["count"] >= self.max_tasks:
                raise LimitReached("tasks", self.max_tasks)
        # Left out and null are the same for a new task.
        changes = data.model_dump(exclude_none=True, exclude={"priority"})
        now = utcnow()
        values = rules.plan(
            rules.NEW, changes | {"priority": data.priority}, None, now, self.timezone
        )
        return await self._writer.create(values, now)

    async def get(self, task_id: int) -> TaskPublic:
        rows = await self.db.rows(statements.GET, self._ids(task_id))
        if not rows:
            raise not_found(task_id)
        return TaskPublic.model_validate(rows[0])

    async def many(self, task_ids: list[int]) -> list[TaskPublic]:
        """The user's tasks among these ids, in the order given (others' and gone ones left
        out)."""
        wanted = [task_id for task_id in task_ids if id_in_range(task_id)]
        if not wanted:
            return []
        statement = statements.MANY_POSTGRES if self.db.is_postgres else statements.MANY
        rows = await self.db.rows(statement, {"owner": self.owner_id, "task_ids": wanted})
        found = {row["id"]: TaskPublic.model_validate(row) for row in rows}
        return [found[task_id] for task_id in dict.fromkeys(wanted) if task_id in found]

    async def find(self, query: TaskQuery) -> TasksPublic:
        return await listing.find(self.db, self.owner_id, query)

    async def upcoming(self, task_id: int, limit: int) -> Occurrences:
        """The due times after this occurrence of a repeating task."""
        rows = await self.db.rows(statements.ROW, self._ids(task_id))
        if not rows:
            raise not_found(task_id)
        return rules.occurrences(rows[0], self.timezone, limit)

    async def update(self, task_id: int, data: TaskUpdate) -> TaskPublic:
        changes = data.model_dump(exclude_unset=True)
        completed = changes.pop("completed", None)
        completion: Completion | None = None
        if completed is not None:
            completion = "done" if completed else "open"
        return await self._writer.change(self._checked(task_id), changes, completion)

    async def replace(self, task_id: int, data: TaskReplace) -> TaskPublic:
        changes = data.model_dump(exclude={"completed", "priority"}) | {"priority": data.priority}
        completion: Completion = "done" if data.completed else "open"
        return await self._writer.change(self._checked(task_id), changes, completion)

    async def set_completed(self, task_id: int, completed: bool | None) -> TaskPublic:
        """Mark done (True), reopen (False) or toggle (None)."""
        completion: Completion = "toggle"
        if completed is not None:
            completion = "done" if completed else "open"
        return await self._writer.change(self._checked(task_id), {}, completion)

    async def delete(self, task_id: int, whole_series: bool = False) -> TaskPublic:
        """Delete and return what was deleted; a second delete of the same task is not found.

        Deleting the open occurrence of a repeating task skips it: the next one is made. With
        `whole_series`, every occurrence of its series goes, done or not.
        """
        return await self._writer.delete(self._checked(task_id), whole_series)

    @staticmethod
    def _checked(task_id: int) -> int:
        # The adapters refuse ids out of range (422); one that gets here names no task.
        if not id_in_range(task_id):
            raise not_found(task_id)
        return task_id

    def _ids(self, task_id: int) -> dict[str, Any]:
        return {"task_id": self._checked(task_id), "owner": self.owner_id}
