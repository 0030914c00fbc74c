"""The portable writer: each change in one transaction that locks the task first.

The task is read and locked, the plan decided (`rules`), the row written, and each kind of
change recorded in the outbox, all or nothing. Concurrent changes of one task queue on the
lock (SQLite: on its write lock, taken when the transaction begins), so a complete and a
delete cannot trip over each other. This is every write on SQLite, and on PostgreSQL the
ones that need more than one statement (see `postgres`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from server.database import Database, Transaction
from server.errors import NotFound
from server.models import TaskPublic, utcnow
from server.services.events import emit
from server.tasks import rules, statements
from server.tasks.rules import NEW, WRITTEN, Completion


class Effect(Protocol):
    """Who asked for a change, recorded in the change's own transaction (a chat turn's tool
    call: a retry of the turn finds it there instead of making the change again)."""

    async def record(self, tx: Transaction, task: TaskPublic) -> None: ...


class LockingWriter:
    def __init__(
        self, db: Database, owner_id: str, default_zone: str, effect: Effect | None = None
    ) -> None:
        self.db = db
        self.owner_id = owner_id
        self.default_zone = default_zone
        self.effect = effect

    def ids(self, task_id: int) -> dict[str, Any]:
        return {"task_id": task_id, "owner": self.owner_id}

    def new_row(self, values: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The bindparams of a new task: every written column, its default where not planned."""
        written = {name: values.get(name, NEW[name]) for name in WRITTEN}
        return {**statements.values_of(written), "owner": self.owner_id, "now": now}

    async def create(self, values: dict[str, Any], now: datetime) -> TaskPublic:
        async with self.db.transaction() as tx:
            row = await tx.one(statements.CREATE, self.new_row(values, now))
            assert row is not None
            if values.get("recurrence"):
                row = await tx.one(statements.START_SERIES, self.ids(row["id"]))
                assert row is not None
            await emit(tx, "task.created", row)
            return await self._done(tx, row)

    async def change(
        self, task_id: int, changes: dict[str, Any], completion: Completion | None
    ) -> TaskPublic:
        now = utcnow()
        async with self.db.transaction() as tx:
            old = await tx.one(statements.LOCK, self.ids(task_id))
            if old is None:
                raise not_found(task_id)
            values = rules.plan(old, changes, completion, now, self.default_zone)
            if not values:
                return TaskPublic.model_validate(old)
            params = {**statements.values_of(values), **self.ids(task_id), "now": now}
            row = await tx.one(statements.update_of(tuple(sorted(values))), params)
            assert row is not None
            for kind in rules.events_of(values):
                await emit(tx, kind, row)
            if rules.continues_series(row, values):
                await self.continue_series(tx, row, now)
            return await self._done(tx, row)

    async def delete(self, task_id: int, whole_series: bool) -> TaskPublic:
        async with self.db.transaction() as tx:
            statement = statements.DELETE_SERIES if whole_series else statements.DELETE
            rows = await tx.rows(statement, self.ids(task_id))
            if not rows:
                raise not_found(task_id)
            for row in rows:
                await emit(tx, "task.deleted", row)
            [asked] = [row for row in rows if row["id"] == task_id]
            if not whole_series and asked["recurrence"] and not asked["completed"]:
                # Deleting the open occurrence of a repeating task skips it.
                await self.continue_series(tx, asked, utcnow())
            return await self._done(tx, asked)

    async def continue_series(self, tx: Transaction, row: dict[str, Any], now: datetime) -> None:
        """The occurrence after this one, once (see `statements.OCCURRENCE`)."""
        following = rules.next_occurrence(row, now, self.default_zone)
        if following is None:
            return
        params = {**statements.values_of(following), "owner": self.owner_id, "now": now}
        created = await tx.one(statements.OCCURRENCE[self.db.is_postgres], params)
        if created is not None:
            await emit(tx, "task.occurrence_created", created)

    async def _done(self, tx: Transaction, row: dict[str, Any]) -> TaskPublic:
        task = TaskPublic.model_validate(row)
        if self.effect is not None:
            await self.effect.record(tx, task)
        return task


def not_found(task_id: int) -> NotFound:
    return NotFound(f"Task {task_id} not found")
