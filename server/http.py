"""HTTP plumbing shared by every route: the error shape, request limits, the last resort."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import (
    AppError,
    DatabaseUnreachable,
    Unavailable,
    database_unavailable,
    error_body,
)

MAX_BODY_BYTES = 1024 * 1024
# Browsers and proxies keep all headers of a request within 8-16 KiB; a bearer token is ~1 KiB.
MAX_HEADER_BYTES = 16 * 1024
log = logging.getLogger("todo_chat.http")


def error_response(
    status_code: int, error: str, detail: Any, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """Every error answer over HTTP: the one place its body is written (see `error_body`).
    A response is an ASGI app too, so middlewares send it the same way."""
    return JSONResponse(
        status_code=status_code, content=error_body(error, detail, **extra), headers=headers
    )


def _field_name(location: tuple[Any, ...]) -> str:
    # ("body", "title") -> "title"; ("query", "limit") -> "limit"
    parts = [str(part) for part in location[1:]] or [str(part) for part in location]
    return ".".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_: Request, exc: AppError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": _field_name(tuple(err["loc"])), "message": err["msg"]} for err in exc.errors()
        ]
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return error_response(422, "validation_error", detail, fields=fields)

    @app.exception_handler(sa_exc.SQLAlchemyError)
    @app.exception_handler(DatabaseUnreachable)
    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            raise exc  # a bug, not an outage: the last resort answers and logs it
        log.warning("database unavailable on %s %s: %r", request.method, request.url.path, exc)
        unavailable = Unavailable()
        return error_response(503, unavailable.code, unavailable.detail, unavailable.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            # Starlette names only the methods of the first route on this path.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return error_response(exc.status_code, code, exc.detail, headers or None)


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route answers on this path."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]


def replaying(first: Message, receive: Receive) -> Receive:
    """A `receive` that hands the app `first` (a body already read), then the real one."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return first

    return replay


class LastResort:
    """An unexpected exception answers 500 in the error shape, with a request id that the log
    line carries too, and goes no further: the server keeps the connection open instead of
    dropping it (as it does when an exception escapes the app)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            # Given by RequestContext, which also sends it back as X-Request-ID.
            request_id = scope.get("state", {}).get("request_id") or uuid.uuid4().hex
            log.exception(
                "unexpected error, request id %s, on %s %s",
                request_id,
                scope.get("method"),
                scope.get("path"),
            )
            if started:
                return  # the answer is under way (a stream): it ends here, the server goes on
            detail = f"an unexpected error occurred; quote request id {request_id} when reporting"
            response = error_response(500, "internal_error", detail, request_id=request_id)
            await response(scope, receive, send)


class BodySizeLimit:
    """413 for request bodies over `limit` bytes, whether or not Content-Length is sent;
    431 for request headers over `MAX_HEADER_BYTES` all told.

    The body is read here, up to the limit, and replayed to the app: an error raised while
    the app itself reads would be turned into a 400 by the framework.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = 0
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value) + 4
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._reject(scope, receive, send)
                return
        if header_bytes > MAX_HEADER_BYTES:
            detail = f"request headers over {MAX_HEADER_BYTES} bytes"
            await error_response(431, "headers_too_large", detail)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; let the app see it
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                body = b"".join(chunks)
                if too_deep(body):
                    detail = f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels"
                    await error_response(400, "bad_request", detail)(scope, receive, send)
                    return
                message = {"type": "http.request", "body": body, "more_body": False}
                break
        await self.app(scope, replaying(message, receive), send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body over {self.limit} bytes"
        await error_response(413, "payload_too_large", detail)(scope, receive, send)


# No request of this API nests nearly this deep; Python's JSON parsers give up (RecursionError)
# somewhere past a thousand levels, and not every route catches that.
MAX_JSON_DEPTH = 64
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def too_deep(body: bytes) -> bool:
    """Whether a JSON body nests deeper than MAX_JSON_DEPTH (strings skipped). Bodies with
    few brackets, nearly all of them, are not scanned."""
    if body.count(b"{") + body.count(b"[") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for token in _JSON_TOKEN.finditer(body):
        mark = token.group()
        if mark in (b"{", b"["):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif mark in (b"}", b"]"):
            depth -= 1
    return False
