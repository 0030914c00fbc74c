"""How a tool call finds its user, per transport. Never from the tool's arguments.

- HTTP: the `sub` of the bearer token the SDK's auth middleware verified.
- stdio: the one user the process was started for.
- in-process (chat agent): a `_meta` entry set by the server side of the agent run. That
  server object is never exposed on a transport, so no client can reach it to set `_meta`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from server.auth import TokenVerifier
from server.errors import AppError

UserResolver = Callable[[Context], str]
IN_PROCESS_USER_KEY = "todo-chat/user_id"
# The chat request's timezone rides along the same way; a client sending one only affects itself.
TIMEZONE_META_KEY = "todo-chat/timezone"
# The chat turn a change belongs to: {"message_id", "name", "arguments"}. Read only in-process.
TURN_META_KEY = "todo-chat/turn"


@dataclass(frozen=True)
class TurnCall:
    """The chat turn's tool call that is running: its user message, name and arguments."""

    message_id: int
    name: str
    arguments: dict[str, Any]


TurnResolver = Callable[[Context], TurnCall | None]


def user_from_access_token(_: Context) -> str:
    token = get_access_token()
    if token is None or not token.subject:
        raise ToolError("not authenticated")
    return token.subject


def fixed_user(user_id: str) -> UserResolver:
    def resolve(_: Context) -> str:
        return user_id

    return resolve


def no_turn(_: Context) -> None:
    """HTTP and stdio: a client could send any `_meta`, so no call belongs to a chat turn."""
    return None


def turn_from_server_meta(ctx: Context) -> TurnCall | None:
    call = (ctx.request_context.meta or {}).get(TURN_META_KEY)
    if not isinstance(call, dict):
        return None
    message_id, name, arguments = call.get("message_id"), call.get("name"), call.get("arguments")
    if type(message_id) is not int or not isinstance(name, str) or not isinstance(arguments, dict):
        return None
    return TurnCall(message_id, name, arguments)


def user_from_server_meta(ctx: Context) -> str:
    user_id = (ctx.request_context.meta or {}).get(IN_PROCESS_USER_KEY)
    if not isinstance(user_id, str) or not user_id:
        raise ToolError("no user bound to this run")
    return user_id


class MCPTokenVerifier:
    """The REST verifier (secret or JWKS) behind the MCP SDK's `TokenVerifier` protocol."""

    def __init__(self, verifier: TokenVerifier, leeway_seconds: int) -> None:
        self._verifier = verifier
        # The SDK drops a token past `expires_at` on its own; the same leeway as REST applies.
        self._leeway = leeway_seconds

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await self._verifier.verify(token)
        except AppError:  # Unauthorized, or Unavailable when no signing keys can be had
            return None
        scope = claims.get("scope")
        return AccessToken(
            token=token,
            client_id=str(claims.get("azp") or claims.get("client_id") or "todo-chat"),
            scopes=scope.split() if isinstance(scope, str) else [],
            expires_at=int(claims["exp"]) + self._leeway,
            subject=claims["sub"],
            claims=claims,
        )
