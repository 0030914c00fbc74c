"""Bad input from a client or a model: a clear 4xx (or tool error) naming what is wrong, never
a 500, and nothing stored. REST, MCP and chat go through the same rules."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from mcp import Client

from mcp_tools.identity import fixed_user
from mcp_tools.inprocess import InProcessClient
from mcp_tools.server import build_mcp_server
from server.settings import Settings
from tests.conftest import SECRET, client_for, make_token

H = dict[str, str]
OUT_OF_RANGE = [0, -1, 2147483648, 99999999999999999999]


def forged(header: dict[str, Any], payload: dict[str, Any] | None = None) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part(header)}.{part(payload or {})}.AAAA"


async def all_tasks(client: httpx.AsyncClient, headers: H) -> list[dict[str, Any]]:
    response = await client.get("/api/tasks", params={"limit": 100}, headers=headers)
    assert response.status_code == 200
    return list(response.json()["data"])


# ---------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    "token",
    [
        forged({"alg": ["HS256"]}),
        forged({"alg": {"HS256": 1}}),
        forged({"alg": None}),
        forged({"alg": 256}),
        forged({"alg": "HS256", "kid": {"x": 1}}),
        forged({"alg": "HS256", "kid": ["a"]}),
        forged({"alg": "HS256", "typ": 7}),
        "eyJhbGciOiBbIkhTMjU2Il19.e30.AAAA",
        "not.a.token",
        "x" * 9000,
    ],
)
async def test_malformed_token_headers_are_401_on_every_surface(
    client: httpx.AsyncClient, token: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    for method, path in [("GET", "/api/tasks"), ("POST", "/api/chat"), ("GET", "/api/alice/tasks")]:
        response = await client.request(method, path, headers=headers, json={"message": "hi"})
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"] == "unauthorized"
    mcp = await client.post(
        "/mcp",
        headers={**headers, "Accept": "application/json, text/event-stream", "Host": "127.0.0.1"},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert mcp.status_code == 401


async def test_malformed_tokens_count_against_the_anonymous_limit(
    make_settings: Callable[..., Settings], clean_database: None
) -> None:
    settings = make_settings(rate_limit_enabled=True, rate_limit_anonymous="5/minute")
    headers = {"Authorization": f"Bearer {forged({'alg': ['HS256']})}"}
    async with client_for(settings) as client:
        codes = [(await client.get("/api/tasks", headers=headers)).status_code for _ in range(7)]
    assert codes == [401] * 5 + [429] * 2


async def test_a_token_living_longer_than_a_year_is_refused(client: httpx.AsyncClient) -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "alice", "iat": now, "exp": now + 400 * 86400}, SECRET, "HS256")
    response = await client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and "lifetime" in response.json()["detail"]


async def test_a_subject_with_control_characters_is_refused(client: httpx.AsyncClient) -> None:
    token = make_token("ali\x00ce")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/tasks", headers=headers)).status_code == 401


async def test_oversized_headers_are_431(client: httpx.AsyncClient, alice: H) -> None:
    response = await client.get("/api/tasks", headers={**alice, "X-Padding": "p" * 20_000})
    assert response.status_code == 431 and response.json()["error"] == "headers_too_large"


# ---------------------------------------------------------------- ids


@pytest.mark.parametrize("task_id", OUT_OF_RANGE)
async def test_ids_out_of_range_are_simply_not_found(
    client: httpx.AsyncClient, alice: H, task_id: int
) -> None:
    calls = [
        ("GET", f"/api/tasks/{task_id}", None),
        ("PATCH", f"/api/tasks/{task_id}", {"title": "x"}),
        ("PUT", f"/api/tasks/{task_id}", {"title": "x"}),
        ("DELETE", f"/api/tasks/{task_id}", None),
        ("POST", f"/api/tasks/{task_id}/complete", None),
        ("POST", f"/api/tasks/{task_id}/reopen", None),
        ("PATCH", f"/api/alice/tasks/{task_id}/complete", None),
        ("GET", f"/api/conversations/{task_id}/messages", None),
        ("DELETE", f"/api/conversations/{task_id}", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=alice)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == "not_found"
    chat = await client.post(
        "/api/chat", json={"message": "hi", "conversation_id": task_id}, headers=alice
    )
    assert chat.status_code in (404, 422), chat.text
    assert (await client.get("/api/conversations", headers=alice)).json()["data"] == []


# ---------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "a\x00b"}, "title"),
        ({"title": "ok", "description": "x\x00"}, "description"),
        ({"title": "ok", "tags": ["a\x00"]}, "tags.0"),
        ({"title": "bell\x07"}, "title"),
        ({"title": "\u200b\u200b \ufeff"}, "title"),
        ({"title": "ok", "tags": ["\u200b"]}, "tags.0"),
        ({"title": "ok", "due": "9999-12-31T23:59:59-10:00"}, "due"),
        ({"title": "ok", "due": "0001-01-01T00:00:00+10:00"}, "due"),
        ({"title": "ok", "due": "0001-01-01T00:00:00Z"}, "due"),
        ({"title": "ok", "due": "9999-12-31T00:00:00Z"}, "due"),
    ],
)
async def test_bad_text_and_dates_are_422_and_nothing_is_stored(
    client: httpx.AsyncClient, alice: H, body: dict[str, Any], field: str
) -> None:
    created = await client.post("/api/tasks", json=body, headers=alice)
    assert created.status_code == 422, created.text
    assert field in [f["field"] for f in created.json()["fields"]]
    assert await all_tasks(client, alice) == []
    task = (await client.post("/api/tasks", json={"title": "kept"}, headers=alice)).json()
    patched = await client.patch(f"/api/tasks/{task['id']}", json=body, headers=alice)
    assert patched.status_code == 422
    assert (await client.get(f"/api/tasks/{task['id']}", headers=alice)).json() == task


@pytest.mark.parametrize(
    "params",
    [
        {"q": "a\x00b"},
        {"tag": "a\x00"},
        {"due_before": "9999-12-31T23:59:59-10:00"},
        {"due_after": "0001-01-01T00:00:00+10:00"},
    ],
)
async def test_bad_filters_are_422(client: httpx.AsyncClient, alice: H, params: H) -> None:
    response = await client.get("/api/tasks", params=params, headers=alice)
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == next(iter(params))


@pytest.mark.parametrize(
    "cursor_value",
    [
        ["-created", {"dt": "2026-01-01T00:00:00"}, 5],  # naive datetime
        ["-created", {"dt": "9999-12-31T23:59:59-10:00"}, 5],
        ["-priority", True, 5],  # a boolean is not a priority
        ["-priority", 2, 2**40],  # an id no row can have
        ["-priority", 2, True],
        ["-created", {"dt": "2026-01-01T00:00:00Z"}, "7"],
        ["-created", "x"],
    ],
)
async def test_client_edited_cursors_are_422(
    client: httpx.AsyncClient, alice: H, cursor_value: list[Any]
) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(cursor_value).encode()).decode().rstrip("=")
    sort = cursor_value[0]
    response = await client.get(
        "/api/tasks", params={"cursor": cursor, "sort": sort}, headers=alice
    )
    assert response.status_code == 422, response.text
    assert "cursor" in response.json()["detail"]


@pytest.mark.parametrize(
    "timezone", ["Europe", "America", "Etc", "Factory", "../etc/passwd", "a\x00"]
)
async def test_unknown_timezones_are_422_in_chat(
    client: httpx.AsyncClient, alice: H, timezone: str
) -> None:
    response = await client.post(
        "/api/chat", json={"message": "add milk tomorrow", "timezone": timezone}, headers=alice
    )
    assert response.status_code == 422, response.text
    assert await all_tasks(client, alice) == []


@pytest.mark.parametrize("message", ["add a\x00b", "\u200b", "add \x1b[31mred"])
async def test_bad_chat_messages_are_422_and_nothing_is_stored(
    client: httpx.AsyncClient, alice: H, message: str
) -> None:
    response = await client.post("/api/chat", json={"message": message}, headers=alice)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "message"
    assert (await client.get("/api/conversations", headers=alice)).json()["data"] == []
    assert await all_tasks(client, alice) == []


# ---------------------------------------------------------------- MCP


@pytest.fixture
async def mcp(app: FastAPI) -> AsyncIterator[Client]:
    holder = InProcessClient(
        build_mcp_server(app.state.db, app.state.settings, fixed_user("alice"))
    )
    yield await holder.open()
    await holder.close()


async def tool_error(mcp: Client, name: str, arguments: dict[str, Any]) -> str:
    result = await mcp.call_tool(name, arguments)
    assert result.is_error, result
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("get_task", {"task_id": 2147483648}, "Task 2147483648 not found"),
        ("delete_task", {"task_id": 99999999999999999999}, "not found"),
        ("complete_task", {"task_id": 2147483648}, "not found"),
        ("get_task", {"task_id": True}, "'task_id'"),
        ("get_task", {"task_id": "1"}, "'task_id'"),
        ("get_task", {"task_id": 0}, "'task_id'"),
        ("get_task", {}, "'task_id' is required"),
        ("add_task", {"title": "a\x00b"}, "'title'"),
        ("add_task", {"title": "   "}, "'title'"),
        ("add_task", {"title": "ok", "tags": ["\x00"]}, "'tags.0'"),
        ("add_task", {"title": "ok", "priority": "urgent"}, "'priority' should be"),
        ("add_task", {"title": "ok", "due": "tomorrow", "timezone": "Europe"}, "unknown timezone"),
        ("add_task", {"title": "ok", "user_id": "bob"}, "unknown argument 'user_id'"),
        ("list_tasks", {"query": "a\x00"}, "'query'"),
        ("list_tasks", {"cursor": "garbage"}, "cursor is not valid"),
        ("update_task", {"task_id": 1, "title": 5}, "'title'"),
    ],
)
async def test_tool_errors_are_one_sentence_the_model_can_act_on(
    mcp: Client, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    text = await tool_error(mcp, tool, arguments)
    assert expected in text
    assert text.strip() != f"Error executing tool {tool}"
    assert "\n" not in text and "http" not in text, "no multi-line pydantic text with its URL"
    listed = await mcp.call_tool("list_tasks", {"status": "all"})
    assert listed.structured_content is not None and listed.structured_content["count"] == 0
