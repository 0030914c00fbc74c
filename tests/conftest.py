"""Fixtures: every database test runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set.

Each test session migrates a database of its own (a fresh Postgres database, dropped at the end),
and each test starts from empty tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from server.app import create_app
from server.auth import issue_token
from server.database import create_engine, parse_database_url
from server.migrate import upgrade
from server.settings import Settings
from tests.fake_openai import FakeOpenAI
from tests.live import running, served

SECRET = "test-secret-" + "0123456789abcdef" * 4
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TABLES = ("events", "messages", "conversations", "tasks")


def pytest_report_header(config: pytest.Config) -> str:
    postgres = "on" if TEST_DATABASE_URL else "off (set TEST_DATABASE_URL to run them)"
    redis = "on" if os.environ.get("TEST_REDIS_URL") else "off (set TEST_REDIS_URL to run them)"
    return f"todo-chat: PostgreSQL tests {postgres}; Redis tests {redis}"


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("CI") and not TEST_DATABASE_URL:
        raise pytest.UsageError("CI must set TEST_DATABASE_URL: PostgreSQL is not optional there")


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        yield url
        return
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    async with _fresh_postgres_database(TEST_DATABASE_URL) as url:
        yield url


class _fresh_postgres_database:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"todo_chat_test_{uuid.uuid4().hex[:12]}"

    async def __aenter__(self) -> str:
        admin = create_engine(self.admin_url)
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        await admin.dispose()
        url = make_url(self.admin_url).set(database=self.name)
        self.url = url.render_as_string(hide_password=False)
        engine = create_engine(self.url)
        await upgrade(engine)
        await engine.dispose()
        return self.url

    async def __aexit__(self, *exc: object) -> None:
        admin = create_engine(self.admin_url)
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        await admin.dispose()


async def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        if parse_database_url(url).is_postgres:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in TABLES:
                await conn.execute(text(f"DELETE FROM {table}"))
            await conn.execute(text("DELETE FROM sqlite_sequence"))
    await engine.dispose()


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "better_auth_secret": SECRET,
            "data_dir": tmp_path,
            "rate_limit_enabled": False,
            "db_pool_size": 5,
            # The reminder and webhook sender runs where a test asks for it.
            "background_jobs": False,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def clean_database(settings: Settings) -> None:
    await _empty_tables(settings.database_url)


@pytest.fixture
async def app(settings: Settings, clean_database: None) -> AsyncIterator[FastAPI]:
    async with running(create_app(settings)) as application:
        yield application


@pytest.fixture
async def live_url(settings: Settings, clean_database: None) -> AsyncIterator[str]:
    """The app under uvicorn on a loopback port: for tests about the wire."""
    async with served(create_app(settings)) as url:
        yield url


def http_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app built from `settings`, for tests that change a setting."""
    async with running(create_app(settings)) as app, http_client(app) as http:
        yield http


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as http:
        yield http


def make_token(user_id: str, *, ttl: timedelta = timedelta(hours=1), **claims: Any) -> str:
    return issue_token(SECRET, user_id, ttl=ttl, **claims)


def auth(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user_id)}"}


@pytest.fixture
def alice() -> dict[str, str]:
    return auth("alice")


@pytest.fixture
def bob() -> dict[str, str]:
    return auth("bob")


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    """A scripted OpenAI-compatible server over real HTTP; its base URL is `fake.url`."""
    server = FakeOpenAI()
    async with served(server.app()) as url:
        server.url = f"{url}/v1"  # type: ignore[attr-defined]
        yield server


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Settings built in tests must not pick up a developer's OPENAI_API_KEY or .env.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DATABASE_URL", "BETTER_AUTH_SECRET"):
        monkeypatch.delenv(name, raising=False)
    yield
