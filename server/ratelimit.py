"""Per-user rate limits with SlowAPI; counts shared through Redis when several processes run.

One place decides what every request spends: `ROUTES`, a table from route to budget, read
when the caller's token has been verified (`server.deps`). Nothing is counted after a route
has run: the X-RateLimit-* headers are worked out when the request is counted and added to
whatever answer it gets (`RateLimitHeaders`), so a Redis that drops mid-request can never
turn a change that was made into an error.

One `Limiter` per app, so each app's settings (limits, storage) stay its own. Limits key on the
verified token's user; requests without a valid token key on the client address. When Redis
stops answering, SlowAPI counts in process memory and goes back to Redis once it answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import slowapi
from fastapi import Request, Response
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.http import error_response
from server.metrics import RATE_LIMITED
from server.settings import Settings

log = logging.getLogger("todo_chat.ratelimit")
Budget = Literal["rest", "chat", "mcp", "anonymous"]

# What each route spends, by its name (the same under /api and /api/{user_id}). Every other
# route that needs a token spends the REST budget; routes without a token (health, docs, the
# page) spend none. `None`: the route decides per request (ChatKit: a turn with the agent is
# chat, the rest REST). /mcp is not a FastAPI route: its gate (mcp_tools.http) spends the MCP
# budget on tool calls.
ROUTES: dict[str, Budget | None] = {
    "chat": "chat",
    "chatkit": None,
}
_STATE_KEY = "rate_limit_headers"


def user_or_address(request: Request) -> str:
    user_id = getattr(request.state, "user_id", None)
    return f"user:{user_id}" if user_id else f"address:{get_remote_address(request)}"


def address(request: Request) -> str:
    return f"address:{get_remote_address(request)}"


class Limiter(slowapi.Limiter):
    def _inject_headers(self, response: Response, current_limit: Any) -> Response:
        """SlowAPI's headers, tidied: the reset time as a whole epoch second (it writes a float),
        Retry-After only on refusals (it adds one to every answer), and none at all when the
        storage cannot say (Redis went away between the count and this read)."""
        try:
            response = super()._inject_headers(response, current_limit)
        except Exception as exc:
            log.warning("rate-limit headers left out: the storage did not answer (%r)", exc)
            return response
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
        self._guards = {
            "rest": self._guard(settings.rate_limit_rest, "rest", user_or_address),
            "chat": self._guard(settings.rate_limit_chat, "chat", user_or_address),
            "mcp": self._guard(settings.rate_limit_mcp, "mcp", user_or_address),
            "anonymous": self._guard(settings.rate_limit_anonymous, "anonymous", address),
        }

    @property
    def enabled(self) -> bool:
        return bool(self.limiter.enabled)

    def _guard(self, limit: str, scope: str, key: Callable[[Request], str]) -> Callable[..., Any]:
        """A limit checked by calling it: it raises RateLimitExceeded when over, and writes
        the X-RateLimit-* headers on the response it is given."""

        async def guard(request: Request, response: Response) -> None:
            return None

        guard.__name__ = f"guard_{scope}"
        limited: Callable[..., Any] = self.limiter.shared_limit(limit, scope=scope, key_func=key)(
            guard
        )
        return limited

    async def spend_route(self, request: Request) -> None:
        """Count a request with a verified token against its route's budget (see ROUTES)."""
        route = request.scope.get("route")
        budget = ROUTES.get(getattr(route, "name", ""), "rest")
        if budget is not None:
            await self.spend(request, budget)

    async def spend(self, request: Request, budget: Budget) -> None:
        """Count the request against `budget`; RateLimitExceeded when it is spent. The
        headers to answer with are kept for `RateLimitHeaders`."""
        response = Response()
        try:
            await self._guards[budget](request=request, response=response)
        except RateLimitExceeded:
            RATE_LIMITED.labels(budget).inc()
            raise
        request.state.rate_limit_headers = [
            (name.encode(), value.encode())
            for name, value in response.headers.items()
            if name.startswith("x-ratelimit")
        ]


class RateLimitHeaders:
    """Adds the X-RateLimit-* headers worked out when the request was counted to its answer,
    whatever the answer is (JSON, 204, a stream)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = scope.get("state", {}).get(_STATE_KEY)
                if extra:
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def rate_limited(request: Request, exc: Exception) -> Response:
    """429 in the project's error shape, with Retry-After and the X-RateLimit-* headers."""
    assert isinstance(exc, RateLimitExceeded)
    limits: RateLimits = request.app.state.rate_limits
    current = getattr(request.state, "view_rate_limit", None)
    retry_after = 1
    if current is not None:
        try:
            reset_at, _ = limits.limiter.limiter.get_window_stats(current[0], *current[1])
            retry_after = max(1, int(reset_at - time.time()) + 1)
        except Exception as error:  # the storage went away since it refused: a second will do
            log.warning("rate-limit window unknown: %r", error)
    request.state.rate_limit_headers = None  # the refusal carries its own
    response: Response = error_response(
        429, "rate_limited", f"rate limit exceeded ({exc.detail}): retry in {retry_after} s"
    )
    if current is not None:
        response = limits.limiter._inject_headers(response, current)
    response.headers["Retry-After"] = str(retry_after)
    return response
