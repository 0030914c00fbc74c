"""Per-user rate limits with SlowAPI; counts shared through Redis when several processes run.

One `Limiter` per app, so each app's settings (limits, storage) stay its own. Limits key on the
verified token's user; requests without a valid token key on the client address. When Redis
stops answering, SlowAPI counts in process memory and goes back to Redis once it answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import slowapi
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address

from server.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("todo_chat.ratelimit")


def user_or_address(request: Request) -> str:
    user_id = getattr(request.state, "user_id", None)
    return f"user:{user_id}" if user_id else f"address:{get_remote_address(request)}"


def address(request: Request) -> str:
    return f"address:{get_remote_address(request)}"


class Limiter(slowapi.Limiter):
    def _inject_headers(self, response: Response, current_limit: Any) -> Response:
        """SlowAPI's headers, tidied: the reset time as a whole epoch second (it writes a float),
        and Retry-After only on refusals (it adds one to every answer)."""
        response = super()._inject_headers(response, current_limit)
        reset = response.headers.get("X-RateLimit-Reset")
        if reset is not None:
            response.headers["X-RateLimit-Reset"] = str(int(float(reset)))
        if response.status_code != 429 and "Retry-After" in response.headers:
            del response.headers["Retry-After"]
        return response


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        storage_options: dict[str, Any] = {}
        if settings.rate_limit_storage_uri.startswith(("redis://", "rediss://")):
            # Fail fast when Redis is away, so the in-memory fallback takes over at once.
            storage_options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        self.limiter = Limiter(
            key_func=user_or_address,
            storage_uri=settings.rate_limit_storage_uri,
            storage_options=storage_options,
            in_memory_fallback_enabled=True,
            headers_enabled=True,
            enabled=settings.rate_limit_enabled,
            key_prefix="todo-chat",
        )
        # Shared scopes: every REST route counts against one budget per user, and the chat
        # route counts the same under /api/chat and /api/{user_id}/chat.
        self.rest: Callable[[F], F] = self.limiter.shared_limit(
            settings.rate_limit_rest, scope="rest"
        )
        self.chat: Callable[[F], F] = self.limiter.shared_limit(
            settings.rate_limit_chat, scope="chat"
        )
        self._mcp = self._guard(settings.rate_limit_mcp, "mcp", user_or_address)
        # The same budgets, for a route that decides per request which one it spends.
        self._chat = self._guard(settings.rate_limit_chat, "chat", user_or_address)
        self._rest = self._guard(settings.rate_limit_rest, "rest", user_or_address)
        self._anonymous = self._guard(settings.rate_limit_anonymous, "anonymous", address)

    def _guard(self, limit: str, scope: str, key: Callable[[Request], str]) -> Callable[..., Any]:
        """A limit to check outside a route: calling it raises RateLimitExceeded when over."""

        async def guard(request: Request, response: Response) -> None:
            return None

        guard.__name__ = f"guard_{scope}"
        limited: Callable[..., Any] = self.limiter.shared_limit(limit, scope=scope, key_func=key)(
            guard
        )
        return limited

    async def check_anonymous(self, request: Request) -> None:
        """Count a request that came without a valid token against its address."""
        await self._anonymous(request=request, response=Response())

    async def check_mcp(self, request: Request) -> dict[str, str]:
        """Count an MCP request; the X-RateLimit-* headers to send with its answer."""
        return await self._check(self._mcp, request)

    async def check_chat(self, request: Request) -> dict[str, str]:
        """Count a request against the chat budget, shared with /api/chat."""
        return await self._check(self._chat, request)

    async def check_rest(self, request: Request) -> dict[str, str]:
        return await self._check(self._rest, request)

    @staticmethod
    async def _check(guard: Callable[..., Any], request: Request) -> dict[str, str]:
        response = Response()
        await guard(request=request, response=response)
        return {
            name: value
            for name, value in response.headers.items()
            if name.startswith("x-ratelimit")
        }


async def rate_limited(request: Request, exc: Exception) -> Response:
    """429 in the project's error shape, with Retry-After and the X-RateLimit-* headers."""
    assert isinstance(exc, RateLimitExceeded)
    limits: RateLimits = request.app.state.rate_limits
    current = getattr(request.state, "view_rate_limit", None)
    retry_after = 1
    if current is not None:
        reset_at, _ = limits.limiter.limiter.get_window_stats(current[0], *current[1])
        retry_after = max(1, int(reset_at - time.time()) + 1)
    response: Response = JSONResponse(
        status_code=429,
        content={
            "error": "rate_limited",
            "detail": f"rate limit exceeded ({exc.detail}): retry in {retry_after} s",
        },
    )
    if current is not None:
        response = limits.limiter._inject_headers(response, current)
    response.headers["Retry-After"] = str(retry_after)
    return response
