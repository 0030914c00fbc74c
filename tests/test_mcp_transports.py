"""MCP over the wire: the streamable HTTP client against uvicorn, and `todo-chat mcp` on stdio."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mcp_tools.identity import IN_PROCESS_USER_KEY
from server.settings import Settings
from tests.conftest import SECRET, client_for, make_token


@asynccontextmanager
async def mcp_over_http(base_url: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as client,
    ):
        yield client


async def structured(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_every_tool_over_streamable_http(live_url: str) -> None:
    async with mcp_over_http(live_url, make_token("alice")) as mcp:
        names = {tool.name for tool in (await mcp.list_tools()).tools}
        assert {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"} <= names
        added = await structured(mcp, "add_task", title="from claude", due="tomorrow")
        task_id = added["task_id"]
        assert (await structured(mcp, "list_tasks"))["count"] == 1
        assert (await structured(mcp, "update_task", task_id=task_id, priority="high"))["task"][
            "priority"
        ] == "high"
        assert (await structured(mcp, "complete_task", task_id=task_id))["status"] == "completed"
        assert (await structured(mcp, "reopen_task", task_id=task_id))["status"] == "reopened"
        assert (await structured(mcp, "get_task", task_id=task_id))["title"] == "from claude"
        assert (await structured(mcp, "delete_task", task_id=task_id))["status"] == "deleted"
    async with httpx.AsyncClient(base_url=live_url) as http:
        listed = await http.get(
            "/api/tasks", headers={"Authorization": f"Bearer {make_token('alice')}"}
        )
        assert listed.json()["data"] == [], "REST sees what MCP did"


@pytest.mark.parametrize(
    "token",
    [None, "garbage", make_token("alice", ttl=timedelta(minutes=-10))],
    ids=["missing", "malformed", "expired"],
)
async def test_bad_tokens_get_401_with_resource_metadata(live_url: str, token: str | None) -> None:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient(base_url=live_url) as http:
        response = await http.post("/mcp", json=body, headers=headers)
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer") and "resource_metadata=" in challenge
        metadata_url = challenge.split('resource_metadata="')[1].split('"')[0]
        assert metadata_url.endswith("/.well-known/oauth-protected-resource/mcp")
        metadata = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
        assert metadata["resource"].endswith("/mcp")
        # No issuer configured: no authorization server to send the client to (this server
        # runs no OAuth endpoints), so a client knows to bring its own bearer token.
        assert "authorization_servers" not in metadata


async def test_metadata_names_the_configured_issuer_and_the_public_url(
    make_settings: Callable[..., Settings], clean_database: None
) -> None:
    settings = make_settings(
        jwt_issuer="https://auth.example.com", public_url="https://todo.example.com"
    )
    async with client_for(settings) as http:
        response = await http.get("/.well-known/oauth-protected-resource/mcp")
    assert response.json()["resource"] == "https://todo.example.com/mcp"
    assert response.json()["authorization_servers"] == ["https://auth.example.com"]


async def test_sdk_client_without_token_cannot_connect(live_url: str) -> None:
    with pytest.raises(BaseException):  # noqa: B017  (the SDK wraps the 401 in a task group)
        async with mcp_over_http(live_url, None) as mcp:
            await mcp.list_tools()


async def test_other_users_token_sees_and_changes_nothing(live_url: str) -> None:
    async with mcp_over_http(live_url, make_token("alice")) as alice:
        task_id = (await structured(alice, "add_task", title="alice only"))["task_id"]
    async with mcp_over_http(live_url, make_token("bob")) as bob:
        assert (await structured(bob, "list_tasks", status="all"))["count"] == 0
        for tool in ("complete_task", "delete_task", "get_task"):
            result = await bob.call_tool(tool, {"task_id": task_id})
            assert result.is_error
            assert f"Task {task_id} not found" in result.content[0].text  # type: ignore[union-attr]
        # A forged _meta naming alice changes nothing: over HTTP the token decides.
        forged = await bob.call_tool(
            "list_tasks", {"status": "all"}, meta={IN_PROCESS_USER_KEY: "alice", "sub": "alice"}
        )
        assert forged.structured_content is not None
        assert forged.structured_content["count"] == 0
    async with mcp_over_http(live_url, make_token("alice")) as alice:
        task = await structured(alice, "get_task", task_id=task_id)
        assert task["completed"] is False


async def test_unknown_host_is_refused(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        response = await http.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={
                "Host": "evil.example",
                "Authorization": f"Bearer {make_token('alice')}",
                "Accept": "application/json, text/event-stream",
            },
        )
        assert response.status_code == 421


def stdio_params(
    settings: Settings, tmp_path: Path, *args: str, **env: str
) -> StdioServerParameters:
    command = Path(sys.executable).parent / "todo-chat"
    return StdioServerParameters(
        command=str(command),
        args=["mcp", *args],
        env={
            "DATABASE_URL": settings.database_url,
            "BETTER_AUTH_SECRET": SECRET,
            "DATA_DIR": str(tmp_path),
            **env,
        },
        cwd=tmp_path,
    )


async def test_stdio_session_lists_adds_completes_deletes(
    settings: Settings, tmp_path: Path, client: httpx.AsyncClient, bob: dict[str, str]
) -> None:
    await client.post("/api/tasks", json={"title": "bob's"}, headers=bob)
    async with Client(stdio_params(settings, tmp_path, "--user", "alice")) as mcp:
        assert "add_task" in {tool.name for tool in (await mcp.list_tools()).tools}
        assert (await structured(mcp, "list_tasks", status="all"))["count"] == 0
        task_id = (await structured(mcp, "add_task", title="via stdio"))["task_id"]
        assert (await structured(mcp, "complete_task", task_id=task_id))["status"] == "completed"
        assert (await structured(mcp, "delete_task", task_id=task_id))["status"] == "deleted"
    assert len((await client.get("/api/tasks", headers=bob)).json()["data"]) == 1


async def test_stdio_user_can_come_from_a_token(
    settings: Settings, tmp_path: Path, client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    await client.post("/api/tasks", json={"title": "alice's"}, headers=alice)
    params = stdio_params(settings, tmp_path, TODO_CHAT_TOKEN=make_token("alice"))
    async with Client(params) as mcp:
        listed = await structured(mcp, "list_tasks")
        assert [task["title"] for task in listed["tasks"]] == ["alice's"]
