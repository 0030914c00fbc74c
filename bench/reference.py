"""The reference: bare FastAPI + asyncpg running the same statements as the app's hot paths,
with no ORM, no auth, no validation. The app is measured as a ratio of it, in the same run."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, Request

OWNER = "bench-0"
WRITER = "bench-writer"  # the app's creates go to this user too
COLUMNS = (
    "id, title, description, completed, completed_at, priority, due, tags, created_at, updated_at"
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["REFERENCE_DSN"], min_size=10, max_size=10
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


async def fetch(sql: str, *args: Any) -> list[dict[str, Any]]:
    async with app.state.pool.acquire() as connection:
        return [dict(row) for row in await connection.fetch(sql, *args)]


@app.get("/tasks")
async def tasks() -> list[dict[str, Any]]:
    return await fetch(
        f"SELECT {COLUMNS} FROM tasks WHERE owner_id = $1 ORDER BY created_at DESC, id DESC "
        "LIMIT 20",
        OWNER,
    )


@app.get("/tasks/{task_id}")
async def task(task_id: int) -> dict[str, Any]:
    rows = await fetch(
        f"SELECT {COLUMNS} FROM tasks WHERE id = $1 AND owner_id = $2", task_id, OWNER
    )
    return rows[0]


@app.post("/tasks", status_code=201)
async def create(request: Request) -> dict[str, Any]:
    body = await request.json()
    now = datetime.now(UTC)
    rows = await fetch(
        "INSERT INTO tasks (owner_id, title, completed, priority, tags, created_at, updated_at) "
        f"VALUES ($1, $2, false, 0, '[]', $3, $3) RETURNING {COLUMNS}",
        WRITER,
        body["title"],
        now,
    )
    return rows[0]


@app.patch("/tasks/{task_id}")
async def change(task_id: int, request: Request) -> dict[str, Any]:
    body = await request.json()
    rows = await fetch(
        f"UPDATE tasks SET title = $1, updated_at = $2 WHERE id = $3 AND owner_id = $4 "
        f"RETURNING {COLUMNS}",
        body["title"],
        datetime.now(UTC),
        task_id,
        OWNER,
    )
    return rows[0]
