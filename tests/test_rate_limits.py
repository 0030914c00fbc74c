"""Per-user rate limits: separate budgets, headers, nothing stored when refused, Redis sharing."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.conftest import SECRET, auth, client_for
from tests.live import free_port, served

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
needs_redis = pytest.mark.skipif(not TEST_REDIS_URL, reason="TEST_REDIS_URL is not set")


@pytest.fixture
def limited(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values = {
            "rate_limit_enabled": True,
            "rate_limit_rest": "3/minute",
            "rate_limit_chat": "2/minute;5/day",
            "rate_limit_anonymous": "2/minute",
            "rate_limit_mcp": "3/minute",
        }
        return make_settings(**{**values, **overrides})

    return make


@pytest.fixture
async def client(
    limited: Callable[..., Settings], clean_database: None
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(limited()) as http:
        yield http


def user() -> tuple[str, dict[str, str]]:
    # A fresh user per test keeps counts apart, also in a Redis shared between runs.
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    return user_id, auth(user_id)


async def test_over_the_limit_is_429_with_headers(client: httpx.AsyncClient) -> None:
    _, headers = user()
    remaining = []
    for _ in range(3):
        response = await client.get("/api/tasks", headers=headers)
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "3"
        assert int(response.headers["x-ratelimit-reset"]) > 0
        remaining.append(response.headers["x-ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]
    refused = await client.get("/api/tasks", headers=headers)
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "rate_limited" and "retry in" in body["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 61
    assert refused.headers["x-ratelimit-remaining"] == "0"


async def test_users_are_independent(client: httpx.AsyncClient) -> None:
    (_, alice), (_, bob) = user(), user()
    for _ in range(3):
        assert (await client.get("/api/tasks", headers=alice)).status_code == 200
    assert (await client.get("/api/tasks", headers=alice)).status_code == 429
    assert (await client.get("/api/tasks", headers=bob)).status_code == 200


async def test_rest_routes_share_one_budget_and_chat_has_its_own(client: httpx.AsyncClient) -> None:
    _, headers = user()
    created = await client.post("/api/tasks", json={"title": "x"}, headers=headers)
    assert created.status_code == 201
    task_id = created.json()["id"]
    assert (await client.get(f"/api/tasks/{task_id}", headers=headers)).status_code == 200
    assert (await client.get("/api/conversations", headers=headers)).status_code == 200
    assert (await client.delete(f"/api/tasks/{task_id}", headers=headers)).status_code == 429
    chat = await client.post("/api/chat", json={"message": "what's pending?"}, headers=headers)
    assert chat.status_code == 200, "the chat budget is separate"
    assert chat.headers["x-ratelimit-limit"] == "2"


async def test_a_refused_chat_message_is_not_stored(client: httpx.AsyncClient) -> None:
    user_id, headers = user()
    first = await client.post("/api/chat", json={"message": "add buy milk"}, headers=headers)
    conversation_id = first.json()["conversation_id"]
    body = {"message": "add call mom", "conversation_id": conversation_id}
    # The /api/{user_id} path spends the same chat budget.
    second = await client.post(f"/api/{user_id}/chat", json=body, headers=headers)
    assert second.status_code == 200
    refused = await client.post(
        "/api/chat", json={**body, "message": "add walk the dog"}, headers=headers
    )
    assert refused.status_code == 429
    messages = await client.get(f"/api/conversations/{conversation_id}/messages", headers=headers)
    contents = [m["content"] for m in messages.json()["data"] if m["role"] == "user"]
    assert contents == ["add buy milk", "add call mom"]
    tasks = await client.get("/api/tasks", headers=headers)
    assert tasks.status_code == 200 and "Walk the dog" not in tasks.text


async def test_requests_without_a_valid_token_have_a_budget_per_address(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(2):
        assert (await client.get("/api/tasks")).status_code == 401
    assert (
        await client.get("/api/tasks", headers={"Authorization": "Bearer junk"})
    ).status_code == 429
    _, headers = user()
    assert (await client.get("/api/tasks", headers=headers)).status_code == 200


async def test_mcp_tool_calls_are_limited_per_user_and_the_handshake_is_free(
    limited: Callable[..., Settings], clean_database: None
) -> None:
    _, headers = user()
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "list_tasks", "arguments": {}},
    }
    mcp_headers = {
        **headers,
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    async with served(create_app(limited())) as url, httpx.AsyncClient(base_url=url) as http:
        for _ in range(5):  # more than the limit of 3: listing tools does no work
            response = await http.post("/mcp", json=listing, headers=mcp_headers)
            assert response.status_code == 200, response.text
        for remaining in ("2", "1", "0"):
            response = await http.post("/mcp", json=call, headers=mcp_headers)
            assert response.status_code == 200, response.text
            assert response.headers["x-ratelimit-remaining"] == remaining
        refused = await http.post("/mcp", json=call, headers=mcp_headers)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"] == "rate_limited"
        _, other = user()
        assert (
            await http.post("/mcp", json=call, headers={**mcp_headers, **other})
        ).status_code == 200


async def test_get_mcp_is_405_not_a_silent_stream(
    limited: Callable[..., Settings], clean_database: None
) -> None:
    _, headers = user()
    async with served(create_app(limited())) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.get(
            "/mcp", headers={**headers, "Accept": "text/event-stream"}, timeout=5
        )
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error"] == "method_not_allowed"


# ---------------------------------------------------------------- Redis


def app_process(
    port: int, settings: Settings, tmp_path: Path, **env: str
) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "todo-chat"), "serve", "--port", str(port)]
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env={
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "BETTER_AUTH_SECRET": SECRET,
            "DATA_DIR": str(tmp_path),
            "LOG_LEVEL": "warning",
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_ready(url: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(150):
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not start")


@needs_redis
async def test_two_processes_share_one_count_through_redis(
    settings: Settings, clean_database: None, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    env = {"RATE_LIMIT_STORAGE_URI": TEST_REDIS_URL, "RATE_LIMIT_REST": "4/minute"}
    processes = [app_process(port, settings, tmp_path, **env) for port in ports]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        await asyncio.gather(*(wait_ready(url) for url in urls))
        _, headers = user()
        async with httpx.AsyncClient() as http:
            statuses = [
                (await http.get(f"{urls[i % 2]}/api/tasks", headers=headers)).status_code
                for i in range(6)
            ]
        assert statuses == [200, 200, 200, 200, 429, 429]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)


class PrivateRedis:
    """A redis-server of the test's own, so that stopping it disturbs nothing else."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        if TEST_REDIS_URL:
            pytest.fail("redis-server is needed for the fallback test when TEST_REDIS_URL is set")
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


async def statuses(client: httpx.AsyncClient, headers: dict[str, str], count: int) -> list[int]:
    return [(await client.get("/api/tasks", headers=headers)).status_code for _ in range(count)]


async def test_redis_down_falls_back_to_memory_and_comes_back(
    limited: Callable[..., Settings],
    clean_database: None,
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = limited(rate_limit_storage_uri=private_redis.url, rate_limit_rest="4/minute")
    await asyncio.sleep(0.3)  # redis-server accepting connections
    async with client_for(settings) as first, client_for(settings) as second:
        _, shared = user()
        assert await statuses(first, shared, 2) + await statuses(second, shared, 3) == [
            200,
            200,
            200,
            200,
            429,
        ], "two apps, one count in Redis"

        private_redis.stop()
        caplog.set_level(logging.INFO, logger="slowapi")
        _, during = user()
        assert await statuses(first, during, 5) == [200, 200, 200, 200, 429], (
            "limits hold in memory"
        )
        assert await statuses(second, during, 1) == [200], "each process counts on its own"
        assert sum("falling back" in r.message for r in caplog.records) == 2

        private_redis.start()
        _, probe = user()
        for _ in range(100):  # SlowAPI retries Redis with a growing back-off
            await first.get("/api/tasks", headers=probe)
            await second.get("/api/tasks", headers=probe)
            if sum("recovered" in r.message for r in caplog.records) >= 2:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the limiter never went back to Redis")
        _, after = user()
        assert await statuses(first, after, 2) + await statuses(second, after, 3) == [
            200,
            200,
            200,
            200,
            429,
        ], "shared again once Redis is back"


async def test_a_storage_that_fails_after_counting_never_fails_the_request(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis can drop between counting a request and reading its window for the headers:
    the request is still served (without the headers) and its change is made once."""
    app = client._transport.app  # type: ignore[attr-defined]
    window = app.state.rate_limits.limiter.limiter

    def gone(*_: object) -> None:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(window, "get_window_stats", gone)
    _, headers = user()
    created = await client.post("/api/tasks", json={"title": "paid"}, headers=headers)
    assert created.status_code == 201, created.text
    assert "x-ratelimit-remaining" not in created.headers
    listed = (await client.get("/api/tasks", headers=headers)).json()["data"]
    assert [task["title"] for task in listed] == ["paid"]


async def test_redis_stopped_under_write_load_gives_no_error_and_loses_no_write(
    limited: Callable[..., Settings], clean_database: None, private_redis: PrivateRedis
) -> None:
    settings = limited(rate_limit_storage_uri=private_redis.url, rate_limit_rest="1000/minute")
    await asyncio.sleep(0.3)  # redis-server accepting connections
    _, headers = user()
    async with client_for(settings) as http:

        async def write(index: int) -> tuple[int, str]:
            response = await http.post("/api/tasks", json={"title": f"w{index}"}, headers=headers)
            return response.status_code, response.text

        first = await asyncio.gather(*(write(i) for i in range(20)))
        stopping = asyncio.get_running_loop().run_in_executor(None, private_redis.stop)
        second = await asyncio.gather(*(write(i) for i in range(20, 60)))
        await stopping
        third = await asyncio.gather(*(write(i) for i in range(60, 80)))
        results = [*first, *second, *third]
        assert {status for status, _ in results} == {201}, [r for r in results if r[0] != 201]
        titles = {
            task["title"]
            for task in (await http.get("/api/tasks?limit=100", headers=headers)).json()["data"]
        }
        assert titles == {f"w{i}" for i in range(80)}
