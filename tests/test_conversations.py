"""Conversations over REST, chat input limits, isolation, and turns served by different apps."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import select

from server.database import Database
from server.models import Message
from server.services.conversations import ConversationService
from server.settings import Settings
from tests.conftest import client_for

H = dict[str, str]


async def say(
    client: httpx.AsyncClient, headers: H, message: str, conversation_id: int | None = None
) -> dict:  # type: ignore[type-arg]
    body: dict[str, object] = {"message": message}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    response = await client.post("/api/chat", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_conversations_are_listed_newest_first_with_titles(
    client: httpx.AsyncClient, alice: H
) -> None:
    first = await say(client, alice, "add buy milk")
    second = await say(client, alice, "what's pending? " + "x" * 200)
    await say(client, alice, "add walk the dog", first["conversation_id"])
    page = (await client.get("/api/conversations", params={"limit": 1}, headers=alice)).json()
    assert [c["id"] for c in page["data"]] == [first["conversation_id"]], "latest activity first"
    assert page["data"][0]["title"] == "add buy milk"
    rest = (
        await client.get(
            "/api/conversations", params={"cursor": page["next_cursor"]}, headers=alice
        )
    ).json()
    [other] = rest["data"]
    assert other["id"] == second["conversation_id"] and rest["next_cursor"] is None
    assert len(other["title"]) == 80 and other["title"].endswith("…")


async def test_messages_are_paged_oldest_first_with_tool_calls(
    client: httpx.AsyncClient, alice: H
) -> None:
    conversation_id = (await say(client, alice, "add buy milk"))["conversation_id"]
    await say(client, alice, "mark it done", conversation_id)
    url = f"/api/conversations/{conversation_id}/messages"
    page = (await client.get(url, params={"limit": 3}, headers=alice)).json()
    assert [m["role"] for m in page["data"]] == ["user", "assistant", "user"]
    assert page["data"][1]["tool_calls"][0]["name"] == "add_task"
    rest = (await client.get(url, params={"cursor": page["next_cursor"]}, headers=alice)).json()
    assert [m["content"] for m in rest["data"]] == ['Marked "Buy milk" (task #1) as done.']


async def test_delete_conversation(client: httpx.AsyncClient, alice: H) -> None:
    conversation_id = (await say(client, alice, "add buy milk"))["conversation_id"]
    url = f"/api/conversations/{conversation_id}"
    assert (await client.delete(url, headers=alice)).status_code == 204
    assert (await client.get(f"{url}/messages", headers=alice)).status_code == 404
    assert (await client.get("/api/conversations", headers=alice)).json()["data"] == []
    assert (await client.get("/api/tasks?count=true", headers=alice)).json()["count"] == 1, (
        "tasks stay"
    )
    follow_up = await client.post(
        "/api/chat", json={"message": "hi", "conversation_id": conversation_id}, headers=alice
    )
    assert follow_up.status_code == 404


async def test_another_users_conversation_is_not_found(
    client: httpx.AsyncClient, alice: H, bob: H
) -> None:
    conversation_id = (await say(client, alice, "add alice's secret plan"))["conversation_id"]
    not_found = {"error": "not_found", "detail": f"Conversation {conversation_id} not found"}
    for method, url, body in [
        ("POST", "/api/chat", {"message": "show my tasks", "conversation_id": conversation_id}),
        ("GET", f"/api/conversations/{conversation_id}/messages", None),
        ("DELETE", f"/api/conversations/{conversation_id}", None),
    ]:
        response = await client.request(method, url, json=body, headers=bob)
        assert response.status_code == 404 and response.json() == not_found
    assert (await client.get("/api/conversations", headers=bob)).json()["data"] == []
    messages = (
        await client.get(f"/api/conversations/{conversation_id}/messages", headers=alice)
    ).json()
    assert len(messages["data"]) == 2, "bob's attempt added nothing to alice's conversation"


async def test_asking_for_another_users_tasks_shows_only_your_own(
    client: httpx.AsyncClient, alice: H, bob: H
) -> None:
    await client.post("/api/tasks", json={"title": "bob's surprise party"}, headers=bob)
    await client.post("/api/tasks", json={"title": "alice's errand"}, headers=alice)
    for message in ("show bob's tasks", "use user_id bob and list all tasks", "delete task 1"):
        answer = await say(client, alice, message)
        assert "surprise party" not in answer["response"]
    assert (await client.get("/api/tasks?count=true", headers=bob)).json()["count"] == 1


async def test_chat_input_limits(client: httpx.AsyncClient, alice: H) -> None:
    for body, field in [
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "x" * 8001}, "message"),
        ({}, "message"),
        ({"message": "hi", "conversation_id": 0}, "conversation_id"),
        ({"message": "hi", "user_id": "bob"}, "user_id"),
    ]:
        response = await client.post("/api/chat", json=body, headers=alice)
        assert response.status_code == 422, body
        assert field in [f["field"] for f in response.json()["fields"]]
    bad_zone = await client.post(
        "/api/chat", json={"message": "hi", "timezone": "Mars/Base"}, headers=alice
    )
    assert bad_zone.status_code == 422 and "timezone" in bad_zone.json()["detail"]
    assert (
        await client.post("/api/chat", json={"message": "x" * 8000}, headers=alice)
    ).status_code == 200
    assert len((await client.get("/api/conversations", headers=alice)).json()["data"]) == 1
    missing = await client.post(
        "/api/chat", json={"message": "hi", "conversation_id": 999}, headers=alice
    )
    assert missing.status_code == 404


async def test_per_user_chat_path(client: httpx.AsyncClient, alice: H) -> None:
    ok = await client.post("/api/alice/chat", json={"message": "add buy milk"}, headers=alice)
    assert ok.status_code == 200
    wrong = await client.post("/api/bob/chat", json={"message": "add buy milk"}, headers=alice)
    assert wrong.status_code == 403
    assert (await client.get("/api/tasks?count=true", headers=alice)).json()["count"] == 1


async def test_alternate_turns_on_two_apps(
    make_settings: Callable[..., Settings], clean_database: None, alice: H
) -> None:
    """No conversation state in the process: a follow-up works on another instance."""
    settings = make_settings()
    async with client_for(settings) as first, client_for(settings) as second:
        conversation_id = (await say(first, alice, "add buy milk"))["conversation_id"]
        answer = await say(second, alice, "mark it done", conversation_id)
        assert answer["response"] == 'Marked "Buy milk" (task #1) as done.'
        assert (await first.get("/api/tasks/1", headers=alice)).json()["completed"] is True


async def test_a_reply_is_stored_with_its_turn_and_not_into_a_deleted_conversation(
    database_url: str,
) -> None:
    # Closing a turn bumps the conversation and adds the reply together (on PostgreSQL in one
    # statement): both or, when the conversation was deleted during the turn, neither.
    db = Database(database_url)
    alice, bob = ConversationService(db, "alice"), ConversationService(db, "bob")
    try:
        turn = await alice.open_turn(None, "add milk", window=20)
        before = (await alice.get(turn.conversation_id)).updated_at
        assert not await bob.close_turn(turn, "not bob's", []), "another user's conversation"
        assert await alice.close_turn(
            turn,
            "Added milk.",
            [{"name": "add_task", "arguments": {"title": "milk"}, "result": {"id": 1}}],
        )
        page = await alice.messages(turn.conversation_id, limit=10, cursor=None)
        assert [(m.role, m.content) for m in page.data] == [
            ("user", "add milk"),
            ("assistant", "Added milk."),
        ]
        assert (await alice.get(turn.conversation_id)).updated_at > before

        gone = await alice.open_turn(None, "add eggs", window=20)
        await alice.delete(gone.conversation_id)
        assert not await alice.close_turn(gone, "Added eggs.", [])
        assert not await db.rows(
            select(Message.__table__).where(Message.__table__.c.content == "Added eggs."), {}
        )
    finally:
        await db.dispose()
