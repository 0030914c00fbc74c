"""REST task API: every endpoint, filter, sort and limit, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from server.database import create_engine
from server.settings import Settings
from tests.conftest import auth

H = dict[str, str]


async def create(client: httpx.AsyncClient, headers: H, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/tasks", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_returns_the_task_normalised(client: httpx.AsyncClient, alice: H) -> None:
    task = await create(
        client,
        alice,
        title="  buy milk ",
        description="2 litres",
        priority="high",
        due="2026-11-25T10:00:00+02:00",
        tags=["Home", "home", "errand"],
    )
    assert task["title"] == "buy milk"
    assert task["priority"] == "high"
    assert task["due"] == "2026-11-25T08:00:00Z"
    assert task["tags"] == ["home", "errand"]
    assert task["completed"] is False and task["completed_at"] is None
    fetched = (await client.get(f"/api/tasks/{task['id']}", headers=alice)).json()
    assert fetched == task


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x" * 501}, "title"),
        ({}, "title"),
        ({"title": "ok", "description": "d" * 10_001}, "description"),
        ({"title": "ok", "priority": "urgent"}, "priority"),
        ({"title": "ok", "due": "2026-11-25T10:00:00"}, "due"),
        ({"title": "ok", "due": "next week"}, "due"),
        ({"title": "ok", "tags": ["x" * 41]}, "tags.0"),
        ({"title": "ok", "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"title": "ok", "owner_id": "bob"}, "owner_id"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, alice: H, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/tasks", json=body, headers=alice)
    assert response.status_code == 422
    payload = response.json()
    assert payload["error"] == "validation_error"
    assert field in [f["field"] for f in payload["fields"]]
    assert (await client.get("/api/tasks?count=true", headers=alice)).json()["count"] == 0


async def test_title_of_exactly_500_characters_is_accepted(
    client: httpx.AsyncClient, alice: H
) -> None:
    task = await create(client, alice, title="x" * 500, description="d" * 10_000)
    assert len(task["title"]) == 500


async def test_malformed_json_is_422(client: httpx.AsyncClient, alice: H) -> None:
    response = await client.post(
        "/api/tasks", content=b"{not json", headers={**alice, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


async def test_body_over_one_mebibyte_is_413(client: httpx.AsyncClient, alice: H) -> None:
    big = {"title": "big", "description": "x" * (1024 * 1024)}
    response = await client.post("/api/tasks", json=big, headers=alice)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"

    async def chunks() -> Any:  # no Content-Length: the limit still holds
        for _ in range(20):
            yield b"x" * 65536

    response = await client.post(
        "/api/tasks", content=chunks(), headers={**alice, "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert (await client.get("/api/tasks?count=true", headers=alice)).json()["count"] == 0


async def test_patch_changes_only_what_is_sent(client: httpx.AsyncClient, alice: H) -> None:
    task = await create(client, alice, title="a", description="keep", tags=["x"])
    response = await client.patch(
        f"/api/tasks/{task['id']}", json={"title": "b", "priority": "low"}, headers=alice
    )
    assert response.status_code == 200
    patched = response.json()
    assert (patched["title"], patched["priority"], patched["description"]) == ("b", "low", "keep")
    assert patched["tags"] == ["x"]
    assert patched["updated_at"] > task["updated_at"]

    cleared = await client.patch(
        f"/api/tasks/{task['id']}", json={"description": None, "due": None}, headers=alice
    )
    assert cleared.json()["description"] is None

    done = (
        await client.patch(f"/api/tasks/{task['id']}", json={"completed": True}, headers=alice)
    ).json()
    assert done["completed"] is True and done["completed_at"] is not None


async def test_patch_rejects_null_title_and_unknown_fields(
    client: httpx.AsyncClient, alice: H
) -> None:
    task = await create(client, alice, title="a")
    for body in ({"title": None}, {"completed": None}, {"colour": "red"}):
        response = await client.patch(f"/api/tasks/{task['id']}", json=body, headers=alice)
        assert response.status_code == 422, body
    assert (await client.get(f"/api/tasks/{task['id']}", headers=alice)).json()["title"] == "a"


async def test_put_replaces_everything(client: httpx.AsyncClient, alice: H) -> None:
    task = await create(client, alice, title="a", description="d", priority="high", tags=["x"])
    response = await client.put(
        f"/api/tasks/{task['id']}", json={"title": "new", "completed": True}, headers=alice
    )
    assert response.status_code == 200
    replaced = response.json()
    assert replaced["title"] == "new"
    assert replaced["description"] is None and replaced["priority"] == "none"
    assert replaced["tags"] == [] and replaced["completed"] is True
    missing_title = await client.put(f"/api/tasks/{task['id']}", json={}, headers=alice)
    assert missing_title.status_code == 422


async def test_complete_reopen_and_delete(client: httpx.AsyncClient, alice: H) -> None:
    task = await create(client, alice, title="a")
    done = (await client.post(f"/api/tasks/{task['id']}/complete", headers=alice)).json()
    assert done["completed"] is True and done["completed_at"]
    again = (await client.post(f"/api/tasks/{task['id']}/complete", headers=alice)).json()
    assert again["completed_at"] == done["completed_at"], "completing twice keeps the first time"
    reopened = (await client.post(f"/api/tasks/{task['id']}/reopen", headers=alice)).json()
    assert reopened["completed"] is False and reopened["completed_at"] is None

    response = await client.delete(f"/api/tasks/{task['id']}", headers=alice)
    assert response.status_code == 204 and response.content == b""
    gone = await client.get(f"/api/tasks/{task['id']}", headers=alice)
    assert gone.status_code == 404
    assert gone.json() == {"error": "not_found", "detail": f"Task {task['id']} not found"}
    assert (await client.delete(f"/api/tasks/{task['id']}", headers=alice)).status_code == 404


async def test_unknown_route_and_method_use_the_error_shape(
    client: httpx.AsyncClient, alice: H
) -> None:
    response = await client.get("/api/nothing", headers=alice)
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    response = await client.request("TRACE", "/api/tasks", headers=alice)
    assert response.status_code == 405 and "detail" in response.json()
    response = await client.get("/api/tasks/abc", headers=alice)
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "task_id"


# ---------------------------------------------------------------- listing


async def titles(client: httpx.AsyncClient, headers: H, **params: Any) -> list[str]:
    response = await client.get("/api/tasks", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [task["title"] for task in response.json()["data"]]


@pytest.fixture
async def sample(client: httpx.AsyncClient, alice: H) -> None:
    await create(
        client, alice, title="Buy milk", priority="high", tags=["home"], due="2026-11-24T09:00:00Z"
    )
    await create(
        client,
        alice,
        title="Call mom",
        description="about the 100% PLAN_b",
        priority="low",
        due="2026-11-23T09:00:00Z",
    )
    paid = await create(client, alice, title="Pay bills", priority="medium", tags=["home", "money"])
    await client.post(f"/api/tasks/{paid['id']}/complete", headers=alice)
    await create(client, alice, title="Read book", tags=["fun"], due="2026-11-30T09:00:00Z")


@pytest.mark.usefixtures("sample")
async def test_listing_filters(client: httpx.AsyncClient, alice: H) -> None:
    assert await titles(client, alice) == ["Read book", "Pay bills", "Call mom", "Buy milk"]
    assert await titles(client, alice, status="completed") == ["Pay bills"]
    assert await titles(client, alice, status="pending") == ["Read book", "Call mom", "Buy milk"]
    assert await titles(client, alice, q="MILK") == ["Buy milk"]
    assert await titles(client, alice, q="plan_b") == ["Call mom"], "matches the description"
    assert await titles(client, alice, q="100%") == ["Call mom"], "% is a character, not a wildcard"
    assert await titles(client, alice, q="_") == ["Call mom"]
    assert await titles(client, alice, priority="medium") == ["Pay bills"]
    assert await titles(client, alice, tag="HOME") == ["Pay bills", "Buy milk"]
    assert await titles(client, alice, tag="nope") == []
    assert await titles(client, alice, due_before="2026-11-24T09:00:00Z") == ["Call mom"]
    assert await titles(client, alice, due_after="2026-11-23T09:00:00Z") == [
        "Read book",
        "Buy milk",
    ]
    assert await titles(client, alice, status="pending", tag="home", q="buy") == ["Buy milk"]
    response = await client.get("/api/tasks", params={"q": "milk", "count": True}, headers=alice)
    assert response.json()["count"] == 1 and response.json()["next_cursor"] is None


@pytest.mark.usefixtures("sample")
async def test_listing_sorts(client: httpx.AsyncClient, alice: H) -> None:
    assert await titles(client, alice, sort="created") == [
        "Buy milk",
        "Call mom",
        "Pay bills",
        "Read book",
    ]
    assert await titles(client, alice, sort="due") == [
        "Call mom",
        "Buy milk",
        "Read book",
        "Pay bills",
    ]
    assert await titles(client, alice, sort="-due") == [
        "Read book",
        "Buy milk",
        "Call mom",
        "Pay bills",
    ]
    assert await titles(client, alice, sort="-priority") == [
        "Buy milk",
        "Pay bills",
        "Call mom",
        "Read book",
    ]
    assert await titles(client, alice, sort="priority") == [
        "Read book",
        "Call mom",
        "Pay bills",
        "Buy milk",
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"sort": "title"},
        {"status": "done"},
        {"priority": "x"},
        {"due_before": "tomorrow"},
        {"cursor": "garbage!"},
    ],
)
async def test_bad_listing_parameters_are_422(
    client: httpx.AsyncClient, alice: H, params: dict[str, Any]
) -> None:
    response = await client.get("/api/tasks", params=params, headers=alice)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert next(iter(params)) in response.json()["detail"]  # it names the parameter


@pytest.mark.parametrize("path", ["/api/tasks", "/api/{user_id}/tasks"])
async def test_the_listing_parameters_are_documented(client: httpx.AsyncClient, path: str) -> None:
    # The listing reads its query string itself (server/api/params.py), so its OpenAPI
    # parameters are written from the model: each one, with its bounds and its enum.
    spec = (await client.get("/openapi.json")).json()
    parameters = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
    assert set(parameters) - {"user_id"} == {
        "status", "q", "priority", "tag", "due_before", "due_after",
        "sort", "limit", "cursor", "count", "repeating",
    }  # fmt: skip
    assert all(p["in"] == "query" for name, p in parameters.items() if name != "user_id")
    assert parameters["limit"]["schema"]["maximum"] == 100
    assert parameters["status"]["schema"]["enum"] == ["all", "pending", "completed"]
    priority = parameters["priority"]["schema"]["anyOf"][0]["$ref"].rsplit("/", 1)[-1]
    assert spec["components"]["schemas"][priority]["enum"] == ["none", "low", "medium", "high"]


@pytest.mark.parametrize("sort", ["-created", "created", "due", "-due", "priority", "-priority"])
async def test_pagination_visits_every_task_once(
    client: httpx.AsyncClient, alice: H, sort: str
) -> None:
    # Ties on due and priority, and tasks without a due date, are where keyset paging breaks.
    for i in range(23):
        due = None if i % 4 == 0 else f"2026-12-{1 + i % 3:02d}T00:00:00Z"
        await create(client, alice, title=f"t{i}", due=due, priority=["none", "low", "high"][i % 3])
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5, "sort": sort, "count": True}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/api/tasks", params=params, headers=alice)).json()
        # Counted on the first page only: a cursor page costs one statement.
        assert body["count"] == (23 if cursor is None else None)
        seen += [task["id"] for task in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert len(seen) == 23 and len(set(seen)) == 23
    full = (
        await client.get("/api/tasks", params={"limit": 100, "sort": sort}, headers=alice)
    ).json()
    assert [task["id"] for task in full["data"]] == seen, "pages join into the same order"


async def test_every_cursor_of_the_documented_form_is_a_position(
    client: httpx.AsyncClient, alice: H
) -> None:
    """The schema states a cursor's form; any string of it names a place in any order (a
    value or id beyond the table's is the place past everything), so none is refused."""
    ids = [(await create(client, alice, title=f"t{i}"))["id"] for i in range(3)]
    newest_first = ids[::-1]
    cursor = (await client.get("/api/tasks", params={"limit": 1}, headers=alice)).json()[
        "next_cursor"
    ]
    cases = [
        ("-created", cursor, newest_first[1:]),
        ("-created", "99999999999999999999_99999999999", newest_first),
        ("-created", "-99999999999999999999_0", []),
        ("created", "-99999999999999999999_0", ids),
        ("priority", "-5_0", ids),
        ("-priority", "9_99999999999", newest_first),
        ("due", "_0", ids),  # past every due date: the tasks without one, by id
        ("due", cursor, ids),  # a cursor of another order still names a place in this one
    ]
    for sort, given, expected in cases:
        response = await client.get(
            "/api/tasks", params={"cursor": given, "sort": sort}, headers=alice
        )
        assert response.status_code == 200, (sort, given, response.text)
        assert [task["id"] for task in response.json()["data"]] == expected, (sort, given)


async def test_default_page_is_20(client: httpx.AsyncClient, alice: H) -> None:
    for i in range(21):
        await create(client, alice, title=f"t{i}")
    body = (await client.get("/api/tasks", headers=alice)).json()
    assert len(body["data"]) == 20 and body["count"] is None and body["next_cursor"]
    counted = (await client.get("/api/tasks?count=true", headers=alice)).json()
    assert counted["count"] == 21 and counted["data"] == body["data"]


# ---------------------------------------------------------------- isolation


async def test_users_never_see_or_touch_each_others_tasks(
    client: httpx.AsyncClient, alice: H, bob: H
) -> None:
    mine = await create(client, alice, title="alice's secret")
    path = f"/api/tasks/{mine['id']}"
    not_found = {"error": "not_found", "detail": f"Task {mine['id']} not found"}
    for method, url, body in [
        ("GET", path, None),
        ("PATCH", path, {"title": "hacked"}),
        ("PUT", path, {"title": "hacked"}),
        ("DELETE", path, None),
        ("POST", f"{path}/complete", None),
        ("POST", f"{path}/reopen", None),
        ("PATCH", f"/api/bob/tasks/{mine['id']}/complete", None),
        ("GET", f"/api/bob/tasks/{mine['id']}", None),
        ("DELETE", f"/api/bob/tasks/{mine['id']}", None),
    ]:
        response = await client.request(method, url, json=body, headers=bob)
        assert response.status_code == 404, (method, url)
        assert response.json() == not_found
    assert (await client.get("/api/tasks?count=true", headers=bob)).json() == {
        "data": [],
        "count": 0,
        "next_cursor": None,
    }
    assert (await client.get(path, headers=alice)).json() == mine


async def test_per_user_paths_require_the_tokens_own_user(
    client: httpx.AsyncClient, alice: H, bob: H
) -> None:
    task = await create(client, alice, title="a")
    for method, url in [
        ("GET", "/api/alice/tasks"),
        ("POST", "/api/alice/tasks"),
        ("GET", f"/api/alice/tasks/{task['id']}"),
        ("PATCH", f"/api/alice/tasks/{task['id']}"),
        ("PUT", f"/api/alice/tasks/{task['id']}"),
        ("DELETE", f"/api/alice/tasks/{task['id']}"),
        ("PATCH", f"/api/alice/tasks/{task['id']}/complete"),
        ("POST", f"/api/alice/tasks/{task['id']}/reopen"),
    ]:
        response = await client.request(method, url, json={"title": "x"}, headers=bob)
        assert response.status_code == 403, (method, url)
        assert response.json()["error"] == "forbidden"
    assert (await client.get(f"/api/tasks/{task['id']}", headers=alice)).json()["title"] == "a"


async def test_per_user_paths_work_for_the_owner(client: httpx.AsyncClient, alice: H) -> None:
    created = await client.post("/api/alice/tasks", json={"title": "via path"}, headers=alice)
    assert created.status_code == 201
    task_id = created.json()["id"]
    listed = (await client.get("/api/alice/tasks", headers=alice)).json()
    assert [t["id"] for t in listed["data"]] == [task_id]
    toggled = (await client.patch(f"/api/alice/tasks/{task_id}/complete", headers=alice)).json()
    assert toggled["completed"] is True
    toggled = (await client.patch(f"/api/alice/tasks/{task_id}/complete", headers=alice)).json()
    assert toggled["completed"] is False
    patched = await client.patch(f"/api/alice/tasks/{task_id}", json={"title": "b"}, headers=alice)
    assert patched.json()["title"] == "b"
    assert (await client.delete(f"/api/alice/tasks/{task_id}", headers=alice)).status_code == 204


async def test_a_user_id_with_odd_characters_is_just_a_user(client: httpx.AsyncClient) -> None:
    headers = auth("user with spaces/and?odd")
    await create(client, headers, title="x")
    assert len((await client.get("/api/tasks", headers=headers)).json()["data"]) == 1


async def test_ids_beyond_32_bits_work_everywhere(
    live_url: str, settings: Settings, alice: H
) -> None:
    """Ids are 64-bit: a busy deployment passes 2**31 tasks and events and carries on."""
    start = 2**31 + 10
    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        for table in ("tasks", "events"):
            if engine.dialect.name == "postgresql":
                await connection.exec_driver_sql(f"ALTER SEQUENCE {table}_id_seq RESTART {start}")
            else:
                await connection.exec_driver_sql(
                    f"INSERT INTO sqlite_sequence (name, seq) VALUES ('{table}', {start - 1})"
                )
    await engine.dispose()

    async with httpx.AsyncClient(base_url=live_url, timeout=10) as client:
        await _count_past_32_bits(client, alice, start)


async def _count_past_32_bits(client: httpx.AsyncClient, alice: H, start: int) -> None:
    first = await create(client, alice, title="first")
    second = await create(client, alice, title="second", due="2030-01-01T09:00:00Z")
    assert first["id"] == start and second["id"] == start + 1
    page = await client.get("/api/tasks", params={"limit": 1}, headers=alice)
    following = await client.get(
        "/api/tasks", params={"limit": 1, "cursor": page.json()["next_cursor"]}, headers=alice
    )
    assert [t["title"] for t in following.json()["data"]] == ["first"]
    done = await client.post(f"/api/tasks/{first['id']}/complete", headers=alice)
    assert done.status_code == 200 and done.json()["completed"] is True
    assert (await client.delete(f"/api/tasks/{second['id']}", headers=alice)).status_code == 204
    async with client.stream(
        "GET", "/api/events", headers={**alice, "Last-Event-ID": str(start)}
    ) as stream:
        ids = []
        async for line in stream.aiter_lines():
            if line.startswith("id: "):
                ids.append(int(line.removeprefix("id: ")))
            if len(ids) == 3:
                break
    assert ids == [start + 1, start + 2, start + 3]
