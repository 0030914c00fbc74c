"""Background jobs: due reminders into the outbox, and the outbox out to a webhook.

Both are safe with any number of processes. Work is claimed in the database (on PostgreSQL
with `FOR UPDATE SKIP LOCKED`, so two processes never take the same row; SQLite has one
process): a claim is a lease, and a process that dies holding one leaves it to expire for
another to take over.

- A reminder is sent once: its event is written, and the task marked as reminded, in one
  transaction that only succeeds while it is still unsent. A reminder whose time passed while
  no process ran is sent late, once, marked `"late": true`.
- A webhook gets every event, oldest first, signed per the Standard Webhooks spec with the
  event id as `webhook-id` (receivers drop a repeat by it). A failed delivery is retried with
  exponential backoff (up to an hour apart), logged, and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import BigInteger, Integer, bindparam, delete, null, or_, select, true, update
from standardwebhooks import Webhook

from server.database import Database
from server.errors import database_unavailable
from server.metrics import REMINDERS_SENT, WEBHOOK_DELIVERIES
from server.models import Event, Task, UTCDateTime, utcnow
from server.services.events import emit, payload
from server.settings import Settings

log = logging.getLogger("todo_chat.jobs")
BATCH = 20
LATE_AFTER = timedelta(minutes=1)
BACKOFF_MAX = 3600.0
PURGE_EVERY_SECONDS = 600.0
PURGE_BATCH = 1000
_tasks = Task.__table__  # type: ignore[attr-defined]
_events = Event.__table__  # type: ignore[attr-defined]
_NOW = bindparam("now", type_=UTCDateTime())
_LEASE = bindparam("lease", type_=UTCDateTime())
_ID = bindparam("row_id", type_=BigInteger())


class Jobs:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.lease = timedelta(seconds=settings.reminder_lease_seconds)
        self.webhook = (
            Webhook(settings.events_webhook_secret) if settings.events_webhook_url else None
        )
        self.webhook_failures = 0
        self.retention = timedelta(days=settings.events_retention_days)
        self._next_purge = 0.0  # the first pass purges
        self.http: httpx.AsyncClient | None = None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Until `stop` is set: send what is due, then wait a moment. A pass in progress
        finishes first, so no claim or connection is left half-way."""
        stop = stop or asyncio.Event()
        async with httpx.AsyncClient(timeout=10) as http:
            self.http = http
            while not stop.is_set():
                try:
                    await self.once()
                except Exception as exc:
                    if not database_unavailable(exc):
                        log.exception("background jobs failed")
                    else:
                        log.warning("background jobs: the database is unavailable (%s)", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.events_poll_seconds)

    async def once(self) -> int:
        """One pass; how many reminders and deliveries it handled."""
        done = await self.send_reminders()
        if self.webhook is not None:
            done += await self.deliver_events()
        if time.monotonic() >= self._next_purge:
            await self.purge_events()
            self._next_purge = time.monotonic() + PURGE_EVERY_SECONDS
        return done

    # ------------------------------------------------------------ retention

    async def purge_events(self) -> int:
        """Delete the events older than EVENTS_RETENTION_DAYS: with the content of the tasks
        they describe (deleted ones too), they go. With a webhook, only delivered ones go; an
        undelivered one waits for its delivery (todochat_events_undelivered shows them).
        In batches, so that no statement holds the table for long."""
        before = utcnow() - self.retention
        statement = _PURGE_DELIVERED if self.webhook is not None else _PURGE
        purged = 0
        while True:
            rows = await self.db.rows(statement, {"before": before, "limit": PURGE_BATCH})
            purged += len(rows)
            if len(rows) < PURGE_BATCH:
                break
        if purged:
            log.info("deleted %d events older than %s", purged, before.isoformat())
        return purged

    # ------------------------------------------------------------ reminders

    async def send_reminders(self) -> int:
        now = utcnow()
        claimed = await self.db.rows(_CLAIM_REMINDERS, {"now": now, "lease": now + self.lease})
        sent = 0
        for claim in claimed:
            async with self.db.transaction() as tx:
                row = await tx.one(_MARK_REMINDED, {"row_id": claim["id"], "now": utcnow()})
                if row is None:
                    continue  # sent by another process after all, changed, or completed
                late = now - row["remind_at"] > LATE_AFTER
                remind_at = row["remind_at"].isoformat().replace("+00:00", "Z")
                await emit(tx, "reminder.due", row, remind_at=remind_at, late=late)
                sent += 1
            REMINDERS_SENT.labels("true" if late else "false").inc()
        return sent

    # ------------------------------------------------------------ webhook

    async def deliver_events(self) -> int:
        assert self.webhook is not None
        now = utcnow()
        claimed = await self.db.rows(_CLAIM_EVENTS, {"now": now, "lease": now + self.lease})
        for row in sorted(claimed, key=lambda event: event["id"]):
            if await self._post(row):
                WEBHOOK_DELIVERIES.labels("ok").inc()
                await self.db.rows(_DELIVERED, {"row_id": row["id"], "now": utcnow()})
            else:
                WEBHOOK_DELIVERIES.labels("failed").inc()
                self.webhook_failures += 1
                wait = min(2.0 ** row["attempts"], BACKOFF_MAX)
                retry_at = utcnow() + timedelta(seconds=wait)
                await self.db.rows(_RETRY, {"row_id": row["id"], "now": retry_at})
        return len(claimed)

    async def _post(self, row: dict[str, Any]) -> bool:
        assert self.webhook is not None and self.http is not None
        body = json.dumps(payload(row))
        message_id, sent_at = str(row["id"]), datetime.now().astimezone()
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self.webhook.sign(message_id, sent_at, body),
        }
        try:
            response = await self.http.post(
                self.settings.events_webhook_url, content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            log.warning("webhook delivery of event %s failed: %r", message_id, exc)
            return False
        if not response.is_success:
            log.warning("webhook delivery of event %s: HTTP %s", message_id, response.status_code)
        return response.is_success


# ---------------------------------------------------------------- statements


def _claim(table: Any, due: list[Any], order: Any, lease_column: str) -> Any:
    """Take a batch of due rows for a lease; rows another process holds are skipped."""
    lease = table.c[lease_column]
    candidates = (
        select(table.c.id)
        .where(*due, or_(lease.is_(None), lease < _NOW))
        .order_by(order)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    return update(table).where(table.c.id.in_(candidates)).values({lease_column: _LEASE})


_REMINDER_DUE = [
    _tasks.c.reminded_at.is_(None),
    _tasks.c.remind_at <= _NOW,
    _tasks.c.completed.is_not(true()),
]
_CLAIM_REMINDERS = _claim(_tasks, _REMINDER_DUE, _tasks.c.remind_at, "reminder_lease").returning(
    _tasks.c.id
)
# Only while still due and unsent: of two processes, one marks it; a reminder moved to a later
# time or a completed task is not sent.
_MARK_REMINDED = (
    update(_tasks)
    .where(_tasks.c.id == _ID, *_REMINDER_DUE)
    .values(reminded_at=_NOW, reminder_lease=null())
    .returning(*_tasks.columns)
)
_EVENT_DUE = [_events.c.delivered_at.is_(None), _events.c.next_attempt_at <= _NOW]
_CLAIM_EVENTS = _claim(_events, _EVENT_DUE, _events.c.id, "lease_until").returning(*_events.columns)
_DELIVERED = (
    update(_events).where(_events.c.id == _ID).values(delivered_at=_NOW, lease_until=null())
)
_RETRY = (
    update(_events)
    .where(_events.c.id == _ID)
    .values(attempts=_events.c.attempts + 1, next_attempt_at=_NOW, lease_until=null())
)

_BEFORE = bindparam("before", type_=UTCDateTime())


def _purge(*where: Any) -> Any:
    oldest = (
        select(_events.c.id)
        .where(_events.c.created_at < _BEFORE, *where)
        .order_by(_events.c.id)
        .limit(bindparam("limit", type_=Integer()))
    )
    return delete(_events).where(_events.c.id.in_(oldest)).returning(_events.c.id)


_PURGE = _purge()
_PURGE_DELIVERED = _purge(_events.c.delivered_at.is_not(None))
