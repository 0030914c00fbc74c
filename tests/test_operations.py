"""Running it as a service: metrics, JSON logs with request ids, caps, retention, and
processes that stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from server.app import create_app
from server.database import Database, create_engine
from server.jobs import Jobs
from server.logs import JSONFormatter, setup_logging
from server.models import utcnow
from server.settings import Settings
from tests.conftest import client_for, make_token
from tests.live import free_port, served
from tests.test_cli import TODO_CHAT

H = dict[str, str]
FAMILIES = {
    "todochat_http_requests",
    "todochat_http_request_duration_seconds",
    "todochat_http_requests_in_flight",
    "todochat_mcp_tool_calls",
    "todochat_chat_turns",
    "todochat_model_request_duration_seconds",
    "todochat_rate_limited",
    "todochat_event_streams_open",
    "todochat_events_undelivered",
    "todochat_events_oldest_undelivered_age_seconds",
    "todochat_reminders_sent",
    "todochat_webhook_deliveries",
    "todochat_db_pool_connections",
}


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


async def scrape(client: httpx.AsyncClient, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


# ---------------------------------------------------------------- metrics


async def test_metrics_count_requests_by_route_template_never_by_user_or_raw_path(
    settings: Settings, clean_database: None, alice: H
) -> None:
    async with client_for(settings) as client:
        before = samples(await scrape(client))
        made = await client.post("/api/tasks", json={"title": "Water plants"}, headers=alice)
        task_id = made.json()["id"]
        await client.get(f"/api/tasks/{task_id}", headers=alice)
        await client.get(f"/api/alice/tasks/{task_id}", headers=alice)
        await client.get("/api/tasks/999999", headers=alice)
        await client.get("/no/such/page")
        exposition = await scrape(client)
    names = {family.name for family in text_string_to_metric_families(exposition)}
    assert names >= FAMILIES
    after = samples(exposition)

    def grew(route: str, status: str, method: str = "GET") -> float:
        key = (
            "todochat_http_requests_total",
            (("method", method), ("route", route), ("status", status)),
        )
        return after.get(key, 0) - before.get(key, 0)

    assert grew("/api/tasks", "201", "POST") == 1
    assert grew("/api/tasks/{task_id}", "200") == 1
    assert grew("/api/tasks/{task_id}", "404") == 1
    assert grew("/api/{user_id}/tasks/{task_id}", "200") == 1
    assert grew("unmatched", "404") == 1
    assert "alice" not in exposition and "Water plants" not in exposition
    assert str(task_id) not in {label for key in after for _, label in key[1]}


async def test_metrics_count_tool_calls_chat_turns_and_rate_limits(
    make_settings: Callable[..., Settings], clean_database: None, alice: H
) -> None:
    limited = make_settings(rate_limit_enabled=True, rate_limit_chat="2/minute")
    async with client_for(limited) as client:
        before = samples(await scrape(client))
        for message in ("add buy milk", "show my tasks", "add call mum"):
            await client.post("/api/chat", json={"message": message}, headers=alice)
        after = samples(await scrape(client))

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("todochat_chat_turns_total", outcome="ok") == 2
    assert grew("todochat_rate_limited_total", scope="chat") == 1
    assert grew("todochat_mcp_tool_calls_total", tool="add_task", outcome="ok") == 1
    assert grew("todochat_mcp_tool_calls_total", tool="list_tasks", outcome="ok") == 1
    assert grew("todochat_model_request_duration_seconds_count") >= 2  # one a turn at least


async def test_a_metrics_token_is_required_when_set(
    make_settings: Callable[..., Settings], clean_database: None
) -> None:
    guarded = make_settings(metrics_token="m" * 32)
    async with client_for(guarded) as client:
        refused = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        await scrape(client, Authorization=f"Bearer {'m' * 32}")
    assert refused.status_code == wrong.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    assert "/metrics" not in (await _openapi_paths(guarded))


async def _openapi_paths(settings: Settings) -> set[str]:
    async with client_for(settings) as client:
        return set((await client.get("/openapi.json")).json()["paths"])


async def test_a_scrape_without_the_database_still_answers(
    make_settings: Callable[..., Settings], clean_database: None
) -> None:
    gone = make_settings(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x",
        events_webhook_url="http://127.0.0.1:9/hook",
        events_webhook_secret="whsec_" + "A" * 32,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(gone)), base_url="http://test"
    ) as client:
        exposition = await scrape(client)
    assert "todochat_http_requests_total" in exposition


# ---------------------------------------------------------------- request ids and logs


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("4bf92f3577b34da6a3ce929d0e0e4736", True),
        ("req-2026.12.07:1", True),
        ("x" * 129, False),
        ("has space", False),
        ('quote"and{brace}', False),
        ("", False),
    ],
)
async def test_every_response_carries_a_request_id_a_sane_one_is_kept(
    client: httpx.AsyncClient, alice: H, given: str, kept: bool
) -> None:
    response = await client.get("/api/tasks", headers={**alice, "X-Request-ID": given})
    assert response.status_code == 200
    rid = response.headers["x-request-id"]
    assert (rid == given) is kept
    assert len(response.headers.get_list("x-request-id")) == 1
    if not kept:
        assert len(rid) == 32 and rid.isalnum()


async def test_json_logs_are_one_object_per_line_with_the_request(
    client: httpx.AsyncClient, alice: H, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="todo_chat.access"):
        response = await client.get("/api/tasks", headers={**alice, "X-Request-ID": "trace-7"})
    assert response.status_code == 200
    records = [r for r in caplog.records if r.name == "todo_chat.access"]
    line = json.loads(JSONFormatter().format(records[-1]))
    assert line["request_id"] == "trace-7"
    assert line["method"] == "GET" and line["route"] == "/api/tasks" and line["status"] == 200
    assert line["user_id"] == "alice" and line["level"] == "info"
    assert isinstance(line["duration_ms"], float) and "time" in line


def test_log_format_json_is_what_the_process_writes(tmp_path: Path) -> None:
    """`setup_logging("info", "json")`: every line on stderr parses as JSON, errors included."""
    script = (
        "import logging; from server.logs import setup_logging; "
        "setup_logging('info', 'json'); log = logging.getLogger('x'); log.info('hello %s', 1)\n"
        "try:\n    1/0\nexcept ZeroDivisionError:\n    log.exception('failed')\n"
    )
    done = subprocess.run(
        [str(Path(TODO_CHAT).parent / "python"), "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["message"] for line in lines] == ["hello 1", "failed"]
    assert "ZeroDivisionError" in lines[1]["error"]
    setup_logging("warning")  # back to what the test session had


# ---------------------------------------------------------------- caps and retention


async def test_per_user_caps_answer_409_naming_the_cap(
    make_settings: Callable[..., Settings], clean_database: None, alice: H, bob: H
) -> None:
    capped = make_settings(max_tasks_per_user=2, max_conversations_per_user=1)
    async with client_for(capped) as client:
        for title in ("one", "two"):
            assert (
                await client.post("/api/tasks", json={"title": title}, headers=alice)
            ).is_success
        refused = await client.post("/api/tasks", json={"title": "three"}, headers=alice)
        assert (await client.post("/api/tasks", json={"title": "b"}, headers=bob)).is_success
        first = await client.post("/api/chat", json={"message": "hello"}, headers=alice)
        second = await client.post("/api/chat", json={"message": "hello again"}, headers=alice)
        same = await client.post(
            "/api/chat",
            json={"message": "more", "conversation_id": first.json()["conversation_id"]},
            headers=alice,
        )
        listed = (await client.get("/api/tasks", headers=alice)).json()["data"]
    assert refused.status_code == 409
    assert refused.json()["error"] == "limit_reached"
    assert refused.json()["limit"] == 2 and refused.json()["limit_name"] == "tasks per user"
    assert [t["title"] for t in listed] == ["two", "one"], "nothing was half-written"
    assert first.status_code == 200 and same.status_code == 200
    assert second.status_code == 409 and second.json()["limit"] == 1


async def test_old_events_are_deleted_after_the_retention(
    make_settings: Callable[..., Settings], clean_database: None, alice: H
) -> None:
    settings = make_settings(events_retention_days=1)
    async with client_for(settings) as client:
        for title in ("old", "new"):
            await client.post("/api/tasks", json={"title": title}, headers=alice)
    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE events SET created_at = :then WHERE task_id = 1"),
            {"then": utcnow() - timedelta(days=2)},
        )
    jobs = Jobs(Database(settings.database_url, pool_size=2), settings)
    try:
        assert await jobs.purge_events() == 1
    finally:
        await jobs.db.dispose()
    async with engine.connect() as connection:
        left = (await connection.execute(text("SELECT task_id FROM events"))).scalars().all()
    await engine.dispose()
    assert left == [2]


# ---------------------------------------------------------------- SIGTERM


def _start(tmp_path: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TODO_CHAT, *args],
        cwd=tmp_path,
        env={**os.environ, "DATA_DIR": str(tmp_path), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(url: str, process: subprocess.Popen[str], path: str = "/healthz") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not start")


async def test_serve_ends_event_streams_and_exits_0_on_sigterm(
    settings: Settings, clean_database: None, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "DATABASE_URL": settings.database_url,
        "BETTER_AUTH_SECRET": settings.better_auth_secret,
        "SHUTDOWN_GRACE_SECONDS": "20",
    }
    server = _start(tmp_path, ["serve", "--port", str(port)], env)
    url = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(_wait_ready, url, server)
    token = {"Authorization": f"Bearer {make_token('alice')}"}
    async with (
        httpx.AsyncClient(base_url=url, headers=token, timeout=10) as http,
        http.stream("GET", "/api/events") as stream,
    ):
        lines = stream.aiter_lines()
        assert await anext(lines) == "retry: 2000"
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        rest = [line async for line in lines]
    assert "retry: 500" in rest, "the stream says when to reconnect"
    status = await asyncio.to_thread(server.wait, 20)
    assert status == 0, server.communicate()[0]
    assert time.monotonic() - started < 10, "no wait for the grace period"


async def test_worker_serves_metrics_and_exits_0_on_sigterm(
    settings: Settings, clean_database: None, tmp_path: Path
) -> None:
    port = free_port()
    env = {"DATABASE_URL": settings.database_url, "EVENTS_POLL_SECONDS": "0.2"}
    worker = _start(tmp_path, ["worker", "--port", str(port)], env)
    url = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(_wait_ready, url, worker)
    async with httpx.AsyncClient(timeout=5) as http:
        exposition = (await http.get(url + "/metrics")).text
    assert "# TYPE todochat_reminders_sent_total counter" in exposition
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 20) == 0, worker.communicate()[0]


async def test_served_app_streams_end_when_the_hub_closes(
    settings: Settings, clean_database: None, alice: H
) -> None:
    """The same hand-over without a process: `close_streams` ends open streams at once."""
    app = create_app(settings)
    async with (
        served(app) as url,
        httpx.AsyncClient(base_url=url, headers=alice, timeout=10) as http,
        http.stream("GET", "/api/events") as stream,
    ):
        lines = stream.aiter_lines()
        assert await anext(lines) == "retry: 2000"
        app.state.events.close_streams()
        rest = [line async for line in lines]
    assert rest[:2] == ["", "retry: 500"]
