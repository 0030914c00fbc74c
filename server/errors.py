"""Typed domain errors, rendered once for HTTP here and once for MCP in mcp_tools."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail}


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class InvalidInput(AppError):
    status_code = 422
    code = "validation_error"


class UpstreamError(AppError):
    """The model provider failed; the user's message is kept and a retry is safe."""

    status_code = 502
    code = "provider_error"


class UpstreamTimeout(AppError):
    status_code = 504
    code = "provider_timeout"
