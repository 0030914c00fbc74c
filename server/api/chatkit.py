"""POST /chatkit: the ChatKit server protocol, for a ChatKit UI pointed at this server.

The same bearer token as every route; the requests that run the agent spend the chat budget
(shared with /api/chat), the others the REST budget. Before the protocol starts, errors are
the project's JSON errors; after it, the SDK's error events.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any

from chatkit.server import StreamingResult
from fastapi import APIRouter, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from server.deps import CurrentUser
from server.timezones import ZoneName
from todo_agent.chatkit_server import AGENT_REQUESTS, REQUEST, SUPPORTED
from todo_agent.chatkit_store import KitContext

DOC = """The [ChatKit](https://openai.github.io/chatkit-python/) server protocol: a JSON request
with a `type` (`threads.create`, `threads.add_user_message`, `threads.list`, `items.list`,
`threads.custom_action`, ...). Streaming types answer with `text/event-stream`, the others
with JSON. A thread is a conversation of `/api/conversations`. Send `X-Timezone` (an IANA
name) for due phrases and times in your zone."""


def _request_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """The SDK's own schema of a ChatKit request (a union on `type`) narrowed to the types
    this server answers, and the schemas it refers to, for the API's components."""
    with warnings.catch_warnings():  # a generic default the SDK's models leave out anyway
        warnings.simplefilter("ignore")
        schema = REQUEST.json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs")
    mapping = {
        kind: ref for kind, ref in schema["discriminator"]["mapping"].items() if kind in SUPPORTED
    }
    schema["discriminator"]["mapping"] = mapping
    schema["oneOf"] = [{"$ref": ref} for ref in mapping.values()]
    # Messages carry no attachments here.
    definitions["UserMessageInput"]["properties"]["attachments"]["maxItems"] = 0
    return schema, definitions


REQUEST_SCHEMA, REQUEST_DEFINITIONS = _request_schemas()


def document(app: FastAPI) -> None:
    """Add the ChatKit request schemas to the app's OpenAPI components."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            known = schema.setdefault("components", {}).setdefault("schemas", {})
            clash = known.keys() & REQUEST_DEFINITIONS.keys()
            assert not clash, f"ChatKit schemas named like ours: {clash}"
            known.update(REQUEST_DEFINITIONS)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _request_type(body: bytes) -> str:
    """The request's type, once the request is what the document says: strictly, as the SDK
    would otherwise take `"limit": false` for 0."""
    try:
        request = REQUEST.validate_json(body, strict=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    return str(request.type)


def build_router() -> APIRouter:
    router = APIRouter(tags=["chatkit"])

    @router.post(
        "/chatkit",
        description=DOC,
        responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": REQUEST_SCHEMA}},
            }
        },
    )
    async def chatkit(
        request: Request,
        user: CurrentUser,
        x_timezone: Annotated[ZoneName | None, Header()] = None,
    ) -> Response:
        body = await request.body()
        budget = "chat" if _request_type(body) in AGENT_REQUESTS else "rest"
        await request.app.state.rate_limits.spend(request, budget)
        timezone = x_timezone or request.app.state.settings.default_timezone
        result = await request.app.state.chatkit.process(body, KitContext(user, timezone))
        if isinstance(result, StreamingResult):
            return StreamingResponse(
                result,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return Response(result.json, media_type="application/json")

    return router
