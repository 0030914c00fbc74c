"""The app factory: the one place where database, auth, REST, MCP and chat are composed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from slowapi.errors import RateLimitExceeded
from starlette.routing import Route

from mcp_tools.http import RateLimitedMCP, build_http_mcp, protected_resource_metadata
from mcp_tools.identity import turn_from_server_meta, user_from_server_meta
from mcp_tools.server import build_mcp_server
from server import metrics, web
from server.api import chat, chatkit, conversations, events, health, tasks
from server.auth import TokenVerifier
from server.database import Database
from server.deps import path_user
from server.http import BodySizeLimit, LastResort, install_error_handlers
from server.jobs import Jobs
from server.models import API_ERRORS
from server.ratelimit import RateLimitHeaders, RateLimits, rate_limited
from server.request_context import RequestContext
from server.services.event_hub import EventHub
from server.settings import Settings
from todo_agent.agent import build_agent, build_model
from todo_agent.chat import ChatService
from todo_agent.chatkit_server import TodoChatKitServer
from todo_agent.chatkit_store import ConversationStore
from todo_agent.mcp_bridge import InProcessTaskTools


def _alias_operation_id(route: APIRoute) -> str:
    return f"{route.name}_for_user"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.check_production()

    # Connections open lazily; the lifespan closes what these open.
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    verifier = TokenVerifier(settings)
    limits = RateLimits(settings)
    mcp_server, mcp_app = build_http_mcp(db, settings, verifier)
    # The chat agent reaches the same tools through its own in-process MCP server, whose
    # user comes from the run, not from any transport.
    task_tools = InProcessTaskTools(
        build_mcp_server(db, settings, user_from_server_meta, turn_from_server_meta)
    )
    chat_service = ChatService(db, settings, build_agent(task_tools, build_model(settings)))
    chatkit_server = TodoChatKitServer(ConversationStore(db), chat_service)

    jobs = Jobs(db, settings)
    hub = EventHub(db, settings.events_poll_seconds)
    db.events_committed = hub.notify

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop_jobs = asyncio.Event()
        background = None
        if settings.background_jobs:
            background = asyncio.create_task(jobs.run(stop_jobs))
        hub.start()
        try:
            async with mcp_server.session_manager.run():
                await task_tools.connect()
                try:
                    yield
                finally:
                    await task_tools.cleanup()
        finally:
            if background is not None:
                stop_jobs.set()  # the pass in progress finishes first
                await asyncio.gather(background, return_exceptions=True)
            await hub.stop()
            await verifier.aclose()
            await db.dispose()

    # The docs pages with Swagger UI and ReDoc shipped in a package, not loaded from a CDN:
    # /docs works on a machine with no internet.
    app = FastAPIOffline(
        title="todo-chat",
        version="0.1.0",
        description="Manage a todo list by chatting with an agent, over MCP, or over REST.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.verifier = verifier
    app.state.chat = chat_service
    app.state.chatkit = chatkit_server
    app.state.jobs = jobs
    app.state.events = hub
    install_error_handlers(app)

    app.state.rate_limits = limits
    app.add_exception_handler(RateLimitExceeded, rate_limited)

    task_routes, toggle_route = tasks.build_routers()
    chat_route = chat.build_router()
    api = APIRouter(prefix="/api", responses=API_ERRORS)
    api.include_router(task_routes)
    api.include_router(chat_route)
    api.include_router(conversations.build_router())
    api.include_router(events.build_router())
    app.include_router(api)

    # The same routes under /api/{user_id} for Better Auth + Next.js frontends.
    per_user = APIRouter(
        prefix="/api/{user_id}", dependencies=[Depends(path_user)], responses=API_ERRORS
    )
    per_user.include_router(task_routes)
    per_user.include_router(toggle_route)
    per_user.include_router(chat_route)
    app.include_router(
        per_user, tags=["per-user paths"], generate_unique_id_function=_alias_operation_id
    )
    app.include_router(chatkit.build_router(), responses=API_ERRORS)
    chatkit.document(app)
    app.include_router(health.router)
    if settings.web_ui_enabled:
        web.install(app)
    if settings.metrics_enabled:
        metrics.install(app)

    # /mcp and its RFC 9728 metadata go to the MCP SDK's app (with its auth middleware);
    # every other path stays with FastAPI and its JSON errors.
    limited_mcp = RateLimitedMCP(mcp_app, verifier, limits)

    async def resource_metadata(_: Request) -> JSONResponse:
        return protected_resource_metadata(settings)

    for route in mcp_app.routes:
        if isinstance(route, Route) and route.path == "/mcp":
            app.router.routes.append(Route(route.path, endpoint=limited_mcp))
        elif isinstance(route, Route) and route.path.startswith("/.well-known/"):
            app.router.routes.append(Route(route.path, endpoint=resource_metadata))

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Accept",
                "Mcp-Protocol-Version",
                "X-Timezone",
                "Last-Event-ID",
                "X-Request-ID",
            ],
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
        )
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(LastResort)  # it sees every exception
    app.add_middleware(RequestContext)  # outermost: it times, counts and logs every answer
    return app
