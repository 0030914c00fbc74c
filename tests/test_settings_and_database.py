"""Configuration and the database URLs people paste."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import literal, select, text

from server import database
from server.database import Database, create_engine, parse_database_url
from server.settings import Settings


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgres://u:p@host/db", "postgresql+asyncpg://u:p@host/db"),
        ("postgresql://u:p@host:5433/db", "postgresql+asyncpg://u:p@host:5433/db"),
        ("postgresql+asyncpg://u:p@host/db", "postgresql+asyncpg://u:p@host/db"),
        (
            "postgresql://neondb_owner:pw@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb"
            "?sslmode=require&channel_binding=require",
            "postgresql+asyncpg://neondb_owner:pw@ep-cool-darkness-123456.us-east-2.aws.neon.tech"
            "/neondb?ssl=require",
        ),
        ("sqlite:///./data/x.db", "sqlite+aiosqlite:///./data/x.db"),
    ],
)
def test_urls_are_translated_for_the_async_drivers(raw: str, expected: str) -> None:
    parsed = parse_database_url(raw)
    assert parsed.url.render_as_string(hide_password=False) == expected


def test_neon_pooled_endpoint_turns_the_statement_cache_off() -> None:
    pooled = parse_database_url(
        "postgresql://u:p@ep-x-123-pooler.eu-central-1.aws.neon.tech/neondb?sslmode=require"
    )
    assert pooled.url.query == {"ssl": "require"}
    assert pooled.connect_args["statement_cache_size"] == 0
    assert pooled.connect_args["prepared_statement_cache_size"] == 0
    names = {pooled.connect_args["prepared_statement_name_func"]() for _ in range(3)}
    assert len(names) == 3
    direct = parse_database_url("postgresql://u:p@ep-x-123.eu-central-1.aws.neon.tech/neondb")
    assert direct.connect_args == {}


def test_pgbouncer_flag_and_connect_timeout() -> None:
    parsed = parse_database_url("postgres://u@h/db?pgbouncer=true&connect_timeout=7")
    assert parsed.connect_args["statement_cache_size"] == 0
    assert parsed.connect_args["timeout"] == 7.0
    assert "pgbouncer" not in parsed.url.query


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        parse_database_url("mysql://u@h/db")


async def test_translated_url_really_connects(database_url: str) -> None:
    engine = create_engine(database_url.replace("postgresql+asyncpg://", "postgres://"))
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT 1"))).scalar() == 1
    await engine.dispose()


def test_default_database_is_a_local_sqlite_file(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'todo-chat.db'}"
    assert settings.agent_provider == "offline"


def test_lists_come_from_comma_separated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "http://localhost:3000, https://app.example")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.cors_origins == ["http://localhost:3000", "https://app.example"]


def test_dev_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    first = Settings(_env_file=None, data_dir=tmp_path).with_dev_secret()  # type: ignore[call-arg]
    second = Settings(_env_file=None, data_dir=tmp_path).with_dev_secret()  # type: ignore[call-arg]
    assert len(first.better_auth_secret) >= 32
    assert first.better_auth_secret == second.better_auth_secret
    assert (tmp_path / "dev-secret").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "change-me",
        "short",
        "your-secret-key-here-at-least-32-chars-long",
        "replace-me-with-a-long-random-string-of-64-chars",
        "x" * 40,
        " " * 40,
    ],
)
def test_production_refuses_a_missing_or_placeholder_secret(secret: str) -> None:
    settings = Settings(_env_file=None, environment="production", better_auth_secret=secret)  # type: ignore[call-arg]
    with pytest.raises(SystemExit, match="BETTER_AUTH_SECRET"):
        settings.check_production()
    assert settings.with_dev_secret().better_auth_secret == secret, (
        "no made-up secret in production"
    )


def test_production_accepts_a_real_secret_or_jwks() -> None:
    Settings(
        _env_file=None,
        environment="production",
        better_auth_secret="q7Vb2pK9mZt4Lw8Nc1Rf6Hy3Jd5Gs0Ua",
    ).check_production()  # type: ignore[call-arg]
    Settings(_env_file=None, environment="production", jwks_url="https://a/jwks").check_production()  # type: ignore[call-arg]


async def test_a_request_arriving_as_a_connection_is_freed_waits_its_turn(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncpg's pool queue hands a freed connection to whoever asks first after it is put
    # back, even if others have been waiting: under load (bench/, 100 clients on 10
    # connections) a few requests waited seconds. Here a newcomer arrives at exactly that
    # moment: while the pool resets a released connection, before it is put back.
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite connections are SQLAlchemy's pool, not asyncpg's")
    asked: list[int] = []
    served: list[int] = []
    running: list[asyncio.Task[None]] = []
    newcomers = iter(range(3, 10))

    async def request(number: int) -> None:
        asked.append(number)
        await db.rows(select(literal(number)), {})
        served.append(number)

    async def reset_then_newcomer(connection: Any) -> None:
        await reset(connection)
        number = next(newcomers, None)
        if number is not None:
            running.append(asyncio.create_task(request(number)))

    reset = database._end_transaction
    monkeypatch.setattr(database, "_end_transaction", reset_then_newcomer)
    db = Database(database_url, pool_size=1)
    try:
        running += [asyncio.create_task(request(number)) for number in range(3)]
        while not all(task.done() for task in running):
            await asyncio.gather(*running)
    finally:
        await db.dispose()
    assert len(served) == 10
    assert served == asked


async def test_sqlite_transactions_queue_in_the_process_not_on_pooled_connections(
    tmp_path: Path,
) -> None:
    """Many writers at once on SQLite: each waits its turn without holding a connection, so
    the pool never runs dry while one transaction works (waiting on SQLite's own lock, 40
    writers of 0.1 s emptied a pool whose checkout waits 1 s)."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}", pool_size=5)
    async with db.engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    db.engine.pool._timeout = 1  # type: ignore[attr-defined]

    async def write(i: int) -> None:
        async with db.transaction() as tx:
            await tx.rows(text("INSERT INTO t (v) VALUES (:v)"), {"v": str(i)})
            await asyncio.sleep(0.1)  # work inside the transaction, with the write lock

    try:
        await asyncio.gather(*(write(i) for i in range(40)))
        assert await db.rows(text("SELECT count(*) AS n FROM t"), {}) == [{"n": 40}]
    finally:
        await db.dispose()
