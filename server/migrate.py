"""Bring a database's schema up to date with the Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
# Indexes that only PostgreSQL has (GIN, trigram; migration 0003): SQLAlchemy's models cannot
# say "on PostgreSQL only", so comparisons of models and database leave them out.
POSTGRES_ONLY_INDEXES = frozenset(
    {"ix_tasks_tags", "ix_tasks_title_trgm", "ix_tasks_description_trgm"}
)


def include_object(
    obj: object, name: str | None, kind: str, reflected: bool, compare_to: object
) -> bool:
    return not (kind == "index" and name in POSTGRES_ONLY_INDEXES)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> tuple[str | None, str | None]:
    """Run the migrations on the app's own engine (so inside a running event loop too);
    the schema's revision before and after."""

    def run(connection: Connection) -> tuple[str | None, str | None]:
        before = MigrationContext.configure(connection).get_current_revision()
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        return before, MigrationContext.configure(connection).get_current_revision()

    async with engine.begin() as connection:
        return await connection.run_sync(run)


def describe(before: str | None, after: str | None) -> str:
    if before == after:
        return f"database schema already current (revision {after})"
    if before is None:
        return f"database schema created (revision {after})"
    return f"database schema upgraded from revision {before} to {after}"
