"""todo-chat: serve the API, print tokens, migrate the database, serve MCP over stdio."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import re
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import FrameType

import uvicorn
from pydantic import ValidationError

from server.logs import setup_logging
from server.settings import Settings

_TTL = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_ttl(value: str) -> timedelta:
    match = _TTL.match(value.strip())
    if not match:
        raise argparse.ArgumentTypeError("use a number and a unit, e.g. 30m, 12h, 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def load_settings() -> Settings:
    """The settings, or one line per mistake in them (not a traceback)."""
    try:
        settings = Settings().with_dev_secret()
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            if error["loc"]
            # A rule across settings names them itself.
            else f"  {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        ]
        raise SystemExit("configuration error:\n" + "\n".join(lines)) from None
    settings.check_production()
    return settings


async def _migrate(settings: Settings) -> str:
    from server.database import create_engine
    from server.migrate import describe, upgrade

    try:
        engine = create_engine(settings.database_url)
    except Exception as exc:  # a URL that cannot be a database
        raise SystemExit(f"DATABASE_URL is not usable: {exc}") from None
    try:
        return describe(*await upgrade(engine))
    except Exception as exc:  # no server, no such database, wrong password, ...
        where = settings.database_url.split("@")[-1]
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"cannot use the database at {where}: {reason}") from None
    finally:
        await engine.dispose()


def cmd_migrate(_: argparse.Namespace) -> None:
    print(asyncio.run(_migrate(load_settings())), file=sys.stderr)


async def _work(settings: Settings, host: str, port: int | None) -> None:
    from fastapi import FastAPI

    from server import metrics
    from server.database import Database
    from server.jobs import Jobs

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)  # the pass in progress finishes, then exit 0
    db = Database(settings.database_url, pool_size=2)
    serving = None
    if port:
        # The worker's own /metrics (reminders and webhook deliveries are counted here) and
        # a /healthz for liveness probes.
        app = FastAPI(openapi_url=None)
        app.state.settings, app.state.db = settings, db
        app.get("/healthz", include_in_schema=False)(_alive)
        metrics.install(app)
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        server = _Quiet(config)
        serving = asyncio.create_task(server.serve())
    try:
        await Jobs(db, settings).run(stop)
    finally:
        if serving is not None:
            server.should_exit = True
            await serving
        await db.dispose()


async def _alive() -> dict[str, str]:
    return {"status": "ok"}


class _Quiet(uvicorn.Server):
    """uvicorn inside a process that handles its signals itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def cmd_worker(args: argparse.Namespace) -> None:
    """The reminder and webhook sender on its own, for deployments that run `serve` with
    BACKGROUND_JOBS=false; any number of workers may run."""
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    print(asyncio.run(_migrate(settings)), file=sys.stderr)
    webhook = settings.events_webhook_url or "none"
    where = f", metrics on {args.host}:{args.port}/metrics" if args.port else ""
    print(f"todo-chat worker: reminders on, webhook {webhook}{where}", file=sys.stderr, flush=True)
    asyncio.run(_work(settings, args.host, args.port))


def user_id(value: str) -> str:
    """A user id the server will accept as a token's `sub`."""
    from server.models import OWNER_MAX

    if not value or not value.isprintable() or len(value) > OWNER_MAX:
        raise argparse.ArgumentTypeError(
            f"a user id is 1 to {OWNER_MAX} printable characters, e.g. alice"
        )
    return value


def cmd_token(args: argparse.Namespace) -> None:
    from server.auth import MAX_TOKEN_LIFETIME, issue_token

    settings = load_settings()
    if not settings.better_auth_secret:
        raise SystemExit(
            "no BETTER_AUTH_SECRET to sign with (JWKS-only setups get tokens from the issuer)"
        )
    if args.ttl > MAX_TOKEN_LIFETIME:
        raise SystemExit("a token may live a year at most (the server refuses longer ones)")
    claims = {}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    print(issue_token(settings.better_auth_secret, args.user_id, ttl=args.ttl, **claims))


def served_at(settings: Settings, host: str, port: int) -> Settings:
    """Without PUBLIC_URL, clients reach the server where it listens: that is the URL the MCP
    metadata advertises."""
    if "public_url" in settings.model_fields_set:
        return settings
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return settings.model_copy(update={"public_url": f"http://{shown}:{port}"})


def _check_port_free(host: str, port: int) -> None:
    """Say so before anything else, rather than a banner and then uvicorn's error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SystemExit(
                f"cannot listen on {host}:{port}: {exc.strerror} (choose another with --port)"
            ) from None


def _page_line(settings: Settings) -> str:
    """In development, a link that opens the chat page signed in; elsewhere just the page."""
    if not settings.web_ui_enabled:
        return ""
    if settings.environment == "development" and settings.better_auth_secret:
        from server.web import sign_in_link

        return f"  chat page: {sign_in_link(settings)}\n"
    return f"  chat page: {settings.public_url.rstrip('/')}/\n"


def cmd_serve(args: argparse.Namespace) -> None:
    from server.app import create_app

    settings = served_at(load_settings(), args.host, args.port)
    setup_logging(settings.log_level, settings.log_format)
    _check_port_free(args.host, args.port)
    asyncio.run(_migrate(settings))
    # The address people reach: PUBLIC_URL when set (behind a proxy, or 0.0.0.0 in a container).
    base = settings.public_url.rstrip("/")
    print(
        f"todo-chat listening on {base}  (database: {settings.database_url.split('@')[-1]}, "
        f"model: {settings.agent_provider})\n"
        f"{_page_line(settings)}"
        f"  API docs:  {base}/docs\n"
        f"  a token:   uv run todo-chat token alice\n"
        f'  try it:    curl -H "Authorization: Bearer $(uv run todo-chat token alice)" '
        f"{base}/api/tasks",
        file=sys.stderr,
        flush=True,
    )
    app = create_app(settings)
    # The objects made at start-up (the app, the libraries) live as long as the process: keep
    # the collector from walking them again, and collect less often. Under load this gave
    # 10-20 % more requests per second and a shorter latency tail (bench/, wrk at 100 clients).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level,
        log_config=None,  # logging is set up once, by `setup_logging`
        access_log=False,  # RequestContext logs each request, with its id
        proxy_headers=True,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    _Draining(config, app.state.events.close_streams).run()


class _Draining(uvicorn.Server):
    """uvicorn, plus: on SIGTERM or SIGINT the event streams end at once (with a hint to
    reconnect) instead of holding the shutdown for its whole grace period, and the process
    exits 0 once requests in flight have finished."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_exit)

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn raises the signal again once it has shut down; by default SIGTERM would then
        # end the process with status 143, as if it had been killed mid-request.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _exit_quietly)
        super().run(sockets)


def _exit_quietly(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


async def _stdio_user(settings: Settings, user: str | None) -> str:
    import os

    from server.auth import TokenVerifier
    from server.errors import Unauthorized

    if user:
        return user
    token = os.environ.get("TODO_CHAT_TOKEN", "")
    if not token:
        raise SystemExit("todo-chat mcp needs --user USER_ID or TODO_CHAT_TOKEN=<jwt>")
    verifier = TokenVerifier(settings)
    try:
        claims = await verifier.verify(token)
    except Unauthorized as exc:
        raise SystemExit(f"TODO_CHAT_TOKEN is not valid: {exc.detail}") from exc
    finally:
        await verifier.aclose()
    return str(claims["sub"])


async def _serve_stdio(settings: Settings, user: str | None) -> None:
    from mcp_tools.identity import fixed_user
    from mcp_tools.server import build_mcp_server
    from server.database import Database
    from server.migrate import upgrade

    user_id = await _stdio_user(settings, user)
    db = Database(settings.database_url, pool_size=2)
    try:
        await upgrade(db.engine)
        server = build_mcp_server(db, settings, fixed_user(user_id))
        await server.run_stdio_async()
    finally:
        await db.dispose()


def cmd_mcp(args: argparse.Namespace) -> None:
    # stdout carries JSON-RPC only: everything else goes to stderr.
    asyncio.run(_serve_stdio(load_settings(), args.user))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="todo-chat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API, MCP and chat server")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    serve.set_defaults(func=cmd_serve)

    token = commands.add_parser("token", help="print a JWT for a user, signed with the secret")
    token.add_argument("user_id", type=user_id)
    token.add_argument("--ttl", type=parse_ttl, default=timedelta(days=7), help="e.g. 30m, 12h, 7d")
    token.set_defaults(func=cmd_token)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    migrate.set_defaults(func=cmd_migrate)

    worker = commands.add_parser(
        "worker", help="send due reminders and webhook events, delete old events"
    )
    worker.add_argument(
        "--port", type=int, help="serve /metrics and /healthz on this port (none without it)"
    )
    worker.add_argument("--host", default="127.0.0.1", help="address for --port (127.0.0.1)")
    worker.set_defaults(func=cmd_worker)

    mcp = commands.add_parser(
        "mcp", help="serve the task tools over stdio (Claude Desktop, Claude Code) for one user"
    )
    mcp.add_argument(
        "--user", type=user_id, help="the user to act for (or set TODO_CHAT_TOKEN to a JWT)"
    )
    mcp.set_defaults(func=cmd_mcp)

    args = parser.parse_args(argv)
    setup_logging("warning")  # serve and worker set their own level and format
    args.func(args)


if __name__ == "__main__":
    main()
