"""A scripted OpenAI-compatible Chat Completions server, served over real HTTP by the tests.

Each request takes the next step of the script: a tool call, a text answer, an HTTP error, or
a stall. An empty script answers 500. Every request body is kept for the test to inspect.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Step:
    text: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    status: int = 200
    sleep: float = 0.0


@dataclass
class FakeOpenAI:
    script: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if not self.script:
            return JSONResponse({"error": {"message": "script exhausted"}}, status_code=500)
        step = self.script.pop(0)
        if step.sleep:
            await asyncio.sleep(step.sleep)
        if step.status != 200:
            return JSONResponse({"error": {"message": "upstream failure"}}, status_code=step.status)
        if step.tool:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{len(self.requests)}",
                        "type": "function",
                        "function": {"name": step.tool, "arguments": json.dumps(step.arguments)},
                    }
                ],
            }
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": step.text}
            finish = "stop"
        if body.get("stream"):
            return StreamingResponse(self._chunks(message, finish), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    async def _chunks(self, message: dict[str, Any], finish: str) -> Any:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "fake",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            return f"data: {json.dumps(payload)}\n\n"

        yield chunk({"role": "assistant"})
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            yield chunk({"tool_calls": [{"index": 0, **call}]})
        else:
            for index, word in enumerate(message["content"].split(" ")):
                yield chunk({"content": (" " if index else "") + word})
        yield chunk({}, finish)
        yield "data: [DONE]\n\n"
