"""Every MCP tool's behaviour and errors, through the SDK's in-memory client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from mcp import Client

from mcp_tools.identity import IN_PROCESS_USER_KEY, fixed_user, user_from_server_meta
from mcp_tools.inprocess import InProcessClient
from mcp_tools.server import build_mcp_server


@pytest.fixture
async def mcp(app: FastAPI) -> AsyncIterator[Client]:
    server = build_mcp_server(app.state.db, app.state.settings, fixed_user("alice"))
    holder = InProcessClient(server)
    yield await holder.open()
    await holder.close()


async def call(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    # Clients that read only the text content get the same JSON.
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    return result.structured_content


async def fails(client: Client, name: str, **arguments: Any) -> str:
    result = await client.call_tool(name, arguments)
    assert result.is_error
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


async def test_tools_are_described_for_clients(mcp: Client) -> None:
    tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    assert set(tools) == {
        "add_task",
        "list_tasks",
        "get_task",
        "complete_task",
        "reopen_task",
        "delete_task",
        "update_task",
    }
    for tool in tools.values():
        assert tool.description and tool.output_schema, tool.name
        assert not any("user" in name for name in tool.input_schema["properties"]), tool.name
        assert tool.annotations is not None
    assert tools["list_tasks"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert tools["delete_task"].annotations.destructive_hint is True  # type: ignore[union-attr]
    assert tools["complete_task"].annotations.idempotent_hint is True  # type: ignore[union-attr]
    assert tools["add_task"].input_schema["required"] == ["title"]


async def test_add_list_complete_reopen_update_delete(mcp: Client) -> None:
    added = await call(mcp, "add_task", title="Buy milk", priority="high", tags=["Home"])
    assert added["status"] == "created" and added["title"] == "Buy milk"
    task_id = added["task_id"]
    assert added["task"]["tags"] == ["home"]

    listed = await call(mcp, "list_tasks")
    assert listed["count"] == 1 and listed["tasks"][0]["id"] == task_id
    assert "description" not in listed["tasks"][0], "list items stay compact"

    done = await call(mcp, "complete_task", task_id=task_id)
    assert done["status"] == "completed" and done["task"]["completed"] is True
    assert (await call(mcp, "list_tasks"))["count"] == 0, "pending by default"
    assert (await call(mcp, "list_tasks", status="completed"))["count"] == 1

    reopened = await call(mcp, "reopen_task", task_id=task_id)
    assert reopened["status"] == "reopened" and reopened["task"]["completed"] is False

    updated = await call(
        mcp,
        "update_task",
        task_id=task_id,
        title="Buy oat milk",
        description="2 cartons",
        priority="low",
    )
    assert updated["status"] == "updated"
    assert (updated["task"]["title"], updated["task"]["priority"]) == ("Buy oat milk", "low")
    full = await call(mcp, "get_task", task_id=task_id)
    assert full["description"] == "2 cartons"

    deleted = await call(mcp, "delete_task", task_id=task_id)
    assert deleted == {
        "task_id": task_id,
        "status": "deleted",
        "title": "Buy oat milk",
        "task": None,
    }
    assert (await call(mcp, "list_tasks", status="all"))["count"] == 0


async def test_due_phrases_are_read_in_the_users_timezone(mcp: Client) -> None:
    added = await call(
        mcp, "add_task", title="call mom", due="tomorrow 5pm", timezone="America/New_York"
    )
    due = datetime.fromisoformat(added["task"]["due"])
    tomorrow = datetime.now(UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("America/New_York")
    ).date() + timedelta(days=1)
    local = due.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert (local.date(), local.hour, local.minute) == (tomorrow, 17, 0)

    iso = await call(mcp, "add_task", title="iso", due="2026-12-01T09:30:00+01:00")
    assert iso["task"]["due"].startswith("2026-12-01T08:30:00")

    in_three = await call(mcp, "add_task", title="later", due="in 3 days")
    due = datetime.fromisoformat(in_three["task"]["due"])  # a day, no time: 09:00 (UTC here)
    assert (due.date(), due.hour, due.minute) == (datetime.now(UTC).date() + timedelta(3), 9, 0)

    cleared = await call(mcp, "update_task", task_id=iso["task_id"], due="none")
    assert cleared["task"]["due"] is None
    moved = await call(mcp, "update_task", task_id=iso["task_id"], due="next friday")
    assert datetime.fromisoformat(moved["task"]["due"]).astimezone(UTC).weekday() in (3, 4)


async def test_list_filters_and_pages(mcp: Client) -> None:
    for i in range(12):
        await call(
            mcp,
            "add_task",
            title=f"task {i}",
            tags=["even" if i % 2 == 0 else "odd"],
            priority="high" if i == 3 else "none",
        )
    first = await call(mcp, "list_tasks")
    assert len(first["tasks"]) == 10 and first["count"] == 12 and first["next_cursor"]
    second = await call(mcp, "list_tasks", cursor=first["next_cursor"])
    ids = [t["id"] for t in first["tasks"] + second["tasks"]]
    assert len(set(ids)) == 12 and second["next_cursor"] is None
    assert (await call(mcp, "list_tasks", tag="odd", limit=50))["count"] == 6
    assert [t["title"] for t in (await call(mcp, "list_tasks", priority="high"))["tasks"]] == [
        "task 3"
    ]
    assert [t["title"] for t in (await call(mcp, "list_tasks", query="TASK 11"))["tasks"]] == [
        "task 11"
    ]
    await call(mcp, "add_task", title="dated", due="2030-01-01T00:00:00Z")
    dated = await call(mcp, "list_tasks", due_after="2029-12-31")
    assert [t["title"] for t in dated["tasks"]] == ["dated"]


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("complete_task", {"task_id": 42}, "Task 42 not found"),
        ("reopen_task", {"task_id": 42}, "Task 42 not found"),
        ("delete_task", {"task_id": 42}, "Task 42 not found"),
        ("get_task", {"task_id": 42}, "Task 42 not found"),
        ("update_task", {"task_id": 42, "title": "x"}, "Task 42 not found"),
        ("update_task", {"task_id": 1}, "nothing to update"),
        ("add_task", {"title": "   "}, "title"),
        ("add_task", {"title": "x", "priority": "urgent"}, "priority"),
        ("add_task", {"title": "x", "due": "when pigs fly"}, "could not read"),
        (
            "add_task",
            {"title": "x", "due": "tomorrow", "timezone": "Mars/Base"},
            "unknown timezone",
        ),
        ("add_task", {"title": "x", "tags": ["t" * 41]}, "tags"),
        ("list_tasks", {"limit": 500}, "limit"),
        ("list_tasks", {"cursor": "nonsense"}, "cursor"),
        ("complete_task", {"task_id": "seven"}, "task_id"),
    ],
)
async def test_errors_say_what_is_wrong(
    mcp: Client, tool: str, arguments: dict[str, Any], message: str
) -> None:
    text = await fails(mcp, tool, **arguments)
    assert message in text
    assert (await call(mcp, "list_tasks", status="all"))["count"] == 0, "nothing half-written"


async def test_in_process_identity_comes_from_server_side_meta(
    app: FastAPI, client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    await client.post("/api/tasks", json={"title": "bob's task"}, headers=bob)
    server = build_mcp_server(app.state.db, app.state.settings, user_from_server_meta)
    async with Client(server) as mcp:
        result = await mcp.call_tool("list_tasks", {}, meta={IN_PROCESS_USER_KEY: "alice"})
        assert result.structured_content == {"tasks": [], "count": 0, "next_cursor": None}
        unbound = await mcp.call_tool("list_tasks", {})
        assert unbound.is_error and "no user" in unbound.content[0].text  # type: ignore[union-attr]


async def test_stdio_identity_ignores_a_forged_meta_user(
    app: FastAPI, client: httpx.AsyncClient, bob: dict[str, str]
) -> None:
    await client.post("/api/tasks", json={"title": "bob's task"}, headers=bob)
    server = build_mcp_server(app.state.db, app.state.settings, fixed_user("alice"))
    async with Client(server) as mcp:
        result = await mcp.call_tool(
            "list_tasks", {"status": "all"}, meta={IN_PROCESS_USER_KEY: "bob", "user_id": "bob"}
        )
        assert result.structured_content is not None
        assert result.structured_content["count"] == 0
        sneaky = await mcp.call_tool("list_tasks", {"user_id": "bob"})
        assert sneaky.is_error or sneaky.structured_content["count"] == 0  # type: ignore[index]


async def test_every_tool_schema_converts_to_openai_strict_mode(app: FastAPI) -> None:
    """The Agents SDK falls back to a non-strict schema silently (it only logs); this fails."""
    from agents.mcp.util import MCPUtil

    from agents import Agent
    from todo_agent.mcp_bridge import InProcessTaskTools

    bridge = InProcessTaskTools(
        build_mcp_server(app.state.db, app.state.settings, fixed_user("alice"))
    )
    await bridge.connect()
    try:
        agent = Agent(name="strict", mcp_servers=[bridge])
        tools = await bridge.list_tools()
        assert len(tools) == 7
        for tool in tools:
            converted = MCPUtil.to_function_tool(tool, bridge, True, agent)
            assert converted.strict_json_schema, f"{tool.name} is not strict-mode clean"
    finally:
        await bridge.cleanup()


async def test_tool_schemas_say_everything_a_model_needs(mcp: Client) -> None:
    for tool in (await mcp.list_tools()).tools:
        for name, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), f"{tool.name}.{name} is not described"
        assert tool.description and "\n    " not in tool.description
        assert tool.annotations is not None and tool.annotations.open_world_hint is False
    add = next(t for t in (await mcp.list_tools()).tools if t.name == "add_task")
    title = add.input_schema["properties"]["title"]
    assert title["minLength"] == 1 and title["maxLength"] == 500
