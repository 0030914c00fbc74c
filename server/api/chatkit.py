"""POST /chatkit: the ChatKit server protocol, for a ChatKit UI pointed at this server.

The same bearer token as every route; the requests that run the agent spend the chat budget
(shared with /api/chat), the others the REST budget. Before the protocol starts, errors are
the project's JSON errors; after it, the SDK's error events.
"""

from __future__ import annotations

import json

from chatkit.server import StreamingResult
from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse

from mcp_tools.dates import zone
from server.deps import CurrentUser
from server.errors import InvalidInput
from todo_agent.chatkit_server import AGENT_REQUESTS
from todo_agent.chatkit_store import KitContext

DOC = """The [ChatKit](https://openai.github.io/chatkit-python/) server protocol: a JSON request
with a `type` (`threads.create`, `threads.add_user_message`, `threads.list`, `items.list`,
`threads.custom_action`, ...). Streaming types answer with `text/event-stream`, the others
with JSON. A thread is a conversation of `/api/conversations`. Send `X-Timezone` (an IANA
name) for due phrases and times in your zone."""


def _request_type(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise InvalidInput("the body is not JSON") from exc
    kind = parsed.get("type") if isinstance(parsed, dict) else None
    if not isinstance(kind, str):
        raise InvalidInput("a ChatKit request needs a type")
    return kind


def build_router() -> APIRouter:
    router = APIRouter(tags=["chatkit"])

    @router.post(
        "/chatkit",
        description=DOC,
        responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def chatkit(
        request: Request,
        user: CurrentUser,
        x_timezone: str | None = Header(default=None, max_length=64),
    ) -> Response:
        body = await request.body()
        limits = request.app.state.rate_limits
        if _request_type(body) in AGENT_REQUESTS:
            headers = await limits.check_chat(request)
        else:
            headers = await limits.check_rest(request)
        timezone = x_timezone or request.app.state.settings.default_timezone
        try:
            zone(timezone)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        result = await request.app.state.chatkit.process(body, KitContext(user, timezone))
        if isinstance(result, StreamingResult):
            return StreamingResponse(
                result,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers},
            )
        return Response(result.json, media_type="application/json", headers=headers)

    return router
