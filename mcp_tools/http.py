"""The MCP endpoint over streamable HTTP: stateless, JSON responses, bearer JWT."""

from __future__ import annotations

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from mcp_tools.identity import MCPTokenVerifier, user_from_access_token
from mcp_tools.server import build_mcp_server
from server.auth import TokenVerifier
from server.settings import Settings


def build_http_mcp(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, verifier: TokenVerifier
) -> tuple[MCPServer, Starlette]:
    public_url = settings.public_url.rstrip("/")
    server = build_mcp_server(
        sessionmaker,
        settings,
        user_from_access_token,
        token_verifier=MCPTokenVerifier(verifier),
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
