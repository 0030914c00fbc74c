from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from server.http import error_response

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    """The process is up; and how many webhook deliveries failed since it started (each
    failure is also logged, and retried)."""
    return {"status": "ok", "webhook_failures": request.app.state.jobs.webhook_failures}


@router.get("/readyz", response_model=None)
async def readyz(request: Request) -> dict[str, Any] | JSONResponse:
    """The database answers; 503 when it does not, so a load balancer stops sending traffic."""
    try:
        async with asyncio.timeout(5):
            async with request.app.state.db.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception as exc:
        return error_response(503, "not_ready", f"database unreachable: {type(exc).__name__}")
    return {"status": "ok", "database": "ok"}
