"""Event streams: one reader per process, woken by NOTIFY (PostgreSQL) or its own commits
(SQLite), fanning out to every open stream; nothing lost to a dropped listener, a stray
notification or commits that land out of id order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select

from server.app import create_app
from server.database import Database
from server.models import Task, TaskCreate
from server.services.event_hub import EventHub
from server.services.events import emit
from server.settings import Settings
from server.tasks import TaskService
from tests.conftest import client_for
from tests.live import served

H = dict[str, str]
TASKS = Task.__table__  # type: ignore[attr-defined]


def _postgres_only(settings: Settings) -> None:
    if not Database(settings.database_url).is_postgres:
        pytest.skip("PostgreSQL's LISTEN/NOTIFY")


@asynccontextmanager
async def streams(url: str, headers: H, count: int) -> AsyncIterator[list[AsyncIterator[str]]]:
    """`count` open event streams of one user, each past its first line."""
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=url, headers=headers, timeout=30)
        )
        opened = await asyncio.gather(
            *(stack.enter_async_context(http.stream("GET", "/api/events")) for _ in range(count))
        )
        lines = [response.aiter_lines() for response in opened]
        for each in lines:
            assert await anext(each) == "retry: 2000"
        yield lines


async def next_event(lines: AsyncIterator[str], seconds: float = 5) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async for line in lines:
            if line.startswith("data: "):
                return dict(json.loads(line.removeprefix("data: ")))
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(read(), seconds)


async def until(condition: Callable[[], bool], seconds: float = 5) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_idle_streams_cost_no_queries_and_a_change_reaches_them_all(
    settings: Settings, clean_database: None, alice: H
) -> None:
    app = create_app(settings)
    hub: EventHub = app.state.events
    async with served(app) as url, client_for(settings) as other, streams(url, alice, 40) as all_:
        await until(lambda: hub.open_streams == 40)
        reads = hub.reads
        await asyncio.sleep(2.5)
        idle_reads = hub.reads - reads
        made = await other.post("/api/tasks", json={"title": "Water plants"}, headers=alice)
        got = await asyncio.gather(*(next_event(lines) for lines in all_))
    assert {event["task"]["id"] for event in got} == {made.json()["id"]}
    if hub.db.is_postgres:
        assert idle_reads == 0, "with a listener, nothing is read while nothing happens"
    else:
        assert idle_reads <= 3, "one slow poll a second for the process, not one per stream"


async def test_this_process_commits_wake_its_streams_without_waiting_for_a_poll(
    make_settings: Callable[..., Settings], clean_database: None, alice: H
) -> None:
    slow = make_settings(events_poll_seconds=30)
    app = create_app(slow)
    async with (
        served(app) as url,
        httpx.AsyncClient(base_url=url, headers=alice, timeout=10) as http,
        streams(url, alice, 1) as (lines,),
    ):
        await http.post("/api/tasks", json={"title": "Now"}, headers=alice)
        event = await next_event(lines, seconds=3)
    assert event["task"]["title"] == "Now"


async def test_a_stray_notification_and_a_dropped_listener_lose_nothing(
    settings: Settings, clean_database: None, alice: H
) -> None:
    _postgres_only(settings)
    app = create_app(settings)
    async with served(app) as url, client_for(settings) as other, streams(url, alice, 2) as all_:
        admin = await asyncpg.connect(settings.database_url)
        try:
            # Any database user may NOTIFY on the channel: the payload is not trusted.
            await admin.execute("NOTIFY todo_chat_events, 'DROP TABLE tasks; 99999999999'")
            await admin.execute("SELECT pg_notify('todo_chat_events', repeat('x', 7000))")
            first = await other.post("/api/tasks", json={"title": "one"}, headers=alice)
            assert [(await next_event(s))["task"]["id"] for s in all_] == [first.json()["id"]] * 2

            # The listener's connection dies; what is written before it is back is not lost.
            await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
            second = await other.post("/api/tasks", json={"title": "two"}, headers=alice)
            third = await other.post("/api/tasks", json={"title": "three"}, headers=alice)
            for lines in all_:
                got = [(await next_event(lines, seconds=10))["task"]["id"] for _ in range(2)]
                assert got == [second.json()["id"], third.json()["id"]]
        finally:
            await admin.close()


async def test_an_event_committed_after_a_later_one_is_still_delivered(
    settings: Settings, clean_database: None, alice: H
) -> None:
    """Ids are taken at insert and seen at commit: event N may become visible after N+1."""
    _postgres_only(settings)
    app = create_app(settings)
    writer = Database(settings.database_url, pool_size=2)
    early_done = asyncio.Event()
    slow: asyncio.Task[None] | None = None
    try:
        async with served(app) as url, streams(url, alice, 1) as (lines,):
            await TaskService(writer, "alice").create(TaskCreate(title="late"))
            assert (await next_event(lines))["type"] == "task.created"
            row = (await writer.rows(select(*TASKS.columns), {}))[0]

            async def slow_commit() -> None:
                async with writer.transaction() as tx:
                    await emit(tx, "task.updated", row | {"title": "slow"})
                    await early_done.wait()  # holds its id, uncommitted

            slow = asyncio.create_task(slow_commit())
            await asyncio.sleep(0.3)
            async with writer.transaction() as tx:
                await emit(tx, "task.updated", row | {"title": "fast"})
            fast = await next_event(lines)
            early_done.set()
            await slow
            late = await next_event(lines)
        assert fast["task"]["title"] == "fast" and late["task"]["title"] == "slow"
        assert late["id"] < fast["id"]
    finally:
        early_done.set()
        if slow is not None:
            await slow
        await writer.dispose()


async def test_a_slow_reader_catches_up_from_the_table(
    settings: Settings, clean_database: None, alice: H, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream that falls behind its queue reads what it missed from the table, in order."""
    monkeypatch.setattr("server.services.event_hub.QUEUE_MAX", 3)
    app = create_app(settings)
    async with served(app) as url, client_for(settings) as other, streams(url, alice, 1) as (s,):
        titles = [f"task {n}" for n in range(12)]
        for title in titles:
            await other.post("/api/tasks", json={"title": title}, headers=alice)
        got = [(await next_event(s))["task"]["title"] for _ in titles]
    assert got == titles
