"""GET /api/events: the user's task events as Server-Sent Events, live across processes.

Events come from the outbox, which every process writes in the same transaction as its change;
the stream looks for new ones every EVENTS_POLL_SECONDS, so an event written by any process
arrives within about that long. Each carries its number as the SSE `id`: a client that
reconnects with `Last-Event-ID` (browsers' EventSource does it by itself) misses nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from server.deps import CurrentUser
from server.errors import Unavailable, database_unavailable
from server.models import ID_MAX
from server.services import events

HEARTBEAT_SECONDS = 15.0


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
        db = request.app.state.db
        poll = request.app.state.settings.events_poll_seconds
        start = last_event_id if last_event_id is not None else after
        if start is None:
            start = await events.latest_id(db, user)  # from now on

        async def stream() -> AsyncIterator[bytes]:
            last, quiet_since = start, time.monotonic()
            yield b"retry: 2000\n\n"
            while True:
                try:
                    rows = await events.since(db, user, last)
                except Exception as exc:
                    if not database_unavailable(exc):
                        raise
                    body = json.dumps(Unavailable().body())
                    yield f"event: error\ndata: {body}\n\n".encode()
                    return  # the client reconnects with Last-Event-ID
                for row in rows:
                    body = json.dumps(events.payload(row))
                    yield f"id: {row['id']}\nevent: {row['type']}\ndata: {body}\n\n".encode()
                    last, quiet_since = row["id"], time.monotonic()
                if not rows:
                    if time.monotonic() - quiet_since > HEARTBEAT_SECONDS:
                        yield b": keep-alive\n\n"
                        quiet_since = time.monotonic()
                    await asyncio.sleep(poll)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
