"""GET /api/events: the user's task events as Server-Sent Events, live across processes.

Events come from the outbox, which every process writes in the same transaction as its
change. A stream first sends what was written after the event it resumes from, then what the
process's event hub hands it (`server/services/event_hub.py`): one reader per process, woken
by PostgreSQL's NOTIFY or, on SQLite, by its own commits and a slow poll. Each event carries
its number as the SSE `id`: a client that reconnects with `Last-Event-ID` (browsers'
EventSource does it by itself) misses nothing. When the server shuts down, its streams end
with a short `retry`, and clients reconnect to another replica.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from server.deps import CurrentUser
from server.errors import Unavailable, database_unavailable
from server.models import ID_MAX
from server.services import events
from server.services.event_hub import EventHub, Subscription

HEARTBEAT_SECONDS = 15.0
RETRY = b"retry: 2000\n\n"
# Shutting down: come back soon (to another replica behind the balancer).
RECONNECT = b"retry: 500\n: this server is shutting down, reconnect\n\n"
_UNAVAILABLE = f"event: error\ndata: {json.dumps(Unavailable().body())}\n\n".encode()


def _frame(row: dict[str, Any]) -> bytes:
    body = json.dumps(events.payload(row))
    return f"id: {row['id']}\nevent: {row['type']}\ndata: {body}\n\n".encode()


async def _stream(hub: EventHub, user: str, start: int) -> AsyncIterator[bytes]:
    yield RETRY
    if hub.closing:
        yield RECONNECT
        return
    async with hub.subscribe(user) as subscription:
        # Anything the hub hands over was read above its horizon of now; what the table read
        # below sends above it is remembered, so that it is not sent twice.
        horizon = hub.horizon
        early: set[int] = set()
        last = start
        try:
            async for row in _from_table(hub, user, start):
                yield _frame(row)
                last = max(last, row["id"])
                if horizon is None or row["id"] > horizon:
                    early.add(row["id"])
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            yield _UNAVAILABLE
            return
        async for chunk in _live(subscription, start, last, early):
            yield chunk


async def _live(
    subscription: Subscription, start: int, last: int, early: set[int]
) -> AsyncIterator[bytes]:
    hub = subscription.hub
    quiet_since = time.monotonic()
    while True:
        if hub.closing:
            yield RECONNECT
            return
        if hub.failing:
            yield _UNAVAILABLE  # the client reconnects with Last-Event-ID
            return
        if subscription.behind:  # this client reads slowly: catch up from the table
            subscription.behind = False
            async for row in _from_table(hub, subscription.owner_id, last):
                early.add(row["id"])
                yield _frame(row)
                last = max(last, row["id"])
        rows = [row for row in subscription.take() if row["id"] > start and row["id"] not in early]
        for row in rows:
            yield _frame(row)
            last = max(last, row["id"])
        if rows:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        else:
            await subscription.wait(HEARTBEAT_SECONDS - (time.monotonic() - quiet_since))


async def _from_table(hub: EventHub, user: str, after: int) -> AsyncIterator[dict[str, Any]]:
    while True:
        rows = await events.since(hub.db, user, after)
        for row in rows:
            yield row
            after = row["id"]
        if len(rows) < events.PAGE:
            return


def build_router() -> APIRouter:
    router = APIRouter(tags=["events"])

    @router.get(
        "/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
        description=events.__doc__ or "",
    )
    async def stream_events(
        request: Request,
        user: CurrentUser,
        last_event_id: Annotated[
            int | None, Header(ge=0, le=ID_MAX, description="Resume after this event")
        ] = None,
        after: Annotated[
            int | None,
            Query(ge=0, le=ID_MAX, description="Resume after this event (if no header)"),
        ] = None,
    ) -> StreamingResponse:
        """Task events as they happen: `id`, `event` (its type) and `data` (its JSON)."""
        hub: EventHub = request.app.state.events
        start = last_event_id if last_event_id is not None else after
        if start is None:
            start = await events.latest_id(hub.db, user)  # from now on

        return StreamingResponse(
            _stream(hub, user, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
