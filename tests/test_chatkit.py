"""POST /chatkit driven as the ChatKit UI drives it, over real HTTP against uvicorn.

Every streamed event is parsed with the SDK's own pydantic types (a test fails on an event
that does not validate), and what the events claim is checked against the REST API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from chatkit.types import Page, Thread, ThreadItem, ThreadMetadata, ThreadStreamEvent
from pydantic import TypeAdapter

from server.app import create_app
from server.settings import Settings
from tests.conftest import auth
from tests.fake_openai import FakeOpenAI, Step
from tests.live import served

EVENT: TypeAdapter[Any] = TypeAdapter(ThreadStreamEvent)
THREADS: TypeAdapter[Any] = TypeAdapter(Page[ThreadMetadata])
ITEMS: TypeAdapter[Any] = TypeAdapter(Page[ThreadItem])


def said(text: str) -> dict[str, Any]:
    content = [{"type": "input_text", "text": text}]
    return {"content": content, "attachments": [], "inference_options": {}}


class Kit:
    """A ChatKit client for one user."""

    def __init__(self, url: str, user: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers=auth(user), timeout=20)

    async def post(self, kind: str, /, **params: Any) -> httpx.Response:
        return await self.http.post("/chatkit", json={"type": kind, "params": params})

    async def stream(self, kind: str, /, **params: Any) -> list[Any]:
        response = await self.post(kind, **params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        events = []
        for block in response.text.split("\n\n"):
            if block.strip():
                assert block.startswith("data: "), block
                events.append(EVENT.validate_json(block.removeprefix("data: ")))
        return events

    async def call(self, kind: str, /, **params: Any) -> Any:
        response = await self.post(kind, **params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()

    async def say(self, text: str, thread: str | None = None) -> list[Any]:
        if thread is None:
            return await self.stream("threads.create", input=said(text))
        return await self.stream("threads.add_user_message", thread_id=thread, input=said(text))

    async def tasks(self) -> list[dict[str, Any]]:
        response = await self.http.get("/api/tasks", params={"status": "all"})
        return list(response.json()["data"])


def done_items(events: list[Any], kind: str) -> list[Any]:
    """The items of one type that the stream finished (or replaced)."""
    return [
        e.item
        for e in events
        if e.type in ("thread.item.done", "thread.item.replaced") and e.item.type == kind
    ]


def label_of(row: Any) -> tuple[str, str]:
    """A widget row's task title and button label."""
    return row.children[0].children[0].value, row.children[1].label


def reply(events: list[Any]) -> str:
    [answer] = done_items(events, "assistant_message")
    return str(answer.content[0].text)


def thread_of(events: list[Any]) -> str:
    assert events[0].type == "thread.created"
    return str(events[0].thread.id)


def no_errors(events: list[Any]) -> None:
    assert [e for e in events if e.type == "error"] == []


@pytest.fixture
async def kit(live_url: str) -> AsyncIterator[Callable[[str], Kit]]:
    clients: list[Kit] = []

    def open_as(user: str) -> Kit:
        clients.append(Kit(live_url, user))
        return clients[-1]

    yield open_as
    for client in clients:
        await client.http.aclose()


async def test_a_new_thread_adds_a_task_and_is_a_conversation(kit: Callable[[str], Kit]) -> None:
    alice = kit("alice")
    events = await alice.say("add buy milk")
    no_errors(events)
    kinds = [e.type for e in events]
    assert kinds[:3] == ["thread.created", "thread.item.done", "stream_options"]
    assert events[1].item.type == "user_message"
    # The tool call is shown while it runs, then as done.
    [running] = [
        e.item for e in events if e.type == "thread.item.added" and e.item.type == "workflow"
    ]
    assert running.workflow.tasks[0].title.startswith(("Adding", "Added"))
    [workflow] = done_items(events, "workflow")
    assert workflow.workflow.tasks[0].title.startswith('Added "Buy milk" (#')
    assert reply(events).startswith('Added "Buy milk"')
    deltas = [e for e in events if e.type == "thread.item.updated"]
    assert len(deltas) > 3, "the reply streams in pieces"
    [task] = await alice.tasks()
    assert task["title"] == "Buy milk"

    thread = thread_of(events)
    conversations = (await alice.http.get("/api/conversations")).json()["data"]
    assert [(str(c["id"]), c["title"]) for c in conversations] == [(thread, "add buy milk")]

    # The thread continues in ChatKit: "it" is the task just added.
    events = await alice.say("mark it done", thread)
    no_errors(events)
    assert reply(events) == f'Marked "Buy milk" (task #{task["id"]}) as done.'
    assert (await alice.tasks())[0]["completed"] is True

    # ... and through /api/chat, and ChatKit then shows that turn too.
    answer = await alice.http.post(
        "/api/chat", json={"message": "reopen it", "conversation_id": int(thread)}
    )
    assert answer.status_code == 200
    assert (await alice.tasks())[0]["completed"] is False
    loaded = Thread.model_validate(await alice.call("threads.get_by_id", thread_id=thread))
    texts = [
        item.content[0].text
        for item in loaded.items.data
        if item.type in ("user_message", "assistant_message")
    ]
    assert texts[0::2] == ["add buy milk", "mark it done", "reopen it"]
    assert texts[-1].startswith('Reopened "Buy milk"')


async def test_a_conversation_from_the_chat_api_opens_in_chatkit(kit: Callable[[str], Kit]) -> None:
    alice = kit("alice")
    started = await alice.http.post("/api/chat", json={"message": "add call mom"})
    thread = str(started.json()["conversation_id"])
    loaded = Thread.model_validate(await alice.call("threads.get_by_id", thread_id=thread))
    assert loaded.title == "add call mom"
    assert [item.type for item in loaded.items.data] == [
        "user_message",
        "workflow",
        "assistant_message",
    ]


async def test_paging_order_rename_and_delete(kit: Callable[[str], Kit]) -> None:
    alice = kit("alice")
    threads = [thread_of(await alice.say(f"add task number {n}")) for n in range(3)]

    first = THREADS.validate_python(await alice.call("threads.list", limit=2, order="desc"))
    assert [t.id for t in first.data] == threads[::-1][:2] and first.has_more
    rest = THREADS.validate_python(
        await alice.call("threads.list", limit=2, order="desc", after=first.after)
    )
    assert [t.id for t in rest.data] == [threads[0]] and not rest.has_more
    oldest = THREADS.validate_python(await alice.call("threads.list", limit=5, order="asc"))
    assert [t.id for t in oldest.data] == threads

    thread = threads[0]
    await alice.say("what's pending?", thread)
    everything = ITEMS.validate_python(
        await alice.call("items.list", thread_id=thread, limit=50, order="asc")
    )
    ids = [item.id for item in everything.data]
    assert [item.type for item in everything.data][-1] == "widget"
    newest = ITEMS.validate_python(
        await alice.call("items.list", thread_id=thread, limit=50, order="desc")
    )
    assert [item.id for item in newest.data] == ids[::-1]
    # `limit` counts items, whatever message they come from, in either order.
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        for limit in (1, 2, 3):
            collected: list[str] = []
            after = None
            while True:
                params: dict[str, Any] = {"thread_id": thread, "limit": limit, "order": order}
                if after:
                    params["after"] = after
                page = ITEMS.validate_python(await alice.call("items.list", **params))
                assert len(page.data) == min(limit, len(expected) - len(collected))
                collected += [item.id for item in page.data]
                if not page.has_more:
                    break
                after = page.after
            assert collected == expected, (order, limit)

    renamed = await alice.call("threads.update", thread_id=thread, title="Errands")
    assert renamed["title"] == "Errands"
    conversation = await alice.http.get(f"/api/conversations/{thread}/messages")
    assert conversation.status_code == 200
    titles = [c["title"] for c in (await alice.http.get("/api/conversations")).json()["data"]]
    assert "Errands" in titles
    assert (await alice.post("threads.update", thread_id=thread, title=" ")).status_code == 422

    await alice.call("threads.delete", thread_id=thread)
    assert (await alice.post("threads.get_by_id", thread_id=thread)).status_code == 404
    gone = await alice.http.get(f"/api/conversations/{thread}/messages")
    assert gone.status_code == 404


async def test_the_task_widget_completes_and_reopens_in_place(kit: Callable[[str], Kit]) -> None:
    alice = kit("alice")
    thread = thread_of(await alice.say("add buy milk"))
    await alice.say("add call mom", thread)
    events = await alice.say("what's pending?", thread)
    [widget] = done_items(events, "widget")
    rows = {row.children[0].children[0].value: row for row in widget.widget.children}
    assert sorted(rows) == ["Buy milk", "Call mom"]
    milk = next(t for t in await alice.tasks() if t["title"] == "Buy milk")
    button = rows["Buy milk"].children[1]
    assert button.onClickAction.type == "task.complete"
    assert button.onClickAction.payload == {"task_id": milk["id"]}

    events = await alice.stream(
        "threads.custom_action",
        thread_id=thread,
        item_id=widget.id,
        action={"type": "task.complete", "payload": {"task_id": milk["id"]}},
    )
    no_errors(events)
    [replaced] = [e for e in events if e.type == "thread.item.replaced"]
    assert replaced.item.id == widget.id
    labels = dict(label_of(row) for row in replaced.item.widget.children)
    assert labels == {"Buy milk": "Reopen", "Call mom": "Done"}
    done = {t["title"]: t["completed"] for t in await alice.tasks()}
    assert done == {"Buy milk": True, "Call mom": False}

    # A task the widget does not show, another user's task, a made-up action: refused.
    bob = kit("bob")
    bobs = await bob.http.post("/api/tasks", json={"title": "Bob's secret"})
    for action in (
        {"type": "task.complete", "payload": {"task_id": bobs.json()["id"]}},
        {"type": "task.complete", "payload": {"task_id": "1"}},
        {"type": "task.delete_everything", "payload": {}},
    ):
        events = await alice.stream(
            "threads.custom_action", thread_id=thread, item_id=widget.id, action=action
        )
        assert [e.type for e in events if e.type == "error"] == ["error"], action
    assert (await bob.tasks())[0]["completed"] is False


async def test_users_cannot_reach_each_others_threads(kit: Callable[[str], Kit]) -> None:
    alice, bob = kit("alice"), kit("bob")
    events = await alice.say("add buy milk")
    thread, message = thread_of(events), events[1].item.id
    events = await alice.say("what's pending?", thread)
    [widget] = [item.id for item in done_items(events, "widget")]
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("threads.get_by_id", {"thread_id": thread}),
        ("items.list", {"thread_id": thread}),
        ("threads.update", {"thread_id": thread, "title": "mine now"}),
        ("threads.delete", {"thread_id": thread}),
        ("threads.add_user_message", {"thread_id": thread, "input": said("delete task 1")}),
        ("threads.retry_after_item", {"thread_id": thread, "item_id": message}),
        (
            "threads.custom_action",
            {
                "thread_id": thread,
                "item_id": widget,
                "action": {"type": "task.complete", "payload": {"task_id": 1}},
            },
        ),
        ("items.feedback", {"thread_id": thread, "item_ids": [message], "kind": "positive"}),
    ]
    for kind, params in attempts:
        response = await bob.post(kind, **params)
        assert response.status_code == 404, (kind, response.text)
        assert response.json()["error"] == "not_found"
    assert THREADS.validate_python(await bob.call("threads.list")).data == []
    loaded = Thread.model_validate(await alice.call("threads.get_by_id", thread_id=thread))
    assert loaded.title == "add buy milk" and len(loaded.items.data) == 7
    assert (await alice.tasks())[0]["completed"] is False


async def test_retry_answers_again_without_doing_twice(kit: Callable[[str], Kit]) -> None:
    alice = kit("alice")
    events = await alice.say("add buy milk")
    thread, message = thread_of(events), events[1].item.id
    await alice.say("add call mom", thread)
    events = await alice.stream("threads.retry_after_item", thread_id=thread, item_id=message)
    no_errors(events)
    assert reply(events).startswith('Added "Buy milk"')
    assert sorted(t["title"] for t in await alice.tasks()) == ["Buy milk", "Call mom"]
    loaded = Thread.model_validate(await alice.call("threads.get_by_id", thread_id=thread))
    assert [item.type for item in loaded.items.data] == [
        "user_message",
        "workflow",
        "assistant_message",
    ], "the later message and its answer are gone, as ChatKit asked"
    answer = next(item for item in loaded.items.data if item.type == "assistant_message")
    retried = await alice.post("threads.retry_after_item", thread_id=thread, item_id=answer.id)
    assert retried.status_code == 404, "only a user message can be retried"


async def test_bad_requests_are_clear_4xx_and_store_nothing(kit: Callable[[str], Kit]) -> None:
    alice = kit("alice")
    for body, status in (
        (b"{not json", 422),
        (b'{"type": "threads.create"}', 422),
        (b'{"type": "threads.explode", "params": {}}', 422),
        (b'{"type": "input.transcribe", "params": {"audio_base64": "", "mime_type": "x"}}', 422),
        (b"[]", 422),
    ):
        response = await alice.http.post("/chatkit", content=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"] == "validation_error"
    too_long = await alice.post("threads.create", input=said("x" * 20_000))
    assert too_long.status_code in (413, 422)
    with_file = {**said("add this"), "attachments": ["atc_123"]}
    refused = await alice.post("threads.create", input=with_file)
    assert refused.status_code == 422 and "attachments" in refused.json()["detail"]
    unknown = await alice.post("threads.get_by_id", thread_id="thr_nope")
    assert unknown.status_code == 404
    anonymous = await httpx.AsyncClient(base_url=str(alice.http.base_url)).post(
        "/chatkit", json={"type": "threads.list", "params": {}}
    )
    assert anonymous.status_code == 401
    zone = await alice.http.post(
        "/chatkit",
        json={"type": "threads.list", "params": {}},
        headers={"X-Timezone": "Mars/Olympus"},
    )
    assert zone.status_code == 422
    assert (await alice.http.get("/api/conversations")).json()["data"] == []
    assert await alice.tasks() == []


async def test_the_chat_rate_limit_is_shared_and_refuses_before_storing(
    make_settings: Callable[..., Settings], clean_database: None
) -> None:
    settings = make_settings(rate_limit_enabled=True, rate_limit_chat="1/minute")
    async with served(create_app(settings)) as url:
        alice = Kit(url, "alice")
        thread = thread_of(await alice.say("add buy milk"))
        more = said("add eggs")
        refused = await alice.post("threads.add_user_message", thread_id=thread, input=more)
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited" and "Retry-After" in refused.headers
        chat = await alice.http.post("/api/chat", json={"message": "add eggs"})
        assert chat.status_code == 429, "one budget for /chatkit and /api/chat"
        # Reading threads spends the REST budget, not the chat one.
        assert len(THREADS.validate_python(await alice.call("threads.list")).data) == 1
        loaded = Thread.model_validate(await alice.call("threads.get_by_id", thread_id=thread))
        assert len(loaded.items.data) == 3
        assert [t["title"] for t in await alice.tasks()] == ["Buy milk"]
        await alice.http.aclose()


async def test_an_openai_compatible_model_behind_chatkit(
    make_settings: Callable[..., Settings], clean_database: None, fake: FakeOpenAI
) -> None:
    url: str = fake.url  # type: ignore[attr-defined]
    settings = make_settings(openai_base_url=url, agent_model="fake-model", agent_timeout=10)
    fake.script = [
        Step(tool="add_task", arguments={"title": "Buy milk"}),
        Step(text="Done: milk is on your list."),
    ]
    async with served(create_app(settings)) as base:
        alice = Kit(base, "alice")
        events = await alice.say("I need milk")
        no_errors(events)
        assert reply(events) == "Done: milk is on your list."
        [answer] = done_items(events, "assistant_message")
        assert answer.id == f"ans_{events[1].item.id.removeprefix('msg_')}"
        assert [t["title"] for t in await alice.tasks()] == ["Buy milk"]

        fake.script = []  # the provider fails: an error event, the message kept for a retry
        events = await alice.say("and eggs")
        errors = [e for e in events if e.type == "error"]
        assert len(errors) == 1 and errors[0].allow_retry and "saved" in (errors[0].message or "")
        await alice.http.aclose()


async def test_a_client_that_hangs_up_stops_the_run(
    make_settings: Callable[..., Settings], clean_database: None, fake: FakeOpenAI
) -> None:
    url: str = fake.url  # type: ignore[attr-defined]
    settings = make_settings(openai_base_url=url, agent_model="fake-model", agent_timeout=10)
    # The model thinks for a second, then asks for a tool: by then nobody is listening.
    fake.script = [Step(sleep=1, tool="add_task", arguments={"title": "orphan"}), Step(text="ok")]
    async with served(create_app(settings)) as base:
        alice = Kit(base, "alice")
        body = {"type": "threads.create", "params": {"input": said("add orphan")}}
        async with alice.http.stream("POST", "/chatkit", json=body) as response:
            lines = response.aiter_lines()
            first = EVENT.validate_json((await anext(lines)).removeprefix("data: "))
            assert first.type == "thread.created"
            await asyncio.sleep(0.5)  # the model is thinking now
        await asyncio.sleep(2)
        assert await alice.tasks() == [], "the run stopped: its tool call never ran"
        assert len(fake.requests) == 1, "and the model was not asked again"
        messages = (await alice.http.get(f"/api/conversations/{first.thread.id}/messages")).json()
        assert [(m["role"], m["failed"]) for m in messages["data"]] == [("user", True)]
        await alice.http.aclose()
