"""`todo-chat` command line: serve, token, migrate, mcp."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from datetime import timedelta

from server.settings import Settings

_TTL = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_ttl(value: str) -> timedelta:
    match = _TTL.match(value.strip())
    if not match:
        raise argparse.ArgumentTypeError("use a number and a unit, e.g. 30m, 12h, 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def load_settings() -> Settings:
    settings = Settings().with_dev_secret()
    settings.check_production()
    return settings


async def _migrate(settings: Settings) -> None:
    from server.database import create_engine
    from server.migrate import upgrade

    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def cmd_migrate(_: argparse.Namespace) -> None:
    settings = load_settings()
    asyncio.run(_migrate(settings))
    print("database schema is up to date", file=sys.stderr)


def cmd_token(args: argparse.Namespace) -> None:
    from server.auth import issue_token

    settings = load_settings()
    if not settings.better_auth_secret:
        raise SystemExit(
            "no BETTER_AUTH_SECRET to sign with (JWKS-only setups get tokens from the issuer)"
        )
    claims = {}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    print(issue_token(settings.better_auth_secret, args.user_id, ttl=args.ttl, **claims))


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from server.app import create_app

    settings = load_settings()
    asyncio.run(_migrate(settings))
    base = f"http://{args.host}:{args.port}"
    print(
        f"todo-chat listening on {base}  (database: {settings.database_url.split('@')[-1]}, "
        f"model: {settings.agent_provider})\n"
        f"  API docs:  {base}/docs\n"
        f"  a token:   uv run todo-chat token alice\n"
        f'  try it:    curl -H "Authorization: Bearer $(uv run todo-chat token alice)" '
        f"{base}/api/tasks",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="todo-chat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API, MCP and chat server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    token = commands.add_parser("token", help="print a JWT for a user, signed with the secret")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=parse_ttl, default=timedelta(days=7), help="e.g. 30m, 12h, 7d")
    token.set_defaults(func=cmd_token)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    migrate.set_defaults(func=cmd_migrate)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args.func(args)


if __name__ == "__main__":
    main()
