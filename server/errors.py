"""Typed domain errors, rendered once for HTTP here and once for MCP in mcp_tools."""

from __future__ import annotations

from typing import Any

from asyncpg import exceptions as asyncpg_exc
from sqlalchemy import exc as sa_exc

RETRY_AFTER_SECONDS = 2
DATABASE_UNAVAILABLE = "the database is unavailable right now: retry in a few seconds"


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        self.extra = extra  # more fields of the error body, e.g. the conversation to retry in

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.detail, **self.extra)


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """Every error answer's JSON, whatever carries it: an HTTP response (see
    `server.http.error_response`) or an `error` event of a stream."""
    return {"error": code, "detail": detail, **extra}


class DatabaseUnreachable(Exception):
    """The database connection could not be made or broke mid-statement (raised by
    `server.database.Database` for every way the driver reports it)."""


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class LimitReached(AppError):
    """A per-user cap (MAX_TASKS_PER_USER, MAX_CONVERSATIONS_PER_USER) would be passed."""

    status_code = 409
    code = "limit_reached"

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(
            f"you have {limit} {what}, the most this server keeps per user: delete some first",
            limit=limit,
            limit_name=f"{what} per user",
        )


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class InvalidInput(AppError):
    status_code = 422
    code = "validation_error"


class Unavailable(AppError):
    """The database cannot be reached right now; the request did not take effect."""

    status_code = 503
    code = "unavailable"

    def __init__(self, detail: str = DATABASE_UNAVAILABLE, **extra: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, **extra)


class UpstreamError(AppError):
    """The model provider failed; the user's message is kept and a retry is safe."""

    status_code = 502
    code = "provider_error"


class UpstreamTimeout(AppError):
    status_code = 504
    code = "provider_timeout"


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database could not be reached or went away mid-request.

    Connection refused, a server starting up or shutting down, a connection dropped
    mid-query, an exhausted pool, a locked SQLite file: all pass with time, so the caller
    gets 503 and Retry-After. Only the database drivers' own errors say so: any other
    `OSError` (a missing file, a zone name that is a folder) is a bug or bad input.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (DatabaseUnreachable, sa_exc.TimeoutError)):
            return True
        if isinstance(current, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        if isinstance(current, _ASYNCPG_UNAVAILABLE):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


# asyncpg's "the server is not there for you right now" (SQLSTATE classes 08, 57P, 53300).
_ASYNCPG_UNAVAILABLE = (
    asyncpg_exc.PostgresConnectionError,
    asyncpg_exc.OperatorInterventionError,
    asyncpg_exc.TooManyConnectionsError,
)
