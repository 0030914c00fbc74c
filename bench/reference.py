"""The reference endpoint: bare FastAPI + asyncpg, the same 20-row task page, no ORM, no auth."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["REFERENCE_DSN"], min_size=10, max_size=10
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/tasks")
async def tasks() -> list[dict[str, Any]]:
    async with app.state.pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT id, title, completed, priority, due, tags, created_at FROM tasks "
            "WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT 20",
            "bench-0",
        )
    return [dict(row) for row in rows]
