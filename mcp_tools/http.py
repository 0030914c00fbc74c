"""The MCP endpoint over streamable HTTP: stateless, JSON responses, bearer JWT."""

from __future__ import annotations

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from slowapi.errors import RateLimitExceeded
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_tools.identity import MCPTokenVerifier, user_from_access_token
from mcp_tools.server import build_mcp_server
from server.auth import TokenVerifier
from server.database import Database
from server.errors import Unauthorized, Unavailable
from server.http import error_response
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


class RateLimitedMCP:
    """Counts MCP requests per token user (per address without a valid token).

    Over the limit the answer is HTTP 429 with Retry-After, before the request reaches the
    MCP SDK: clients show it as an HTTP error, and nothing runs.
    """

    def __init__(self, app: ASGIApp, verifier: TokenVerifier, limits: RateLimits) -> None:
        self.app = app
        self.verifier = verifier
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limits.limiter.enabled:
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
        try:
            if claims is None:
                await self.limits.check_anonymous(request)
                headers: dict[str, str] = {}
            else:
                request.state.user_id = claims["sub"]
                headers = await self.limits.check_mcp(request)
        except RateLimitExceeded as exc:
            response = await rate_limited(request, exc)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    *((name.lower().encode(), value.encode()) for name, value in headers.items()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
