"""The outermost middleware: a request id for every request, its metrics and its log line."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.logs import request_id
from server.metrics import HTTP_IN_FLIGHT, observe_request, route_of

log = logging.getLogger("todo_chat.access")
# Ids that proxies and tracing tools send (UUIDs, hex, base64url): kept, and echoed. Anything
# else (too long, spaces, control characters) is replaced, never written into a log line.
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContext:
    """Every response carries `X-Request-ID` (the client's own when it sent a sane one); every
    log line written meanwhile carries it too. Each request is counted and timed by route
    template, and logged once it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if SANE_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id.set(rid)
        status = 500  # unless the app answers
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                message = {**message, "headers": headers}
            await send(message)

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            HTTP_IN_FLIGHT.dec()
            seconds = time.perf_counter() - started
            route, method = route_of(scope), scope["method"]
            observe_request(method, route, status, seconds)
            if log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                log.info(
                    '"%s %s" %s %.1f ms',
                    method,
                    scope["path"],
                    status,
                    seconds * 1000,
                    extra={
                        "request_id": rid,
                        "method": method,
                        "route": route,
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                        "user_id": scope["state"].get("user_id"),
                        "client": client[0] if client else None,
                    },
                )
            request_id.reset(token)
