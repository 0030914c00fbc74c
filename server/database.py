"""Engine and session factory; translation of the database URLs people paste."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# libpq options that asyncpg does not take as keyword arguments.
_LIBPQ_ONLY = {"channel_binding", "gssencmode", "sslrootcert", "sslcert", "sslkey", "options"}


@dataclass(frozen=True)
class DatabaseURL:
    """A SQLAlchemy URL plus the driver arguments that cannot travel in it."""

    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)

    @property
    def is_postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"


def parse_database_url(raw: str) -> DatabaseURL:
    """Accept `postgres://`, `postgresql://`, Neon URLs with libpq options, and SQLite.

    asyncpg rejects libpq's `sslmode` and `channel_binding`; PgBouncer (Neon's `-pooler`
    hosts) in transaction mode breaks asyncpg's prepared statement cache, so it is turned off.
    """
    url = make_url(raw.strip())
    backend = url.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return _postgres_url(url)
    if backend == "sqlite":
        return DatabaseURL(url.set(drivername="sqlite+aiosqlite"))
    raise ValueError(
        f"unsupported database URL scheme {url.drivername!r}: use postgresql or sqlite"
    )


def _postgres_url(url: URL) -> DatabaseURL:
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    sslmode = query.pop("sslmode", None)
    if sslmode and "ssl" not in query:
        query["ssl"] = sslmode
    for key in _LIBPQ_ONLY:
        query.pop(key, None)
    if "connect_timeout" in query:
        connect_args["timeout"] = float(str(query.pop("connect_timeout")))
    pooled = "-pooler" in (url.host or "") or str(query.pop("pgbouncer", "")).lower() == "true"
    if pooled:
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        # Unique names keep PgBouncer from routing a statement to a connection that lacks it.
        connect_args["prepared_statement_name_func"] = lambda: f"__asyncpg_{uuid.uuid4()}__"
    return DatabaseURL(
        url.set(drivername="postgresql+asyncpg", query=query), connect_args=connect_args
    )


def create_engine(raw_url: str, *, pool_size: int = 10) -> AsyncEngine:
    parsed = parse_database_url(raw_url)
    if parsed.is_postgres:
        # A fixed pool: overflow connections are opened and closed under load, which costs
        # Postgres more CPU than the queries themselves.
        return create_async_engine(
            parsed.url,
            connect_args=parsed.connect_args,
            pool_size=pool_size,
            max_overflow=0,
            pool_pre_ping=True,
        )
    database = parsed.url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(parsed.url, connect_args={"timeout": 30}, pool_pre_ping=True)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
