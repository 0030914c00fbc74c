"""The offline model end to end through /api/chat, checking the database, not only the reply."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import auth
from tests.test_chat_openai import sse_events

H = dict[str, str]


class Chat:
    def __init__(self, client: httpx.AsyncClient, headers: H) -> None:
        self.client = client
        self.headers = headers
        self.conversation_id: int | None = None

    async def say(self, message: str, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"message": message, **extra}
        if self.conversation_id is not None:
            body["conversation_id"] = self.conversation_id
        response = await self.client.post("/api/chat", json=body, headers=self.headers)
        assert response.status_code == 200, response.text
        answer = response.json()
        self.conversation_id = answer["conversation_id"]
        return answer

    async def tasks(self, status: str = "all") -> list[dict[str, Any]]:
        response = await self.client.get(
            "/api/tasks", params={"status": status, "sort": "created"}, headers=self.headers
        )
        return list(response.json()["data"])


@pytest.fixture
def chat(client: httpx.AsyncClient, alice: H) -> Chat:
    return Chat(client, alice)


async def test_adding_in_the_ways_people_say_it(chat: Chat) -> None:
    answer = await chat.say("add buy milk")
    assert answer["tool_calls"][0]["name"] == "add_task"
    await chat.say("remind me to call mom tomorrow at 5pm")
    await chat.say("I need to pay the bills")
    await chat.say("add urgent report for Bob by friday")
    tasks = await chat.tasks()
    assert [t["title"] for t in tasks] == [
        "Buy milk",
        "Call mom",
        "Pay the bills",
        "Report for Bob",
    ]
    due = datetime.fromisoformat(tasks[1]["due"])
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    assert (due.date(), due.hour) == (tomorrow, 17)
    assert tasks[3]["priority"] == "high" and tasks[3]["due"] is not None
    pending = (await chat.say("what's pending?"))["response"]
    assert "4 pending tasks" in pending and "#4 Report for Bob (high priority, due Fri" in pending


async def test_due_phrases_and_replies_use_the_requests_timezone(chat: Chat) -> None:
    answer = await chat.say("remind me to call mom tomorrow at 5pm", timezone="Asia/Tokyo")
    due = datetime.fromisoformat((await chat.tasks())[0]["due"])
    assert due.astimezone(ZoneInfo("Asia/Tokyo")).hour == 17
    assert answer["response"].endswith(", 17:00 JST, with a reminder.")
    listed = await chat.say("what's pending?", timezone="America/New_York")
    local = due.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M %Z")
    assert local in listed["response"] and "UTC" not in listed["response"]


async def test_listing_pending_all_and_completed(chat: Chat) -> None:
    for title in ("buy milk", "call mom", "walk the dog"):
        await chat.say(f"add {title}")
    await chat.say("mark task 2 as done")
    pending = (await chat.say("what's pending?"))["response"]
    assert "2 pending tasks" in pending and "#1 Buy milk" in pending and "Call mom" not in pending
    everything = (await chat.say("show me all my tasks"))["response"]
    assert "3 tasks" in everything and "#2 Call mom (done)" in everything
    completed = await chat.say("what have I completed?")
    assert completed["tool_calls"][0]["arguments"]["status"] == "completed"
    assert "Call mom" in completed["response"] and "Buy milk" not in completed["response"]


async def test_completing_by_id_by_words_and_by_it(chat: Chat) -> None:
    await chat.say("add buy groceries")
    await chat.say("add call the plumber")
    await chat.say("add water plants")
    assert "task #1" in (await chat.say("mark task 1 as done"))["response"]
    answer = await chat.say("I finished calling the plumber")
    assert [c["name"] for c in answer["tool_calls"]] == ["list_tasks", "complete_task"]
    await chat.say("add read a book")
    await chat.say("mark it done")
    done = {t["title"]: t["completed"] for t in await chat.tasks()}
    assert done == {
        "Buy groceries": True,
        "Call the plumber": True,
        "Water plants": False,
        "Read a book": True,
    }


async def test_reopening(chat: Chat) -> None:
    await chat.say("add buy milk")
    await chat.say("mark task 1 as done")
    answer = await chat.say("reopen task 1")
    assert answer["response"] == 'Reopened "Buy milk" (task #1).'
    assert (await chat.tasks())[0]["completed"] is False


async def test_deleting_looks_the_task_up_and_asks_when_several_match(chat: Chat) -> None:
    await chat.say("add team meeting notes")
    await chat.say("add meeting with the bank")
    await chat.say("add buy milk")
    question = await chat.say("delete the meeting task")
    assert "Which one do you mean?" in question["response"]
    assert [c["name"] for c in question["tool_calls"]] == ["list_tasks"]
    assert len(await chat.tasks()) == 3, "nothing deleted while it is ambiguous"

    answer = await chat.say("2")
    assert answer["response"] == 'Deleted "Meeting with the bank" (task #2).'
    assert [t["title"] for t in await chat.tasks()] == ["Team meeting notes", "Buy milk"]

    # Not the task's exact words: it asks before deleting.
    asked = await chat.say("delete the milk task")
    assert asked["response"] == 'Do you mean "Buy milk" (task #3)? Say "yes" to delete it.'
    assert len(await chat.tasks()) == 2
    assert (await chat.say("yes"))["response"] == 'Deleted "Buy milk" (task #3).'
    missing = await chat.say("delete the dentist task")
    assert "couldn't find" in missing["response"]
    assert [t["title"] for t in await chat.tasks()] == ["Team meeting notes"]


async def test_updating_title_due_and_priority(chat: Chat) -> None:
    await chat.say("add call dad")
    await chat.say("add buy milk")
    await chat.say("change task 1 to call mom tonight")
    moved = await chat.say("move task 2 to friday")
    assert moved["response"].startswith('Updated "Buy milk" (task #2): due Fri')
    prioritised = await chat.say("make it high priority")
    assert prioritised["response"] == 'Updated "Buy milk" (task #2): high priority.'
    first, second = await chat.tasks()
    assert first["title"] == "Call mom" and first["due"] is not None
    assert datetime.fromisoformat(first["due"]).hour == 20
    assert datetime.fromisoformat(second["due"]).weekday() == 4
    assert second["priority"] == "high", "'it' is the task the last answer was about"


async def test_searching(chat: Chat) -> None:
    await chat.say("add buy oat milk")
    await chat.say("add call mom")
    answer = await chat.say("find milk")
    assert answer["tool_calls"][0]["arguments"]["query"] == "milk"
    assert "Buy oat milk" in answer["response"] and "Call mom" not in answer["response"]
    assert answer["response"].startswith('You have 1 task matching "milk":')
    await chat.say("add milk the cow")
    answer = await chat.say("find milk")
    assert answer["response"].startswith('You have 2 tasks matching "milk":')
    assert (await chat.say("find tea"))["response"] == 'You have no tasks matching "tea".'


async def test_unknown_task_id_is_said_plainly(chat: Chat) -> None:
    answer = await chat.say("mark task 42 as done")
    assert "Task 42 not found" in answer["response"]
    assert answer["tool_calls"][0]["result"] == {"error": "Task 42 not found"}


async def test_help_and_not_understood(chat: Chat) -> None:
    assert "remind me to call mom" in (await chat.say("help"))["response"]
    answer = await chat.say("what is the meaning of life")
    assert "didn't understand" in answer["response"] and "OPENAI_API_KEY" in answer["response"]
    assert answer["tool_calls"] == []
    assert await chat.tasks() == []


async def test_it_without_a_previous_task_asks(chat: Chat) -> None:
    answer = await chat.say("mark it done")
    assert "Which task do you mean?" in answer["response"]


async def test_a_turn_reads_the_same_streamed_or_not(client: httpx.AsyncClient) -> None:
    """Without streaming, the offline model's reply after a tool call is written without a
    second model call; it must say what the streamed turn, which makes that call, says."""
    script = [
        "add buy milk",
        "add milk, eggs and bread",
        "what's pending?",
        "complete the eggs task",
        "find milk",
        "make it high priority",
        "delete task 999999",
        "tag the bread task with shop",
        "show me all my tasks",
    ]

    async def plain(chat: Chat, message: str) -> dict[str, Any]:
        return await chat.say(message)

    async def streamed(chat: Chat, message: str) -> dict[str, Any]:
        body: dict[str, Any] = {"message": message, "conversation_id": chat.conversation_id}
        headers = {**chat.headers, "Accept": "text/event-stream"}
        response = await client.post("/api/chat", json=body, headers=headers)
        event, answer = sse_events(response.text)[-1]
        assert event == "done", answer
        chat.conversation_id = answer["conversation_id"]
        return dict(answer)

    def shape(answer: dict[str, Any]) -> tuple[list[str], list[str]]:
        # Task ids are numbered across users: compare the words around them. The tasks of one
        # "add a, b and c" are added by calls that run at once, and so may be listed in any
        # order among themselves: compare the lines, not their order.
        lines = sorted(re.sub(r"#\d+", "#N", answer["response"]).splitlines())
        return lines, [call["name"] for call in answer["tool_calls"]]

    one, other = Chat(client, auth("plain-user")), Chat(client, auth("streaming-user"))
    for message in script:
        assert shape(await plain(one, message)) == shape(await streamed(other, message)), message
    titles = [sorted(t["title"] for t in await chat.tasks()) for chat in (one, other)]
    assert titles[0] == titles[1]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_long_list_in_one_message_is_one_turn(
    client: httpx.AsyncClient, alice: H, stream: bool
) -> None:
    items = [f"item{i}" for i in range(30)]
    message = "add " + ", ".join(items[:-1]) + " and " + items[-1]
    headers = {**alice, "Accept": "text/event-stream"} if stream else alice
    response = await client.post("/api/chat", json={"message": message}, headers=headers)
    assert response.status_code == 200, response.text
    answer = sse_events(response.text)[-1][1] if stream else response.json()
    assert answer["response"].startswith("Added 30 tasks")
    assert len(answer["tool_calls"]) == 30
    made = (await client.get("/api/tasks", params={"limit": 100}, headers=alice)).json()["data"]
    assert sorted(task["title"].lower() for task in made) == sorted(items)


async def test_a_number_too_long_to_be_an_id_is_just_words(
    client: httpx.AsyncClient, alice: H
) -> None:
    huge = "9" * 5000
    for headers in (alice, {**alice, "Accept": "text/event-stream"}):
        response = await client.post(
            "/api/chat", json={"message": f"complete task {huge}"}, headers=headers
        )
        assert response.status_code == 200, response.text
        if "event-stream" in headers.get("Accept", ""):
            assert sse_events(response.text)[-1][0] == "done"
    assert await Chat(client, alice).tasks() == []
