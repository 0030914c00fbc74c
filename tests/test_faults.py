"""Faults a client must survive: races on one task, a database that is not there, a crash in
a route, a chat turn that fails half-way and is sent again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from mcp import Client

from mcp_tools.identity import fixed_user
from mcp_tools.server import build_mcp_server
from server.app import create_app
from server.settings import Settings
from tests.conftest import SECRET, auth, client_for
from tests.fake_openai import FakeOpenAI, Step
from tests.live import free_port, running, served

H = dict[str, str]


async def create(client: httpx.AsyncClient, headers: H, title: str) -> dict[str, Any]:
    response = await client.post("/api/tasks", json={"title": title}, headers=headers)
    assert response.status_code == 201
    return dict(response.json())


# ---------------------------------------------------------------- races


async def test_racing_changes_and_deletes_of_one_task(live_url: str, alice: H) -> None:
    async with httpx.AsyncClient(base_url=live_url, headers=alice) as client:
        for round_ in range(3):
            task = await create(client, alice, f"contested {round_}")
            path = f"/api/tasks/{task['id']}"
            calls = [
                *(client.post(f"{path}/complete") for _ in range(4)),
                *(client.post(f"{path}/reopen") for _ in range(4)),
                *(client.patch(path, json={"title": f"renamed {i}"}) for i in range(4)),
                *(client.patch(f"/api/alice{path}/complete") for _ in range(2)),
                *(client.delete(path) for _ in range(4)),
            ]
            responses = await asyncio.gather(*calls)
            codes = [response.status_code for response in responses]
            assert set(codes) <= {200, 204, 404}, codes
            assert codes[-4:].count(204) == 1, "exactly one delete wins; the others are 404"
            assert (await client.get(path)).status_code == 404
            for response in responses:
                if response.status_code == 200:
                    body = response.json()
                    assert body["completed"] == (body["completed_at"] is not None)


async def test_concurrent_toggles_leave_a_consistent_task(
    client: httpx.AsyncClient, alice: H
) -> None:
    task = await create(client, alice, "flip")
    path = f"/api/alice/tasks/{task['id']}/complete"
    responses = await asyncio.gather(*(client.patch(path, headers=alice) for _ in range(9)))
    assert all(response.status_code == 200 for response in responses)
    final = (await client.get(f"/api/tasks/{task['id']}", headers=alice)).json()
    assert final["completed"] is True, "nine toggles from pending end completed"
    assert final["completed_at"] is not None


# ---------------------------------------------------------------- no database


@pytest.fixture
async def no_database(tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/gone",
        better_auth_secret=SECRET,
        data_dir=tmp_path,
        rate_limit_enabled=False,
    )
    async with running(create_app(settings)) as app:
        yield app


async def test_an_unreachable_database_is_503_with_retry_after(
    no_database: FastAPI, alice: H
) -> None:
    transport = httpx.ASGITransport(app=no_database)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for method, path, body in [
            ("GET", "/api/tasks", None),
            ("POST", "/api/tasks", {"title": "x"}),
            ("GET", "/api/tasks/1", None),
            ("DELETE", "/api/tasks/1", None),
            ("GET", "/api/conversations", None),
            ("POST", "/api/chat", {"message": "add milk"}),
        ]:
            response = await client.request(method, path, json=body, headers=alice)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["Retry-After"] == "2"
            assert response.json()["error"] == "unavailable"
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"] == "not_ready"
    server = build_mcp_server(no_database.state.db, no_database.state.settings, fixed_user("a"))
    async with Client(server) as mcp:
        result = await mcp.call_tool("add_task", {"title": "x"})
        assert result.is_error
        assert "database is unavailable" in result.content[0].text  # type: ignore[union-attr]


# ---------------------------------------------------------------- the last resort


async def test_a_crash_is_a_json_500_with_a_request_id_and_the_connection_lives_on(
    settings: Settings, clean_database: None, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    async with served(app) as url:
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = []
        for path in ("/boom", "/healthz"):
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            length = int(head.lower().split("content-length: ")[1].split("\r\n")[0])
            answers.append((head.split(" ")[1], json.loads(await reader.readexactly(length))))
        writer.close()
    (status, body), (next_status, _) = answers
    assert status == "500" and body["error"] == "internal_error"
    assert body["request_id"] in body["detail"]
    assert any(body["request_id"] in record.getMessage() for record in caplog.records)
    assert next_status == "200", "the same keep-alive connection answers the next request"


# ---------------------------------------------------------------- chat retries


@pytest.fixture
async def llm(
    make_settings: Callable[..., Settings], fake: FakeOpenAI, clean_database: None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(openai_base_url=fake.url, agent_model="m", agent_timeout=10)  # type: ignore[attr-defined]
    async with client_for(settings) as client:
        yield client


@pytest.mark.parametrize("stream", [False, True])
async def test_retrying_a_failed_turn_does_not_repeat_its_tool_calls(
    llm: httpx.AsyncClient, fake: FakeOpenAI, alice: H, stream: bool
) -> None:
    headers = {**alice, "Accept": "text/event-stream"} if stream else alice
    add = Step(tool="add_task", arguments={"title": "buy milk"})
    fake.script = [add]  # the tool runs, then the model fails (an empty script answers 500)
    failed = await llm.post("/api/chat", json={"message": "add buy milk"}, headers=headers)
    if stream:
        assert '"status": 502' in failed.text
        conversation_id = json.loads(failed.text.split("data: ", 1)[1].split("\n")[0])[
            "conversation_id"
        ]
    else:
        assert failed.status_code == 502
        conversation_id = failed.json()["conversation_id"]
    tasks = (await llm.get("/api/tasks", headers=alice)).json()["data"]
    assert [task["title"] for task in tasks] == ["buy milk"]
    url = f"/api/conversations/{conversation_id}/messages"
    [message] = (await llm.get(url, headers=alice)).json()["data"]
    assert message["failed"] is True
    assert [call["name"] for call in message["tool_calls"]] == ["add_task"]

    fake.script = [add, Step(text="Added buy milk.")]  # the model asks for the same call again
    retry = await llm.post(
        "/api/chat",
        json={"message": "add buy milk", "conversation_id": conversation_id},
        headers=alice,
    )
    assert retry.status_code == 200, retry.text
    assert retry.json()["tool_calls"][0]["result"]["task_id"] == tasks[0]["id"]
    tasks = (await llm.get("/api/tasks", headers=alice)).json()["data"]
    assert [task["title"] for task in tasks] == ["buy milk"], "the retry did not add it again"
    messages = (await llm.get(url, headers=alice)).json()["data"]
    assert [(m["role"], m["failed"]) for m in messages] == [("user", False), ("assistant", False)]


async def test_concurrent_identical_messages_are_each_stored_and_answered(
    client: httpx.AsyncClient, alice: H
) -> None:
    first = await client.post("/api/chat", json={"message": "hello"}, headers=alice)
    conversation_id = first.json()["conversation_id"]
    body = {"message": "add water the plants", "conversation_id": conversation_id}
    responses = await asyncio.gather(
        *(client.post("/api/chat", json=body, headers=alice) for _ in range(5))
    )
    assert [response.status_code for response in responses] == [200] * 5
    url = f"/api/conversations/{conversation_id}/messages"
    messages = (await client.get(url, headers=alice)).json()["data"]
    assert sum(m["role"] == "user" and m["content"] == body["message"] for m in messages) == 5
    assert sum(m["role"] == "assistant" for m in messages) == 6
    tasks = (await client.get("/api/tasks", headers=alice)).json()["data"]
    assert len(tasks) == 5, "five messages, five tasks: none of them was taken for a retry"


async def test_a_failed_turn_names_its_conversation(
    llm: httpx.AsyncClient, fake: FakeOpenAI
) -> None:
    headers = auth("carol")
    failed = await llm.post("/api/chat", json={"message": "hi"}, headers=headers)
    assert failed.status_code == 502
    listed = (await llm.get("/api/conversations", headers=headers)).json()["data"]
    assert failed.json()["conversation_id"] == listed[0]["id"]


async def test_hundreds_of_open_chat_streams_do_not_stop_rest(
    make_settings: Callable[..., Settings], fake: FakeOpenAI, clean_database: None, alice: H
) -> None:
    streams = 200
    fake.script = [Step(sleep=6, text="late") for _ in range(streams)]
    settings = make_settings(openai_base_url=fake.url, agent_model="m", agent_timeout=10)  # type: ignore[attr-defined]
    limits = httpx.Limits(max_connections=streams + 20)
    opened = 0

    async def hold_stream(client: httpx.AsyncClient, all_open: asyncio.Event) -> None:
        nonlocal opened
        headers = {**alice, "Accept": "text/event-stream"}
        body = {"message": "slow one"}
        async with client.stream("POST", "/api/chat", json=body, headers=headers) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: conversation"):
                    opened += 1
                    if opened == streams:
                        all_open.set()
                    await asyncio.sleep(30)  # idle: the client holds the stream open

    async with (
        served(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client,
    ):
        all_open = asyncio.Event()
        holders = [asyncio.create_task(hold_stream(client, all_open)) for _ in range(streams)]
        await asyncio.wait_for(all_open.wait(), timeout=30)
        for _ in range(10):
            response = await client.get("/api/tasks", headers=alice, timeout=5)
            assert response.status_code == 200
            created = await client.post("/api/tasks", json={"title": "still here"}, headers=alice)
            assert created.status_code == 201
        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
