"""One stateless chat turn: history from the database, the agent run, both messages stored.

No conversation state lives in the process, so any app process can serve any turn. The
database is touched in short transactions before and after the model runs, never during it:
a slow model does not hold a connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from agents.exceptions import AgentsException
from agents.items import RunItem, ToolCallItem, ToolCallOutputItem
from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent
from openai import APIError, APITimeoutError

from agents import Agent, RunConfig, Runner, set_tracing_disabled
from mcp_tools.dates import zone
from server.database import Database
from server.errors import (
    AppError,
    InvalidInput,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
    database_unavailable,
)
from server.models import ChatRequest, ChatResponse, ToolCallRecord
from server.services.conversations import ConversationService, OpenTurn
from server.settings import Settings
from todo_agent.mcp_bridge import ChatContext, ToolJournal, current_journal
from todo_agent.tool_output import parse_tool_output

MAX_TURNS = 12
log = logging.getLogger("todo_chat.chat")


@dataclass(frozen=True)
class PreparedTurn:
    turn: OpenTurn
    context: ChatContext
    input: list[dict[str, Any]]

    @property
    def conversation_id(self) -> int:
        return self.turn.conversation_id


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
    def __init__(self, db: Database, settings: Settings, agent: Agent[ChatContext]) -> None:
        self._db = db
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
        conversations = ConversationService(self._db, user_id)
        turn = await conversations.open_turn(
            request.conversation_id, request.message, self._settings.chat_history_messages
        )
        items = [{"role": role, "content": content} for role, content in turn.history]
        items.append({"role": "user", "content": request.message})
        return PreparedTurn(turn, ChatContext(user_id, timezone), items)

    async def _finish(
        self, turn: PreparedTurn, reply: str, calls: list[ToolCallRecord]
    ) -> ChatResponse:
        conversations = ConversationService(self._db, turn.context.user_id)
        # False only if the conversation was deleted during the turn: then nothing to keep.
        await conversations.close_turn(turn.turn, reply, [call.model_dump() for call in calls])
        return ChatResponse(conversation_id=turn.conversation_id, response=reply, tool_calls=calls)

    async def _failed(self, turn: PreparedTurn, journal: ToolJournal) -> None:
        """Record the failure and what its tool calls did, for a safe retry; best effort, as
        the failure may be the database itself."""
        conversations = ConversationService(self._db, turn.context.user_id)
        try:
            await asyncio.shield(conversations.fail_turn(turn.turn, journal.completed()))
        except Exception as exc:
            log.warning("could not record the failed turn %s: %r", turn.turn.message_id, exc)

    def _timeout_error(self, turn: PreparedTurn) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"the model did not answer within {self._settings.agent_timeout:g} s; "
            "your message is saved: send it again to retry",
            conversation_id=turn.conversation_id,
        )

    def _provider_error(self, turn: PreparedTurn, exc: Exception) -> UpstreamError:
        return UpstreamError(
            f"the model provider failed ({type(exc).__name__}: {exc}); "
            "your message is saved: send it again to retry",
            conversation_id=turn.conversation_id,
        )

    async def run(self, turn: PreparedTurn) -> ChatResponse:
        journal = ToolJournal(list(turn.turn.done_before))
        token = current_journal.set(journal)
        try:
            async with asyncio.timeout(self._settings.agent_timeout):
                result = await Runner.run(
                    self._agent,
                    turn.input,  # type: ignore[arg-type]
                    context=turn.context,
                    run_config=self._run_config,
                    max_turns=MAX_TURNS,
                )
            return await self._finish(
                turn, str(result.final_output), tool_calls_of(result.new_items)
            )
        except (TimeoutError, APITimeoutError) as exc:
            await self._failed(turn, journal)
            raise self._timeout_error(turn) from exc
        except (APIError, AgentsException) as exc:
            await self._failed(turn, journal)
            raise self._provider_error(turn, exc) from exc
        except BaseException:
            await self._failed(turn, journal)
            raise
        finally:
            current_journal.reset(token)

    async def stream(self, turn: PreparedTurn) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event, data) pairs: conversation, delta, tool_call, tool_result, then done or error."""
        yield "conversation", {"conversation_id": turn.conversation_id}
        journal = ToolJournal(list(turn.turn.done_before))
        token = current_journal.set(journal)
        result = Runner.run_streamed(
            self._agent,
            turn.input,  # type: ignore[arg-type]
            context=turn.context,
            run_config=self._run_config,
            max_turns=MAX_TURNS,
        )
        names: dict[str, str] = {}
        failure: AppError | None = None
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
            answer = await self._finish(
                turn, str(result.final_output), tool_calls_of(result.new_items)
            )
        except (TimeoutError, APITimeoutError):
            failure = self._timeout_error(turn)
        except (APIError, AgentsException) as exc:
            failure = self._provider_error(turn, exc)
        except Exception as exc:
            if not database_unavailable(exc):
                await self._failed(turn, journal)
                raise
            failure = Unavailable()
        except BaseException:
            await self._failed(turn, journal)
            raise
        finally:
            current_journal.reset(token)
        if failure is not None:
            await self._failed(turn, journal)
            yield "error", {**failure.body(), "status": failure.status_code}
            return
        yield "done", answer.model_dump(mode="json")
