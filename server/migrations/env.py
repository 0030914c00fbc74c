"""Alembic environment: runs on a connection handed in by `server.migrate`, or on its own."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import server.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from server.database import create_engine
from server.migrate import include_object

config = context.config
target_metadata = SQLModel.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone() -> None:
    from server.settings import Settings

    engine = create_engine(Settings().database_url)
    async with engine.begin() as connection:
        await connection.run_sync(run_on)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run_on(connection)
elif context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported")
else:
    asyncio.run(run_standalone())
