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
from server.errors import DatabaseUnreachable, database_unavailable
from server.settings import Settings
from tests.conftest import SECRET, client_for, make_token

H = dict[str, str]
OUT_OF_RANGE = [0, -1, 2**63, 99999999999999999999]


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


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_a_signed_time_claim_of_the_wrong_type_is_401_everywhere(
    client: httpx.AsyncClient, claim: str
) -> None:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "alice", "iat": now, "exp": now + 3600}
    claims[claim] = str(claims.get(claim, now))  # a numeric string, correctly signed
    headers = {"Authorization": f"Bearer {jwt.encode(claims, SECRET, 'HS256')}"}
    for method, path in [("GET", "/api/tasks"), ("GET", "/api/conversations"), ("POST", "/mcp")]:
        response = await client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path, response.text)


async def test_a_subject_with_control_characters_is_refused(client: httpx.AsyncClient) -> None:
    token = make_token("ali\x00ce")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/tasks", headers=headers)).status_code == 401


async def test_oversized_headers_are_431(client: httpx.AsyncClient, alice: H) -> None:
    response = await client.get("/api/tasks", headers={**alice, "X-Padding": "p" * 20_000})
    assert response.status_code == 431 and response.json()["error"] == "headers_too_large"


# ---------------------------------------------------------------- ids


@pytest.mark.parametrize("task_id", OUT_OF_RANGE)
async def test_ids_out_of_range_are_422_naming_the_id(
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
        assert response.status_code == 422, (method, path, response.text)
        assert response.json()["fields"][0]["field"] in ("task_id", "conversation_id")
    chat = await client.post(
        "/api/chat", json={"message": "hi", "conversation_id": task_id}, headers=alice
    )
    assert chat.status_code == 422, chat.text
    assert chat.json()["fields"][0]["field"] == "conversation_id"
    if task_id > 0:  # after=0 is "from the start", a stream like any other
        events = await client.get("/api/events", params={"after": task_id}, headers=alice)
        assert events.status_code == 422, events.text
        assert events.json()["fields"][0]["field"] == "after"
        resumed = await client.get("/api/events", headers={**alice, "Last-Event-ID": str(task_id)})
        assert resumed.status_code == 422, resumed.text
        assert resumed.json()["fields"][0]["field"] == "last-event-id"
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
    "cursor",
    [
        "WyItY3JlYXRlZCIsIDIsIDVd",  # base64 of JSON, the old form
        "1_",
        "_",
        "1.5_3",
        "x_1",
        "1_2_3",
        "1" * 21 + "_1",
        "1_\u0661",  # a digit, but not an ASCII one
    ],
)
async def test_cursors_not_of_the_documented_form_are_422(
    client: httpx.AsyncClient, alice: H, cursor: str
) -> None:
    for path in ("/api/tasks", "/api/conversations"):
        response = await client.get(path, params={"cursor": cursor}, headers=alice)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["fields"][0]["field"] == "cursor"


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
        ("get_task", {"task_id": 2**63}, "'task_id' should be less than or equal to"),
        ("delete_task", {"task_id": 99999999999999999999}, "'task_id' should be less"),
        ("complete_task", {"task_id": 2**63}, "'task_id'"),
        ("add_task", {"title": "ok", "due": "tomorrow\x00"}, "'due' must not contain control"),
        ("update_task", {"task_id": 1, "remind_at": "\x00"}, "'remind_at' must not contain"),
        (
            "add_task",
            {"title": "ok", "timezone": "x" * 20_000},
            "'timezone' string should have at most",
        ),
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
        ("list_tasks", {"cursor": "garbage"}, "argument 'cursor' string should match"),
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


@pytest.mark.parametrize("path", ["/api/tasks", "/api/chat", "/chatkit", "/mcp"])
async def test_deeply_nested_json_is_400_everywhere(
    client: httpx.AsyncClient, alice: H, path: str
) -> None:
    body = '{"a":' * 50_000 + "1" + "}" * 50_000
    headers = {**alice, "Content-Type": "application/json", "Accept": "application/json"}
    response = await client.post(path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request" and "nests" in response.json()["detail"]
    assert await all_tasks(client, alice) == []


@pytest.mark.parametrize("zone", ["Europe", "America/Argentina", "Etc", "Factory", "../etc/passwd"])
async def test_a_zone_that_is_not_a_zone_is_422_never_an_outage(
    client: httpx.AsyncClient, alice: H, zone: str
) -> None:
    task = {"title": "x", "due": "2030-01-01T09:00:00Z", "recurrence": "daily"}
    response = await client.post("/api/tasks", json={**task, "timezone": zone}, headers=alice)
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == "timezone"
    assert "retry-after" not in response.headers
    chat = await client.post("/api/chat", json={"message": "hi", "timezone": zone}, headers=alice)
    assert chat.status_code == 422 and chat.json()["fields"][0]["field"] == "timezone"
    kit = await client.post(
        "/chatkit",
        json={"type": "threads.list", "params": {}},
        headers={**alice, "X-Timezone": zone},
    )
    assert kit.status_code == 422, kit.text
    assert await all_tasks(client, alice) == []


def test_only_the_database_drivers_errors_mean_an_outage() -> None:
    assert not database_unavailable(IsADirectoryError(21, "Is a directory"))
    assert not database_unavailable(FileNotFoundError())
    assert database_unavailable(DatabaseUnreachable("connection refused"))


@pytest.mark.parametrize(
    ("body", "field"),
    [({"title": "x", "due": 0.0}, "due"), ({"title": "x", "due": "1700000000"}, "due")],
)
async def test_dates_are_written_dates_not_numbers(
    client: httpx.AsyncClient, alice: H, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/tasks", json=body, headers=alice)
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == field
    listing = await client.get("/api/tasks", params={"due_before": "0.5"}, headers=alice)
    assert listing.status_code == 422 and listing.json()["fields"][0]["field"] == "due_before"
