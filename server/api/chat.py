"""POST /api/chat: one turn with the agent, as JSON or as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from server.deps import CurrentUser
from server.models import ChatRequest, ChatResponse, error_responses

STREAM_DOC = """
Send `Accept: text/event-stream` to get the answer as Server-Sent Events:
`conversation` `{"conversation_id"}` first; `delta` `{"text"}` as the reply is written;
`tool_call` `{"id", "name", "arguments"}` and `tool_result` `{"id", "name", "result"}` around
each tool; finally `done` with the same body as the JSON answer, or `error`
`{"error", "detail", "status"}` (the user's message stays stored; sending it again retries).
"""


async def _sse(events: AsyncIterator[tuple[str, dict[str, Any]]]) -> AsyncIterator[bytes]:
    async for name, data in events:
        yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def build_router() -> APIRouter:
    router = APIRouter(tags=["chat"])

    @router.post(
        "/chat",
        description="Send a message; the agent answers and may change tasks." + STREAM_DOC,
        responses={200: {"content": {"text/event-stream": {}}}, **error_responses(502, 504)},
        response_model=ChatResponse,
    )
    async def chat(request: Request, body: ChatRequest, user: CurrentUser) -> Any:
        service = request.app.state.chat
        turn = await service.prepare(user, body)
        if "text/event-stream" in request.headers.get("accept", ""):
            return StreamingResponse(
                _sse(service.stream(turn)),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await service.run(turn)

    return router
