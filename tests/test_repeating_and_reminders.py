"""Repeating tasks, reminders and task events, checked where they are hard: across a DST
change, under racing completes, in several processes, after a crash, and over the wire."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.app import create_app
from server.database import Database
from server.jobs import _CLAIM_REMINDERS, Jobs
from server.models import TaskCreate, TaskUpdate
from server.services import events as outbox
from server.settings import Settings
from server.tasks import TaskService
from tests.conftest import client_for
from tests.live import served

SECRET = "whsec_" + base64.b64encode(b"todo-chat-webhook-test-secret-32b").decode()
TODO_CHAT = str(Path(sys.executable).parent / "todo-chat")
PARIS = ZoneInfo("Europe/Paris")
H = dict[str, str]


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


class Receiver:
    """An operator's webhook endpoint: checks every signature and keeps what arrived."""

    def __init__(self, fail_first: int = 0) -> None:
        self.verifier = Webhook(SECRET)
        self.fail_first = fail_first
        self.received: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.bad = 0

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        try:
            event = self.verifier.verify(body, dict(request.headers))
        except Exception:
            self.bad += 1
            return Response(status_code=400)
        if self.fail_first > 0:
            self.fail_first -= 1
            return Response(status_code=503)
        self.ids.append(request.headers["webhook-id"])
        self.received.append(event)
        return Response(status_code=204)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.received if event["type"] == kind]

    async def wait_for(self, kind: str, count: int, seconds: float = 20) -> list[dict[str, Any]]:
        for _ in range(int(seconds * 10)):
            if len(self.of_type(kind)) >= count:
                await asyncio.sleep(0.5)  # and nothing more arrives
                return self.of_type(kind)
            await asyncio.sleep(0.1)
        pytest.fail(f"{len(self.of_type(kind))} of {count} {kind} events arrived")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver()
    async with served(hook.app()) as url:
        yield hook, f"{url}/hook"


# ---------------------------------------------------------------- repeating tasks


async def test_a_daily_task_stays_at_nine_in_paris_across_the_dst_change(
    client: httpx.AsyncClient, alice: H
) -> None:
    # 27 March 2027, 09:00 in Paris is 08:00 UTC; the clocks go forward on the 28th.
    created = await client.post(
        "/api/tasks",
        json={
            "title": "Stretch",
            "due": "2027-03-27T08:00:00Z",
            "recurrence": "daily",
            "timezone": "Europe/Paris",
        },
        headers=alice,
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["recurrence"] == "FREQ=DAILY" and task["repeats"] == "every day"
    upcoming = await client.get(f"/api/tasks/{task['id']}/occurrences?limit=3", headers=alice)
    local = [datetime.fromisoformat(d).astimezone(PARIS) for d in upcoming.json()["due"]]
    assert [(d.day, d.hour) for d in local] == [(28, 9), (29, 9), (30, 9)]
    assert [d.utcoffset() for d in local] == [timedelta(hours=2)] * 3

    done = await client.post(f"/api/tasks/{task['id']}/complete", headers=alice)
    assert done.status_code == 200
    tasks = (await client.get("/api/tasks?status=all&sort=due", headers=alice)).json()["data"]
    assert [(t["completed"], t["series_id"]) for t in tasks] == [
        (True, task["id"]),
        (False, task["id"]),
    ]
    following = datetime.fromisoformat(tasks[1]["due"]).astimezone(PARIS)
    assert (following.day, following.hour, following.utcoffset()) == (28, 9, timedelta(hours=2))


async def test_racing_completes_make_one_next_occurrence(
    settings: Settings, clean_database: None, alice: H
) -> None:
    # Two app instances, each with its own connections, as two processes would be.
    async with client_for(settings) as one, client_for(settings) as two:
        created = await one.post(
            "/api/tasks",
            json={"title": "Water the plants", "due": soon(3600), "recurrence": "every monday"},
            headers=alice,
        )
        path = f"/api/tasks/{created.json()['id']}/complete"
        results = await asyncio.gather(*(c.post(path, headers=alice) for c in (one, two) * 4))
        assert {r.status_code for r in results} == {200}
        tasks = (await one.get("/api/tasks?status=all", headers=alice)).json()["data"]
        assert sorted(t["completed"] for t in tasks) == [False, True], "exactly one next"
        kinds = [e["type"] for e in await _events(settings, "alice")]
        assert kinds.count("task.completed") == 1 and kinds.count("task.occurrence_created") == 1


async def test_racing_changes_of_one_task_each_apply_once(
    settings: Settings, clean_database: None, alice: H
) -> None:
    # Each toggle flips what the task is when it applies. A change decided from a version that
    # another change replaced in between must be decided again (on PostgreSQL it is written
    # only if the row is still the version it read), or a flip is lost.
    async with client_for(settings) as one, client_for(settings) as two:
        task = (await one.post("/api/tasks", json={"title": "Flip"}, headers=alice)).json()
        path = f"/api/alice/tasks/{task['id']}/complete"
        renames = [
            c.patch(f"/api/tasks/{task['id']}", json={"title": f"Flip {n}"}, headers=alice)
            for n, c in enumerate((one, two) * 3)
        ]
        results = await asyncio.gather(
            *(c.patch(path, headers=alice) for c in (one, two) * 6), *renames
        )
        assert {r.status_code for r in results} == {200}
        final = (await one.get(f"/api/tasks/{task['id']}", headers=alice)).json()
    kinds = [e["type"] for e in await _events(settings, "alice")]
    assert kinds.count("task.completed") == 6 and kinds.count("task.reopened") == 6
    assert kinds.count("task.updated") == 6 and final["completed"] is False
    flips = [k for k in kinds if k in ("task.completed", "task.reopened")]
    assert flips == ["task.completed", "task.reopened"] * 6, "each flip from the one before"


async def test_stop_skip_and_delete_the_series(client: httpx.AsyncClient, alice: H) -> None:
    body = {"title": "Standup", "due": soon(3600), "recurrence": "every weekday"}
    first = (await client.post("/api/tasks", json=body, headers=alice)).json()
    await client.post(f"/api/tasks/{first['id']}/complete", headers=alice)
    [second] = (await client.get("/api/tasks?status=pending", headers=alice)).json()["data"]

    # Deleting the open occurrence skips it: the series goes on with the one after.
    assert (await client.delete(f"/api/tasks/{second['id']}", headers=alice)).status_code == 204
    [third] = (await client.get("/api/tasks?status=pending", headers=alice)).json()["data"]
    assert third["due"] > second["due"] and third["series_id"] == first["id"]
    history = (await client.get("/api/tasks?status=completed", headers=alice)).json()["data"]
    assert [t["id"] for t in history] == [first["id"]], "the completion stays visible"
    repeating = (await client.get("/api/tasks?repeating=true", headers=alice)).json()["data"]
    assert {t["id"] for t in repeating} == {first["id"], third["id"]}

    # Stop repeating: completing it makes nothing more.
    stopped = await client.patch(
        f"/api/tasks/{third['id']}", json={"recurrence": None}, headers=alice
    )
    assert stopped.json()["recurrence"] is None and stopped.json()["repeats"] is None
    await client.post(f"/api/tasks/{third['id']}/complete", headers=alice)
    assert (await client.get("/api/tasks?status=pending", headers=alice)).json()["data"] == []

    # Deleting the series takes every occurrence, done or not.
    gone = await client.delete(f"/api/tasks/{first['id']}?series=true", headers=alice)
    assert gone.status_code == 204
    assert (await client.get("/api/tasks?status=all", headers=alice)).json()["data"] == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"recurrence": "every second"}, "could not read"),
        ({"recurrence": "FREQ=HOURLY"}, "DAILY, WEEKLY, MONTHLY or YEARLY"),
        ({"recurrence": "FREQ=DAILY;INTERVAL=0"}, "INTERVAL"),
        ({"recurrence": "daily", "due": None}, "needs a due date"),
        ({"remind_at": "2020-01-01T00:00:00Z"}, "in the past"),
        ({"remind_before": 30, "due": None}, "needs a due date"),
        ({"recurrence": "daily", "timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"remind_before": -5}, "greater than or equal"),
    ],
)
async def test_bad_rules_and_reminders_are_422_and_store_nothing(
    client: httpx.AsyncClient, alice: H, body: dict[str, Any], says: str
) -> None:
    full = {"title": "Something", "due": soon(3600), **body}
    refused = await client.post("/api/tasks", json=full, headers=alice)
    assert refused.status_code == 422 and says in refused.text, refused.text
    assert (await client.get("/api/tasks", headers=alice)).json()["data"] == []
    task = (await client.post("/api/tasks", json={"title": "Plain"}, headers=alice)).json()
    patched = await client.patch(f"/api/tasks/{task['id']}", json=body, headers=alice)
    assert patched.status_code == 422
    assert (await client.get(f"/api/tasks/{task['id']}", headers=alice)).json() == task


# ---------------------------------------------------------------- the outbox


async def _events(settings: Settings, user: str) -> list[dict[str, Any]]:
    db = Database(settings.database_url)
    try:
        return [outbox.payload(row) for row in await outbox.since(db, user, 0, limit=1000)]
    finally:
        await db.dispose()


async def test_every_change_has_its_event_and_a_rolled_back_one_none(
    settings: Settings, client: httpx.AsyncClient, alice: H
) -> None:
    task = (await client.post("/api/tasks", json={"title": "Buy milk"}, headers=alice)).json()
    path = f"/api/tasks/{task['id']}"
    await client.patch(path, json={"title": "Buy oat milk"}, headers=alice)
    await client.post(f"{path}/complete", headers=alice)
    await client.post(f"{path}/complete", headers=alice)  # no change: no event
    await client.post(f"{path}/reopen", headers=alice)
    await client.delete(path, headers=alice)
    kinds = [(e["type"], e["task"]["title"]) for e in await _events(settings, "alice")]
    assert kinds == [
        ("task.created", "Buy milk"),
        ("task.updated", "Buy oat milk"),
        ("task.completed", "Buy oat milk"),
        ("task.reopened", "Buy oat milk"),
        ("task.deleted", "Buy oat milk"),
    ]

    # A change whose event cannot be written does not happen either.
    other = (await client.post("/api/tasks", json={"title": "Call mom"}, headers=alice)).json()
    async with refusing_events(settings) as db:
        with pytest.raises(Exception, match="refuse_all"):
            await TaskService(db, "alice").set_completed(other["id"], True)
    again = (await client.get(f"/api/tasks/{other['id']}", headers=alice)).json()
    assert again["completed"] is False
    assert [e["type"] for e in await _events(settings, "alice")][-1] == "task.created"


async def test_an_event_carries_the_task_as_the_api_answered_it(
    settings: Settings, client: httpx.AsyncClient, alice: H
) -> None:
    # On PostgreSQL a new task and its event are one statement, the event made from the values
    # before the row exists: it must still read exactly as the answer (UTC times, labels).
    body = {
        "title": "Dentist",
        "description": "bring the card",
        "priority": "high",
        "tags": ["health"],
        "due": "2027-03-01T09:30:00+01:00",
        "remind_before": 45,
    }
    created = (await client.post("/api/tasks", json=body, headers=alice)).json()
    plain = (await client.post("/api/tasks", json={"title": "Milk"}, headers=alice)).json()
    path = f"/api/tasks/{created['id']}"
    changed = (await client.patch(path, json={"tags": []}, headers=alice)).json()
    renamed = {"title": "Dentist at 9", "priority": "low", "description": None}
    both = (await client.patch(path, json=renamed, headers=alice)).json()
    same = await client.patch(path, json={"title": "Dentist at 9"}, headers=alice)  # no event
    assert same.status_code == 200 and same.json() == both
    done = (await client.post(f"{path}/complete", headers=alice)).json()
    events = [(e["type"], e["task"]) for e in await _events(settings, "alice")]
    assert events == [
        ("task.created", created),
        ("task.created", plain),
        ("task.updated", changed),
        ("task.updated", both),
        ("task.completed", done),
    ]
    assert (
        created["due"] == "2027-03-01T08:30:00Z" and created["remind_at"] == "2027-03-01T07:45:00Z"
    )


async def test_a_task_whose_event_the_database_refuses_is_not_made(
    settings: Settings, client: httpx.AsyncClient, alice: H
) -> None:
    async with refusing_events(settings) as db:
        with pytest.raises(Exception, match="refuse_all"):
            await TaskService(db, "alice").create(TaskCreate(title="Never"))
    assert (await client.get("/api/tasks", headers=alice)).json()["data"] == []
    task = (await client.post("/api/tasks", json={"title": "Milk"}, headers=alice)).json()
    async with refusing_events(settings) as db:
        with pytest.raises(Exception, match="refuse_all"):
            await TaskService(db, "alice").update(task["id"], TaskUpdate(title="Oat milk"))
    assert (await client.get(f"/api/tasks/{task['id']}", headers=alice)).json() == task


async def test_an_event_stored_as_its_row_reads_as_the_task_in_any_session_zone(
    settings: Settings, client: httpx.AsyncClient, alice: H
) -> None:
    """A change written in one statement stores its row as PostgreSQL's `to_jsonb` renders
    it, which writes timestamps in the session's zone; delivered, it is the API's task."""
    db = Database(settings.database_url)
    if not db.is_postgres:
        await db.dispose()
        pytest.skip("only PostgreSQL writes an event from the row")
    body = {"title": "Dentist", "due": "2027-03-01T09:30:00+01:00", "remind_before": 45}
    task = (await client.post("/api/tasks", json=body, headers=alice)).json()
    try:
        async with db.engine.connect() as connection:
            await connection.exec_driver_sql("SET TIME ZONE 'Asia/Tokyo'")
            result = await connection.exec_driver_sql(
                f"SELECT to_jsonb(tasks) FROM tasks WHERE id = {int(task['id'])}"
            )
            row = result.scalar_one()
    finally:
        await db.dispose()
    assert row["due"].endswith("+09:00") and row["priority"] == 0
    stored = {"id": 1, "type": "task.updated", "owner_id": "alice", "data": {"row": row}}
    assert outbox.payload(stored | {"created_at": datetime.now(UTC)})["task"] == task


@asynccontextmanager
async def refusing_events(settings: Settings) -> AsyncIterator[Database]:
    """A database whose events table refuses every new row, as a failing outbox write."""
    db = Database(settings.database_url)
    if db.is_postgres:
        refuse = "ALTER TABLE events ADD CONSTRAINT refuse_all CHECK (false) NOT VALID"
        allow = "ALTER TABLE events DROP CONSTRAINT refuse_all"
    else:
        refuse = (
            "CREATE TRIGGER refuse_all BEFORE INSERT ON events "
            "BEGIN SELECT RAISE(ABORT, 'refuse_all'); END"
        )
        allow = "DROP TRIGGER refuse_all"
    async with db.engine.begin() as connection:
        await connection.exec_driver_sql(refuse)
    try:
        yield db
    finally:
        async with db.engine.begin() as connection:
            await connection.exec_driver_sql(allow)
        await db.dispose()


async def test_the_event_stream_is_live_across_processes_and_resumes(
    settings: Settings, clean_database: None, alice: H, bob: H
) -> None:
    fast = settings.model_copy(update={"events_poll_seconds": 0.1})
    async with (
        served(create_app(fast)) as url,
        client_for(fast) as other_process,
        httpx.AsyncClient(base_url=url, headers=alice, timeout=10) as http,
    ):
        if True:
            async with http.stream("GET", "/api/events") as stream:
                lines = stream.aiter_lines()
                assert await anext(lines) == "retry: 2000"
                await other_process.post("/api/tasks", json={"title": "Bob's"}, headers=bob)
                made = await other_process.post("/api/tasks", json={"title": "Mine"}, headers=alice)
                event = await asyncio.wait_for(_next_event(lines), timeout=5)
            assert event["type"] == "task.created" and event["task"]["title"] == "Mine"
            assert event["user_id"] == "alice", "bob's events are not in alice's stream"

            # Reconnecting with Last-Event-ID misses nothing that happened meanwhile.
            task_path = f"/api/tasks/{made.json()['id']}"
            await other_process.post(f"{task_path}/complete", headers=alice)
            await other_process.delete(task_path, headers=alice)
            resume = {"Last-Event-ID": str(event["id"])}
            async with http.stream("GET", "/api/events", headers=resume) as stream:
                lines = stream.aiter_lines()
                missed = [await asyncio.wait_for(_next_event(lines), timeout=5) for _ in range(2)]
            assert [e["type"] for e in missed] == ["task.completed", "task.deleted"]
            assert missed[0]["id"] > event["id"]


async def _next_event(lines: AsyncIterator[str]) -> dict[str, Any]:
    async for line in lines:
        if line.startswith("data: "):
            return dict(json.loads(line.removeprefix("data: ")))
    raise AssertionError("the stream ended")


# ---------------------------------------------------------------- reminders and the webhook


async def test_reminders_are_sent_once_late_ones_marked(
    settings: Settings, clean_database: None, receiver: tuple[Receiver, str], alice: H
) -> None:
    hook, url = receiver
    fast = settings.model_copy(
        update={
            "events_webhook_url": url,
            "events_webhook_secret": SECRET,
            "reminder_lease_seconds": 1,
        }
    )
    async with client_for(fast) as client:
        on_time = await client.post(
            "/api/tasks", json={"title": "Call the bank", "remind_at": soon(60)}, headers=alice
        )
        assert on_time.status_code == 201
        late = await client.post(
            "/api/tasks", json={"title": "Pay rent", "remind_at": soon(3600)}, headers=alice
        )
        # One is due now; the server was down when the other was due, an hour ago. (Set
        # here: a time a moment ahead could be in the past by the time a busy machine reads it.)
        db = Database(fast.database_url)
        now = datetime.now(UTC)
        await db.rows(_set_remind_at(), {"task_id": on_time.json()["id"], "at": now})
        an_hour_ago = now - timedelta(hours=1)
        await db.rows(_set_remind_at(), {"task_id": late.json()["id"], "at": an_hour_ago})
        jobs = Jobs(db, fast)
        jobs.http = httpx.AsyncClient(timeout=5)
        assert await jobs.send_reminders() == 2
        assert await jobs.send_reminders() == 0, "sent once"
        await jobs.deliver_events()
        await jobs.http.aclose()
        await db.dispose()
    reminders = {e["task"]["title"]: e for e in hook.of_type("reminder.due")}
    assert set(reminders) == {"Call the bank", "Pay rent"}
    assert reminders["Call the bank"]["late"] is False and reminders["Pay rent"]["late"] is True
    assert hook.bad == 0 and len(hook.ids) == len(set(hook.ids))


def _set_remind_at() -> Any:
    from sqlalchemy import Integer, bindparam, update

    from server.models import Task, UTCDateTime

    table = Task.__table__  # type: ignore[attr-defined]
    return (
        update(table)
        .where(table.c.id == bindparam("task_id", type_=Integer()))
        .values(remind_at=bindparam("at", type_=UTCDateTime()))
    )


async def test_a_failed_delivery_is_retried_and_counted(
    settings: Settings, clean_database: None, alice: H
) -> None:
    hook = Receiver(fail_first=2)
    async with served(hook.app()) as base:
        webhook = {"events_webhook_url": f"{base}/hook", "events_webhook_secret": SECRET}
        sender = {"background_jobs": True, "events_poll_seconds": 0.1}
        async with client_for(settings.model_copy(update={**webhook, **sender})) as client:
            await client.post("/api/tasks", json={"title": "Buy milk"}, headers=alice)
            await asyncio.sleep(0.5)
            assert hook.received == [], "refused once, and not tried again at once"
            delivered = await hook.wait_for("task.created", 1, seconds=10)
            health = (await client.get("/healthz")).json()
    assert [e["task"]["title"] for e in delivered] == ["Buy milk"]
    assert health["webhook_failures"] == 2, "each failure is counted where it happened"


def _worker(settings: Settings, url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "BETTER_AUTH_SECRET": settings.better_auth_secret,
        "ENVIRONMENT": "test",
        "EVENTS_WEBHOOK_URL": url,
        "EVENTS_WEBHOOK_SECRET": SECRET,
        "EVENTS_POLL_SECONDS": "0.1",
        "REMINDER_LEASE_SECONDS": "1",
    }
    return subprocess.Popen([TODO_CHAT, "worker"], env=env, stderr=subprocess.DEVNULL)


async def test_two_worker_processes_send_each_reminder_once_even_after_a_crash(
    settings: Settings, clean_database: None, receiver: tuple[Receiver, str], alice: H
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("several processes share one PostgreSQL; SQLite is for one process")
    hook, url = receiver
    async with client_for(settings) as client:
        for n in range(12):
            body = {"title": f"Reminder {n}", "remind_at": soon(3 + (n % 3) * 0.2)}
            assert (await client.post("/api/tasks", json=body, headers=alice)).status_code == 201
        # A process claimed this one and died before sending it: its lease runs out.
        orphan = await client.post(
            "/api/tasks", json={"title": "Orphan", "remind_at": soon(60)}, headers=alice
        )
    db = Database(settings.database_url)
    now = datetime.now(UTC)
    await db.rows(_set_remind_at(), {"task_id": orphan.json()["id"], "at": now})
    claimed = await db.rows(_CLAIM_REMINDERS, {"now": now, "lease": now + timedelta(seconds=2)})
    await db.dispose()
    assert [row["id"] for row in claimed] == [orphan.json()["id"]]

    workers = [_worker(settings, url), _worker(settings, url)]
    try:
        reminders = await hook.wait_for("reminder.due", 13, seconds=30)
        created = await hook.wait_for("task.created", 13, seconds=10)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGINT)
        for worker in workers:
            worker.wait(timeout=10)
    titles = sorted(event["task"]["title"] for event in reminders)
    assert titles == sorted(["Orphan", *(f"Reminder {n}" for n in range(12))])
    assert len(created) == 13
    assert len(hook.ids) == len(set(hook.ids)), "no event delivered twice"
    assert hook.bad == 0, "every signature checked out"


async def test_the_offline_model_repeats_reminds_and_stops(
    client: httpx.AsyncClient, alice: H
) -> None:
    conversation: dict[str, Any] = {}

    async def say(message: str) -> str:
        body = {"message": message, "timezone": "Europe/Paris", **conversation}
        answer = (await client.post("/api/chat", json=body, headers=alice)).json()
        conversation["conversation_id"] = answer["conversation_id"]
        return str(answer["response"])

    async def tasks(status: str = "all") -> list[dict[str, Any]]:
        page = await client.get(f"/api/tasks?status={status}&sort=due", headers=alice)
        return list(page.json()["data"])

    reply = await say("remind me every monday at 9 to water the plants")
    assert "repeating every week on Monday" in reply, reply
    [plants] = await tasks()
    due = datetime.fromisoformat(plants["due"]).astimezone(PARIS)
    assert (plants["recurrence"], due.weekday(), due.hour) == ("FREQ=WEEKLY;BYDAY=MO", 0, 9)
    assert plants["remind_at"] == plants["due"], "reminded at the time itself"

    await say("add dentist appointment on friday at 3pm")
    await say("remind me 30 minutes before the dentist")
    dentist = next(t for t in await tasks() if t["title"] == "Dentist appointment")
    assert dentist["remind_before"] == 30
    gap = datetime.fromisoformat(dentist["due"]) - datetime.fromisoformat(dentist["remind_at"])
    assert gap == timedelta(minutes=30)

    listed = await say("what repeats?")
    assert "Water the plants" in listed and "Dentist" not in listed

    # Ticking it off brings next week's.
    await say("mark the plants task done")
    pending = [t for t in await tasks("pending") if t["title"] == "Water the plants"]
    assert len(pending) == 1
    following = datetime.fromisoformat(pending[0]["due"]).astimezone(PARIS)
    assert following - due == timedelta(days=7) and following.hour == 9

    reply = await say("stop repeating the plants task")
    assert "no longer repeats" in reply, reply
    assert [
        t["recurrence"] for t in await tasks("pending") if t["title"] == "Water the plants"
    ] == [None]
