"""The OpenAI-compatible path against a fake Chat Completions server over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.conftest import client_for
from tests.fake_openai import FakeOpenAI, Step
from tests.live import served

H = dict[str, str]


@pytest.fixture
def llm_settings(
    make_settings: Callable[..., Settings], fake: FakeOpenAI
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values = {"openai_base_url": fake.url, "agent_model": "fake-model", "agent_timeout": 10}  # type: ignore[attr-defined]
        return make_settings(**{**values, **overrides})

    return make


@pytest.fixture
async def llm(
    llm_settings: Callable[..., Settings], clean_database: None
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(llm_settings()) as client:
        yield client


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_tool_call_then_text(llm: httpx.AsyncClient, fake: FakeOpenAI, alice: H) -> None:
    fake.script = [
        Step(tool="add_task", arguments={"title": "Buy milk", "due": "tomorrow 5pm"}),
        Step(text='Added "Buy milk" (task #1).'),
    ]
    response = await llm.post("/api/chat", json={"message": "I need milk"}, headers=alice)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["response"] == 'Added "Buy milk" (task #1).'
    [call] = answer["tool_calls"]
    assert call["name"] == "add_task" and call["arguments"]["title"] == "Buy milk"
    assert call["result"]["status"] == "created" and call["result"]["task"]["due"]

    tasks = (await llm.get("/api/tasks", headers=alice)).json()["data"]
    assert [t["title"] for t in tasks] == ["Buy milk"]

    first, second = fake.requests
    assert first["model"] == "fake-model"
    tools = {tool["function"]["name"]: tool["function"] for tool in first["tools"]}
    assert {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"} <= set(tools)
    assert all("user_id" not in t["parameters"].get("properties", {}) for t in tools.values())
    assert first["messages"][0]["role"] == "system"
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert json.loads(tool_message["content"])["task"]["title"] == "Buy milk"


async def test_streamed_tool_call_then_text(
    llm: httpx.AsyncClient, fake: FakeOpenAI, alice: H
) -> None:
    fake.script = [
        Step(tool="add_task", arguments={"title": "Walk dog"}),
        Step(text="Done, added it."),
    ]
    response = await llm.post(
        "/api/chat",
        json={"message": "walk the dog"},
        headers={**alice, "Accept": "text/event-stream"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "conversation" and names[-1] == "done"
    assert names.index("tool_call") < names.index("tool_result") < names.index("delta")
    call = next(data for name, data in events if name == "tool_call")
    assert call["name"] == "add_task" and call["arguments"] == {"title": "Walk dog"}
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert text == "Done, added it."
    done = events[-1][1]
    assert (
        done["response"] == "Done, added it."
        and done["tool_calls"][0]["result"]["title"] == "Walk dog"
    )
    messages = (
        await llm.get(f"/api/conversations/{done['conversation_id']}/messages", headers=alice)
    ).json()
    assert [m["role"] for m in messages["data"]] == ["user", "assistant"]


async def test_provider_failure_is_502_and_a_retry_works(
    llm: httpx.AsyncClient, fake: FakeOpenAI, alice: H
) -> None:
    fake.script = []  # every call fails with 500
    response = await llm.post("/api/chat", json={"message": "add milk"}, headers=alice)
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "provider_error" and "saved" in body["detail"]
    conversations = (await llm.get("/api/conversations", headers=alice)).json()["data"]
    conversation_id = conversations[0]["id"]
    url = f"/api/conversations/{conversation_id}/messages"
    assert [m["content"] for m in (await llm.get(url, headers=alice)).json()["data"]] == [
        "add milk"
    ]

    fake.script = [Step(text="Sure.")]
    retry = await llm.post(
        "/api/chat", json={"message": "add milk", "conversation_id": conversation_id}, headers=alice
    )
    assert retry.status_code == 200
    messages = (await llm.get(url, headers=alice)).json()["data"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "add milk"),
        ("assistant", "Sure."),
    ]
    assert sum(m["role"] == "user" for m in fake.requests[-1]["messages"]) == 1, (
        "no doubled message"
    )


async def test_streamed_provider_failure_is_an_error_event(
    llm: httpx.AsyncClient, fake: FakeOpenAI, alice: H
) -> None:
    response = await llm.post(
        "/api/chat", json={"message": "hi"}, headers={**alice, "Accept": "text/event-stream"}
    )
    events = sse_events(response.text)
    assert events[-1][0] == "error" and events[-1][1]["status"] == 502


async def test_timeout_is_504_streamed_or_not(
    llm_settings: Callable[..., Settings], fake: FakeOpenAI, clean_database: None, alice: H
) -> None:
    async with client_for(llm_settings(agent_timeout=1)) as client:
        fake.script = [Step(sleep=3, text="too late")]
        response = await client.post("/api/chat", json={"message": "hello"}, headers=alice)
        assert response.status_code == 504
        assert response.json()["error"] == "provider_timeout"
        fake.script = [Step(sleep=3, text="too late")]
        streamed = await client.post(
            "/api/chat",
            json={"message": "hello again"},
            headers={**alice, "Accept": "text/event-stream"},
        )
        name, data = sse_events(streamed.text)[-1]
        assert (name, data["status"], data["error"]) == ("error", 504, "provider_timeout")


async def test_history_window_is_bounded(
    llm_settings: Callable[..., Settings], fake: FakeOpenAI, clean_database: None, alice: H
) -> None:
    async with client_for(llm_settings(chat_history_messages=4)) as client:
        conversation_id = None
        for turn in range(6):
            fake.script = [Step(text=f"answer {turn}")]
            body: dict[str, Any] = {"message": f"message {turn}"}
            if conversation_id:
                body["conversation_id"] = conversation_id
            conversation_id = (await client.post("/api/chat", json=body, headers=alice)).json()[
                "conversation_id"
            ]
        messages = fake.requests[-1]["messages"]
        assert [m["role"] for m in messages] == [
            "system",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
        ]
        assert [m["content"] for m in messages[1:]] == [
            "message 3",
            "answer 3",
            "message 4",
            "answer 4",
            "message 5",
        ]


async def test_the_model_cannot_reach_another_users_tasks(
    llm: httpx.AsyncClient, fake: FakeOpenAI, alice: H, bob: H
) -> None:
    await llm.post("/api/tasks", json={"title": "alice's secret"}, headers=alice)
    fake.script = [
        Step(tool="list_tasks", arguments={"status": "all", "user_id": "alice"}),
        Step(text="Here you go."),
    ]
    answer = (
        await llm.post("/api/chat", json={"message": "use user_id alice"}, headers=bob)
    ).json()
    result = answer["tool_calls"][0]["result"]
    assert "alice's secret" not in json.dumps(result)
    assert result.get("count", 0) == 0
    assert (await llm.get("/api/tasks?count=true", headers=alice)).json()["count"] == 1


async def test_openai_provider_is_chosen_by_the_api_key(
    make_settings: Callable[..., Settings],
) -> None:
    from agents import OpenAIChatCompletionsModel, OpenAIResponsesModel
    from todo_agent.agent import build_model
    from todo_agent.offline import OfflineModel

    assert isinstance(build_model(make_settings()), OfflineModel)
    assert isinstance(build_model(make_settings(openai_api_key="sk-test")), OpenAIResponsesModel)
    compatible = build_model(make_settings(openai_base_url="http://127.0.0.1:11434/v1"))
    assert isinstance(compatible, OpenAIChatCompletionsModel)


async def test_a_client_that_hangs_up_stops_the_run(
    llm_settings: Callable[..., Settings], fake: FakeOpenAI, clean_database: None, alice: H
) -> None:
    # The model thinks for a second, then asks for a tool: by then nobody is listening.
    fake.script = [Step(sleep=1, tool="add_task", arguments={"title": "orphan"}), Step(text="ok")]
    async with served(create_app(llm_settings())) as url, httpx.AsyncClient(base_url=url) as http:
        headers = {**alice, "Accept": "text/event-stream"}
        async with http.stream(
            "POST", "/api/chat", json={"message": "hi"}, headers=headers
        ) as response:
            lines = response.aiter_lines()
            assert (await anext(lines)) == "event: conversation"
            await asyncio.sleep(0.5)  # the model is thinking now
            assert len(fake.requests) == 1
        await asyncio.sleep(2)
        tasks = (await http.get("/api/tasks", headers=alice)).json()
        assert tasks["data"] == [], "the run stopped: its tool call never ran"
        assert len(fake.requests) == 1, "and the model was not asked again"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_turn_that_runs_out_of_steps_answers_with_what_it_did(
    llm: httpx.AsyncClient, fake: FakeOpenAI, alice: H, stream: bool
) -> None:
    """A model that keeps calling tools: the turn stops, answers 200 with the changes made,
    and stores that answer, so a client never retries work that was done."""
    fake.script = [Step(tool="add_task", arguments={"title": f"step {i}"}) for i in range(20)]
    headers = {**alice, "Accept": "text/event-stream"} if stream else alice
    response = await llm.post("/api/chat", json={"message": "add lots"}, headers=headers)
    assert response.status_code == 200, response.text
    answer = sse_events(response.text)[-1][1] if stream else response.json()
    assert answer["response"].startswith("I stopped after 12 steps")
    made = (await llm.get("/api/tasks", params={"limit": 100}, headers=alice)).json()["data"]
    assert len(made) == len(answer["tool_calls"]) == 12
    assert f'added "step 11" (task #{made[0]["id"]})' in answer["response"]
    messages = (
        await llm.get(f"/api/conversations/{answer['conversation_id']}/messages", headers=alice)
    ).json()["data"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert not messages[0]["failed"]
