"""One reader of the outbox per process, fanning new events out to the process's open streams.

Nothing polls per stream. On PostgreSQL a listener connection (`LISTEN todo_chat_events`)
wakes the hub whenever a transaction that wrote events commits (the trigger of migration 0007
notifies at commit, never for a rollback); on SQLite the process that commits wakes its own
hub, and a poll every EVENTS_POLL_SECONDS finds what other processes wrote. Either way the hub
then reads the events after the last it read, once, and hands each to its user's streams.

A notification is only a wake-up call: its payload is not trusted (any database user may
NOTIFY), the events are read from the table by id. A listener connection that drops is
reconnected, and the table read then finds whatever was written meanwhile.

Ids are handed out when a transaction inserts, not when it commits: event 10 may commit after
event 11. The hub remembers the ids it has read above a horizon, and reads from the horizon,
so a late commit is found on the next read; an id still missing GAP_SECONDS after a later one
was read belonged to a transaction that rolled back, and the horizon moves past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import BigInteger, Integer, bindparam, func, select

from server.database import Database
from server.errors import database_unavailable
from server.models import Event

log = logging.getLogger("todo_chat.events")
CHANNEL = "todo_chat_events"
READ_BATCH = 500
GAP_SECONDS = 10.0
# With a live listener the table is read only when notified; this read catches anything a
# notification could not say (none is known), at a cost of one statement per process.
SAFETY_POLL_SECONDS = 30.0
# A stream that falls this far behind (its client reads slowly) reads from the table instead.
QUEUE_MAX = 1000

_events = Event.__table__  # type: ignore[attr-defined]
_COLUMNS = [_events.c[name] for name in ("id", "owner_id", "type", "data", "created_at")]
_AFTER = (
    select(*_COLUMNS)
    .where(_events.c.id > bindparam("after", type_=BigInteger()))
    .order_by(_events.c.id)
    .limit(bindparam("limit", type_=Integer()))
)
_LAST = select(func.coalesce(func.max(_events.c.id), 0).label("id"))


class Subscription:
    """One open stream's share of the hub: the user's new events, in the order read."""

    def __init__(self, hub: EventHub, owner_id: str) -> None:
        self.hub = hub
        self.owner_id = owner_id
        self.rows: deque[dict[str, Any]] = deque()
        self.behind = False  # rows were dropped: read the table from the last one sent
        self.ready = asyncio.Event()

    def put(self, row: dict[str, Any]) -> None:
        if len(self.rows) >= QUEUE_MAX:
            self.rows.clear()
            self.behind = True
        else:
            self.rows.append(row)
        self.ready.set()

    async def wait(self, seconds: float) -> None:
        """Until there is something to take, the hub closes, or `seconds` pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), seconds)
        self.ready.clear()

    def take(self) -> list[dict[str, Any]]:
        rows = list(self.rows)
        self.rows.clear()
        return rows


class EventHub:
    def __init__(self, db: Database, poll_seconds: float) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self.closing = False  # streams end (the server is shutting down)
        self.failing = False  # the last read failed: the database is unavailable
        self._streams: dict[str, set[Subscription]] = {}
        self._horizon: int | None = None  # every id up to here has been read or given up
        self._seen: dict[int, float] = {}  # ids read above the horizon: when
        self._wake = asyncio.Event()
        self._listener: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.reads = 0  # table reads so far (for tests and the bench)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event hub")

    def close_streams(self) -> None:
        """Shutting down: every open stream ends (with a hint to reconnect), new ones at once."""
        self.closing = True
        self._wake_streams()

    async def stop(self) -> None:
        """End the streams and the reader; a read in progress finishes first (cancelled in the
        middle, a statement could leave its connection unreturned)."""
        self.close_streams()
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self._close_listener()

    def notify(self) -> None:
        """Events were just committed in this process: read them now."""
        self._wake.set()

    @property
    def open_streams(self) -> int:
        return sum(len(subscriptions) for subscriptions in self._streams.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, owner_id: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(self, owner_id)
        self._streams.setdefault(owner_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscriptions = self._streams.get(owner_id, set())
            subscriptions.discard(subscription)
            if not subscriptions:
                self._streams.pop(owner_id, None)

    @property
    def horizon(self) -> int | None:
        return self._horizon

    # ------------------------------------------------------------ the reader

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if self.db.is_postgres and self._listener is None:
                    await self._listen()
                if self._horizon is None:
                    rows = await self.db.rows(_LAST, {})
                    self._horizon = int(rows[0]["id"])
                else:
                    await self.read()
                self.failing = False
            except Exception as exc:
                if not database_unavailable(exc):
                    log.exception("reading new events failed")
                elif not self.failing:
                    log.warning("event streams: the database is unavailable (%s)", exc)
                self.failing = True
                await self._close_listener()
                self._wake_streams()
            if not self._stopping:
                await self._sleep()

    async def _sleep(self) -> None:
        listening = self._listener is not None and not self._listener.is_closed()
        wait = self.poll_seconds
        if listening and not self._seen and not self.failing:
            wait = SAFETY_POLL_SECONDS
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait)
        self._wake.clear()

    async def read(self) -> None:
        """Read the events after the horizon and hand the new ones to their streams."""
        assert self._horizon is not None
        while True:
            rows = await self.db.rows(_AFTER, {"after": self._horizon, "limit": READ_BATCH})
            self.reads += 1
            now = time.monotonic()
            for row in rows:
                if row["id"] in self._seen:
                    continue
                self._seen[row["id"]] = now
                for subscription in self._streams.get(row["owner_id"], ()):
                    subscription.put(row)
            self._advance(now)
            if len(rows) < READ_BATCH:
                return

    def _advance(self, now: float) -> None:
        assert self._horizon is not None
        # Past every id read long enough ago: what is missing below it rolled back.
        settled = [i for i, seen_at in self._seen.items() if now - seen_at > GAP_SECONDS]
        horizon = max([self._horizon, *settled])
        while horizon + 1 in self._seen:
            horizon += 1
        self._seen = {i: seen_at for i, seen_at in self._seen.items() if i > horizon}
        self._horizon = horizon

    def _wake_streams(self) -> None:
        for subscriptions in self._streams.values():
            for subscription in subscriptions:
                subscription.ready.set()

    # ------------------------------------------------------------ PostgreSQL's listener

    async def _listen(self) -> None:
        connection = await self.db.connect_alone()
        connection.add_termination_listener(self._lost)
        await connection.add_listener(CHANNEL, self._notified)
        self._listener = connection
        if self._horizon is not None:
            self._wake.set()  # read what was written while no one listened

    def _notified(self, *_: object) -> None:
        self._wake.set()

    def _lost(self, *_: object) -> None:
        log.warning("event streams: the listener connection dropped; reconnecting")
        self._listener = None
        self._wake.set()

    async def _close_listener(self) -> None:
        connection, self._listener = self._listener, None
        if connection is not None and not connection.is_closed():
            connection.remove_termination_listener(self._lost)
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)
