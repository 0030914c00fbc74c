"""Engine and session factory; translation of the database URLs people paste."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
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
        # No pre-ping: it costs three round trips on every checkout. A connection that died
        # with the server fails its first statement instead; that request answers 503, and
        # SQLAlchemy then drops every pooled connection older than the failure, so the next
        # requests connect afresh (tested in tests/test_outage.py).
        return create_async_engine(
            parsed.url,
            # A server that does not answer at all fails in seconds, not asyncpg's 60.
            connect_args={"timeout": 10, **parsed.connect_args},
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=10,
        )
    database = parsed.url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(parsed.url, connect_args={"timeout": 30})
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """The engine, and an AUTOCOMMIT view of it for work that is one statement.

    A single INSERT/UPDATE/DELETE ... RETURNING or SELECT is atomic on its own; running it
    outside an explicit transaction saves the BEGIN and COMMIT/ROLLBACK round trips, which on
    the hot paths cost as much as the statement. Work of several statements uses `begin()`.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def connect(self) -> AsyncConnection:
        """A connection whose statements each commit on their own."""
        return self.autocommit.connect()

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """`async with db.begin() as connection:` one transaction, committed at the end."""
        return self.engine.begin()
