"""The app factory: the one place where database, auth, REST, MCP and chat are composed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette.routing import Route

from mcp_tools.http import build_http_mcp
from server.api import health, tasks
from server.auth import TokenVerifier
from server.database import create_engine, create_sessionmaker
from server.deps import path_user
from server.http import BodySizeLimit, install_error_handlers
from server.settings import Settings


def _alias_operation_id(route: APIRoute) -> str:
    return f"{route.name}_for_user"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.check_production()

    # Connections open lazily; the lifespan closes what these open.
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    sessionmaker = create_sessionmaker(engine)
    verifier = TokenVerifier(settings)
    mcp_server, mcp_app = build_http_mcp(sessionmaker, settings, verifier)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with mcp_server.session_manager.run():
                yield
        finally:
            await verifier.aclose()
            await engine.dispose()

    app = FastAPI(
        title="todo-chat",
        version="0.1.0",
        description="Manage a todo list by chatting with an agent, over MCP, or over REST.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    app.state.verifier = verifier
    install_error_handlers(app)

    api = APIRouter(prefix="/api")
    api.include_router(tasks.router)
    app.include_router(api)

    # The same routes under /api/{user_id} for Better Auth + Next.js frontends.
    per_user = APIRouter(prefix="/api/{user_id}", dependencies=[Depends(path_user)])
    per_user.include_router(tasks.router)
    per_user.include_router(tasks.toggle_router)
    app.include_router(
        per_user, tags=["per-user paths"], generate_unique_id_function=_alias_operation_id
    )
    app.include_router(health.router)

    # /mcp and its RFC 9728 metadata go to the MCP SDK's app (with its auth middleware);
    # every other path stays with FastAPI and its JSON errors.
    for route in mcp_app.routes:
        if isinstance(route, Route):
            app.router.routes.append(Route(route.path, endpoint=mcp_app))

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Accept", "Mcp-Protocol-Version"],
            expose_headers=["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"],
        )
    app.add_middleware(BodySizeLimit)
    return app
