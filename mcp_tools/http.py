"""The MCP endpoint over streamable HTTP: stateless, JSON responses, bearer JWT."""

from __future__ import annotations

import json

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from slowapi.errors import RateLimitExceeded
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_tools.identity import MCPTokenVerifier, user_from_access_token
from mcp_tools.server import build_mcp_server
from server.auth import TokenVerifier
from server.database import Database
from server.errors import Unauthorized, Unavailable
from server.http import error_response, replaying
from server.ratelimit import RateLimits, rate_limited
from server.settings import Settings


def build_http_mcp(
    db: Database, settings: Settings, verifier: TokenVerifier
) -> tuple[MCPServer, Starlette]:
    public_url = settings.public_url.rstrip("/")
    server = build_mcp_server(
        db,
        settings,
        user_from_access_token,
        token_verifier=MCPTokenVerifier(verifier, settings.jwt_leeway_seconds),
        auth=AuthSettings(
            issuer_url=settings.jwt_issuer or public_url,
            resource_server_url=f"{public_url}/mcp",
            # The verifier checks `aud` itself when JWT_AUDIENCE is set.
            validate_token_resource=False,
        ),
    )
    origins = [*settings.cors_origins, "http://127.0.0.1:*", "http://localhost:*"]
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(
            allowed_hosts=settings.mcp_allowed_hosts, allowed_origins=origins
        ),
    )
    return server, app


# JSON-RPC methods that do work against the user's tasks; the others (initialize, tools/list,
# notifications, ping) are the protocol's own bookkeeping and are not counted.
COUNTED_METHODS = frozenset({"tools/call"})


def protected_resource_metadata(settings: Settings) -> JSONResponse:
    """RFC 9728 metadata for /mcp, written here rather than by the SDK, because the SDK always
    names an authorization server, itself when no issuer is configured. This server runs no
    OAuth endpoints, and a client sent to look for them fails with a 404 ("Dynamic Client
    Registration rejected"). So it names the configured issuer (Better Auth's, say) or none,
    and a client without a token is told to send one."""
    metadata: dict[str, object] = {
        "resource": f"{settings.public_url.rstrip('/')}/mcp",
        "bearer_methods_supported": ["header"],
        "resource_name": "todo-chat",
    }
    if settings.jwt_issuer:
        metadata["authorization_servers"] = [settings.jwt_issuer]
    return JSONResponse(metadata, headers={"Cache-Control": "public, max-age=3600"})


class RateLimitedMCP:
    """The gate in front of the MCP endpoint.

    - `GET /mcp` answers 405: in stateless mode the server never sends messages of its own,
      and the spec lets it refuse the stream instead of holding a silent one open forever.
    - Tool calls count per token user against the MCP limit; initialize, tools/list and
      notifications do not, so a client's handshake costs nothing. Requests without a valid
      token count against the anonymous limit, whatever they ask.

    Over the limit the answer is HTTP 429 with Retry-After, before the request reaches the
    MCP SDK: clients show it as an HTTP error, and nothing runs.
    """

    def __init__(self, app: ASGIApp, verifier: TokenVerifier, limits: RateLimits) -> None:
        self.app = app
        self.verifier = verifier
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET":
            refusal = error_response(
                405,
                "method_not_allowed",
                "this MCP server is stateless and sends no server-initiated messages: "
                "POST JSON-RPC requests to /mcp",
                {"Allow": "POST"},
            )
            await refusal(scope, receive, send)
            return
        if not self.limits.enabled:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            claims = await self.verifier.verify(token) if scheme.lower() == "bearer" else None
        except Unauthorized:
            claims = None
        except Unavailable as exc:
            unavailable = error_response(exc.status_code, exc.code, exc.detail, exc.headers)
            await unavailable(scope, receive, send)
            return
        body, receive = await _buffered(receive)
        try:
            if claims is None:
                await self.limits.spend(request, "anonymous")
            elif COUNTED_METHODS & _methods(body):
                request.state.user_id = claims["sub"]
                await self.limits.spend(request, "mcp")
        except RateLimitExceeded as exc:
            response = await rate_limited(request, exc)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole request body (BodySizeLimit has capped it) and a `receive` that replays
    it to the app."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, replaying({"type": "http.request", "body": body, "more_body": False}, receive)


def _methods(body: bytes) -> set[str]:
    """The JSON-RPC methods a body asks for; a body that is not JSON-RPC counts as work."""
    try:
        payload = json.loads(body)
    except ValueError:
        return set(COUNTED_METHODS)
    messages = payload if isinstance(payload, list) else [payload]
    return {str(m.get("method")) if isinstance(m, dict) else "" for m in messages} or set(
        COUNTED_METHODS
    )
