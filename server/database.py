"""Engine and session factory; translation of the database URLs people paste."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from pydantic_core import from_json
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    create_async_engine,
)
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from server.errors import DatabaseUnreachable

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
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # Transactions are begun below, not by the driver.
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Any) -> None:
    """A transaction takes SQLite's write lock at its start (waiting for it up to the busy
    timeout). A deferred one that reads and then writes fails at once if another write
    landed in between; one that waits can read, decide, and write safely."""
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# How asyncpg says that the server is not there (any more). Connecting also fails with plain
# OSErrors (refused, unreachable, timed out): those count only where asyncpg connects or
# sends, never around the code that runs between statements.
_DRIVER_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    DatabaseUnreachable,
)
_CONNECTING_FAILED = (OSError, *_DRIVER_LOST)


@dataclass(frozen=True)
class _Compiled:
    statement: ClauseElement
    sql: str
    names: list[str]  # the bindparams in the order of $1, $2, ...
    defaults: dict[str, Any]  # values fixed in the statement itself


class Database:
    """The one way the services run SQL: statements built once, run with new values.

    A service builds each statement once (a module constant, or cached by its shape) with
    named `bindparam`s, and runs it with `rows()` (one statement, atomic on its own, no
    BEGIN/COMMIT round trips) or inside `transaction()` (several statements). On PostgreSQL
    SQLAlchemy compiles each statement once and the SQL goes straight through an asyncpg pool,
    which skips SQLAlchemy's per-execution work (about half the CPU of a REST request). On
    SQLite the statements run through SQLAlchemy.
    """

    def __init__(self, raw_url: str, *, pool_size: int = 10) -> None:
        self.url = parse_database_url(raw_url)
        self.is_postgres = self.url.is_postgres
        # On PostgreSQL the engine only serves migrations and the health check.
        self.engine = create_engine(raw_url, pool_size=2 if self.is_postgres else pool_size)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        # Requests wait for a connection in the order they came. asyncpg's pool queue lets a
        # newcomer take a connection that was just handed to a waiter, which then goes to the
        # back of the line: at 100 clients on 10 connections that made a few requests wait
        # seconds while most waited milliseconds. asyncio's Semaphore is first come, first
        # served, and with one permit per connection the pool never makes anyone wait.
        self._turns = asyncio.Semaphore(pool_size)
        # SQLite has one writer at a time. Its transactions take the write lock when they begin
        # and wait for it by polling (sleeps of up to 100 ms), each holding a pooled connection
        # meanwhile: two hundred at once emptied the pool and timed out ("QueuePool limit
        # reached", then "database is locked"). In this process they queue here instead, first
        # come, first served, without a connection; other processes still meet the lock.
        self._sqlite_writes = asyncio.Lock()
        self._compiled: dict[int, _Compiled] = {}
        # Called after a transaction that wrote events commits on SQLite (the event hub).
        self.events_committed: Callable[[], None] = lambda: None

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        await self.engine.dispose()

    async def rows(
        self, statement: ClauseElement, params: dict[str, Any], *, plan_per_call: bool = False
    ) -> list[dict[str, Any]]:
        """Run one statement with these values for its bindparams; its rows as dicts.

        asyncpg keeps each statement prepared on its connection, and after five runs
        PostgreSQL may switch it to a generic plan that ignores the values. Where the values
        decide the plan (a text search, a tag), `plan_per_call` prepares the statement anew,
        so it is planned for these values: at 50,000 tasks a search takes 12 ms, not 55.
        """
        if not self.is_postgres:
            async with self._autocommit.connect() as connection:
                return await Transaction(self, connection).rows(statement, params)
        async with self._driver() as connection:
            return await Transaction(self, connection).rows(statement, params, plan_per_call)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """`async with db.transaction() as tx:` statements run by `tx.rows()` commit together,
        or not at all."""
        if not self.is_postgres:
            async with self._sqlite_writes:
                async with self.engine.begin() as connection:
                    tx = Transaction(self, connection)
                    yield tx
                if tx.wrote_events:
                    # PostgreSQL says so to every process (NOTIFY); SQLite tells this one.
                    self.events_committed()
            return
        async with self._driver() as connection, connection.transaction():
            yield Transaction(self, connection)

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._open_pool()
        async with self._turns:
            try:
                connection = await pool.acquire()
            except _CONNECTING_FAILED as exc:
                await pool.expire_connections()
                raise _unreachable(exc) from exc
            try:
                yield connection
            except _DRIVER_LOST as exc:
                # The server went away: every pooled connection is as dead as this one.
                await pool.expire_connections()
                if isinstance(exc, DatabaseUnreachable):
                    raise
                raise _unreachable(exc) from exc
            finally:
                await pool.release(connection)

    def compile(self, statement: ClauseElement) -> _Compiled:
        compiled = self._compiled.get(id(statement))
        if compiled is None:
            sql = statement.compile(dialect=self.engine.dialect)
            assert isinstance(sql, SQLCompiler)
            # The statement is kept in the entry, so its id cannot be reused by another.
            defaults = dict(sql.construct_params(_check=False))
            compiled = _Compiled(statement, str(sql), list(sql.positiontup or ()), defaults)
            self._compiled[id(statement)] = compiled
        return compiled

    def _connect_args(self) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        kwargs = {**kwargs, "timeout": 10, **self.url.connect_args}
        for sqlalchemy_only in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            kwargs.pop(sqlalchemy_only, None)
        return list(args), kwargs

    async def _open_pool(self) -> asyncpg.Pool:
        async with self._pool_lock:
            if self._pool is None:
                args, kwargs = self._connect_args()
                self._pool = await asyncpg.create_pool(
                    *args,
                    **kwargs,
                    min_size=0,
                    max_size=self._pool_size,
                    init=_json_codecs,
                    reset=_end_transaction,
                )
        return self._pool

    async def connect_alone(self) -> asyncpg.Connection:
        """PostgreSQL: a connection outside the pool, for as long as the caller holds it
        (a LISTEN needs its own)."""
        args, kwargs = self._connect_args()
        try:
            return await asyncpg.connect(*args, **kwargs)
        except _CONNECTING_FAILED as exc:
            raise _unreachable(exc) from exc

    def pool_connections(self) -> dict[str, int]:
        """How many connections are in use and idle (PostgreSQL's pool), for the metrics."""
        pool = self._pool
        if pool is None:
            return {"in_use": 0, "idle": 0, "max": self._pool_size}
        idle = pool.get_idle_size()
        return {"in_use": pool.get_size() - idle, "idle": idle, "max": self._pool_size}


class Transaction:
    """Runs statements on one connection: asyncpg's on PostgreSQL, SQLAlchemy's on SQLite."""

    def __init__(self, db: Database, connection: asyncpg.Connection | AsyncConnection) -> None:
        self._db = db
        self._connection = connection
        self.wrote_events = False

    async def rows(
        self, statement: ClauseElement, params: dict[str, Any], plan_per_call: bool = False
    ) -> list[dict[str, Any]]:
        connection = self._connection
        if isinstance(connection, AsyncConnection):
            result = await connection.execute(statement, params)  # type: ignore[call-overload]
            return [dict(row) for row in result.mappings()] if result.returns_rows else []
        compiled = self._db.compile(statement)
        args = [params.get(name, compiled.defaults.get(name)) for name in compiled.names]
        try:
            if plan_per_call:
                records = await (await connection.prepare(compiled.sql)).fetch(*args)
            else:
                records = await connection.fetch(compiled.sql, *args)
        except OSError as exc:  # the socket under asyncpg broke
            raise _unreachable(exc) from exc
        if not records:
            return []
        names = tuple(records[0].keys())  # a third faster than dict(record) for each row
        return [dict(zip(names, record, strict=True)) for record in records]

    async def one(self, statement: ClauseElement, params: dict[str, Any]) -> dict[str, Any] | None:
        rows = await self.rows(statement, params)
        return rows[0] if rows else None


def _unreachable(exc: BaseException) -> DatabaseUnreachable:
    return DatabaseUnreachable(f"database connection lost: {exc!r}")


async def _end_transaction(connection: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool: no open transaction.

    asyncpg's default also runs RESET ALL, UNLISTEN and friends, a round trip on every
    release; this code never changes session settings, listens or takes advisory locks.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def _json_codecs(connection: asyncpg.Connection) -> None:
    # What SQLAlchemy's asyncpg dialect does for JSON columns: Python values in and out.
    # pydantic's parser reads the short values of a row (tags) about 9x faster than json.loads.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=json.dumps, decoder=from_json, schema="pg_catalog"
        )
