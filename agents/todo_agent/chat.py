"""One stateless chat turn: history from the database, the agent run, both messages stored.

No conversation state lives in the process, so any app process can serve any turn. The
database is touched in short transactions before and after the model runs, never during it:
a slow model does not hold a connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from agents.exceptions import AgentsException
from agents.items import RunItem, ToolCallItem, ToolCallOutputItem
from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent
from openai import APIError, APITimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agents import Agent, RunConfig, Runner, set_tracing_disabled
from mcp_tools.dates import zone
from server.errors import InvalidInput, UpstreamError, UpstreamTimeout
from server.models import ChatRequest, ChatResponse, ToolCallRecord
from server.services.conversations import ConversationService
from server.settings import Settings
from todo_agent.mcp_bridge import ChatContext
from todo_agent.tool_output import parse_tool_output

MAX_TURNS = 12


@dataclass(frozen=True)
class PreparedTurn:
    conversation_id: int
    context: ChatContext
    input: list[dict[str, Any]]


def _as_dict(item: Any) -> dict[str, Any]:
    return item if isinstance(item, dict) else item.model_dump(exclude_none=True)


def tool_calls_of(items: list[RunItem]) -> list[ToolCallRecord]:
    """Pair each tool call of a run with its output."""
    calls: dict[str, dict[str, Any]] = {}
    for item in items:
        if isinstance(item, ToolCallItem):
            raw = _as_dict(item.raw_item)
            arguments = raw.get("arguments") or "{}"
            calls[raw.get("call_id") or raw.get("id", "")] = {
                "name": raw.get("name", ""),
                "arguments": json.loads(arguments) if isinstance(arguments, str) else arguments,
                "result": None,
            }
        elif isinstance(item, ToolCallOutputItem):
            call_id = _as_dict(item.raw_item).get("call_id", "")
            if call_id in calls:
                calls[call_id]["result"] = parse_tool_output(item.output)
    return [ToolCallRecord(**call) for call in calls.values()]


class ChatService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        agent: Agent[ChatContext],
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._agent = agent
        set_tracing_disabled(not settings.agent_tracing)
        self._run_config = RunConfig(tracing_disabled=not settings.agent_tracing)

    async def prepare(self, user_id: str, request: ChatRequest) -> PreparedTurn:
        """Check the request, store the user's message, and build the model's input."""
        timezone = request.timezone or self._settings.default_timezone
        try:
            zone(timezone)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        window = self._settings.chat_history_messages
        async with self._sessionmaker() as session:
            conversations = ConversationService(session, user_id)
            if request.conversation_id is None:
                conversation = await conversations.start(request.message)
            else:
                conversation = await conversations.get(request.conversation_id)
            assert conversation.id is not None
            recent = await conversations.recent(conversation, window + 1)
            if recent and recent[-1].role == "user" and recent[-1].content == request.message:
                # The same message again after a failed turn: a retry, not a second message.
                recent.pop()
            else:
                await conversations.append(conversation.id, "user", request.message)
            await session.commit()
        history = recent[-window:] if window else []
        items = [{"role": message.role, "content": message.content} for message in history]
        items.append({"role": "user", "content": request.message})
        return PreparedTurn(conversation.id, ChatContext(user_id, timezone), items)

    async def _finish(
        self, turn: PreparedTurn, reply: str, calls: list[ToolCallRecord]
    ) -> ChatResponse:
        async with self._sessionmaker() as session:
            conversations = ConversationService(session, turn.context.user_id)
            tool_calls = [call.model_dump() for call in calls]
            # False only if the conversation was deleted during the turn: then nothing to keep.
            await conversations.append(turn.conversation_id, "assistant", reply, tool_calls)
            await session.commit()
        return ChatResponse(conversation_id=turn.conversation_id, response=reply, tool_calls=calls)

    def _timeout_error(self) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"the model did not answer within {self._settings.agent_timeout:g} s; "
            "your message is saved: send it again to retry"
        )

    def _provider_error(self, exc: Exception) -> UpstreamError:
        return UpstreamError(
            f"the model provider failed ({type(exc).__name__}: {exc}); "
            "your message is saved: send it again to retry"
        )

    async def run(self, turn: PreparedTurn) -> ChatResponse:
        try:
            async with asyncio.timeout(self._settings.agent_timeout):
                result = await Runner.run(
                    self._agent,
                    turn.input,  # type: ignore[arg-type]
                    context=turn.context,
                    run_config=self._run_config,
                    max_turns=MAX_TURNS,
                )
        except (TimeoutError, APITimeoutError) as exc:
            raise self._timeout_error() from exc
        except (APIError, AgentsException) as exc:
            raise self._provider_error(exc) from exc
        return await self._finish(turn, str(result.final_output), tool_calls_of(result.new_items))

    async def stream(self, turn: PreparedTurn) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event, data) pairs: conversation, delta, tool_call, tool_result, then done or error."""
        yield "conversation", {"conversation_id": turn.conversation_id}
        result = Runner.run_streamed(
            self._agent,
            turn.input,  # type: ignore[arg-type]
            context=turn.context,
            run_config=self._run_config,
            max_turns=MAX_TURNS,
        )
        names: dict[str, str] = {}
        # A client that hangs up cancels this generator, and the SDK then cancels the run:
        # no tool keeps changing tasks for an answer nobody reads.
        try:
            async with asyncio.timeout(self._settings.agent_timeout):
                async for event in result.stream_events():
                    if isinstance(event, RawResponsesStreamEvent):
                        if event.data.type == "response.output_text.delta":
                            yield "delta", {"text": event.data.delta}
                    elif isinstance(event, RunItemStreamEvent):
                        if isinstance(event.item, ToolCallItem):
                            raw = _as_dict(event.item.raw_item)
                            names[raw.get("call_id", "")] = raw.get("name", "")
                            yield (
                                "tool_call",
                                {
                                    "id": raw.get("call_id"),
                                    "name": raw.get("name"),
                                    "arguments": json.loads(raw.get("arguments") or "{}"),
                                },
                            )
                        elif isinstance(event.item, ToolCallOutputItem):
                            call_id = _as_dict(event.item.raw_item).get("call_id", "")
                            yield (
                                "tool_result",
                                {
                                    "id": call_id,
                                    "name": names.get(call_id),
                                    "result": parse_tool_output(event.item.output),
                                },
                            )
        except (TimeoutError, APITimeoutError):
            timeout = self._timeout_error()
            yield "error", {**timeout.body(), "status": timeout.status_code}
            return
        except (APIError, AgentsException) as exc:
            failure = self._provider_error(exc)
            yield "error", {**failure.body(), "status": failure.status_code}
            return
        answer = await self._finish(turn, str(result.final_output), tool_calls_of(result.new_items))
        yield "done", answer.model_dump(mode="json")
