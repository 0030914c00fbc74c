"""One stateless chat turn: history from the database, the agent run, both messages stored.

No conversation state lives in the process, so any app process can serve any turn. The
database is touched in short transactions before and after the model runs, never during it:
a slow model does not hold a connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from agents.exceptions import AgentsException, MaxTurnsExceeded
from agents.items import RunItem, ToolCallItem, ToolCallOutputItem
from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent
from openai import APIError, APITimeoutError

from agents import (
    Agent,
    RunConfig,
    RunHooks,
    Runner,
    RunResultStreaming,
    set_tracing_disabled,
)
from server.database import Database
from server.errors import (
    InvalidInput,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
    database_unavailable,
    error_body,
)
from server.metrics import CHAT_TURNS, MODEL_DURATION
from server.models import ChatRequest, ChatResponse, ToolCallRecord
from server.services.conversations import ConversationService, OpenTurn
from server.settings import Settings
from server.timezones import zone_name
from todo_agent.agent import for_plain_runs
from todo_agent.mcp_bridge import ChatContext, ToolJournal, current_journal
from todo_agent.tool_output import parse_tool_output

MAX_TURNS = 12
log = logging.getLogger("todo_chat.chat")
# How a turn ended, for todochat_chat_turns_total (by the error `_guarded` raised).
_OUTCOMES: dict[type[BaseException], str] = {
    UpstreamTimeout: "timeout",
    UpstreamError: "model_error",
    Unavailable: "unavailable",
    asyncio.CancelledError: "cancelled",
    GeneratorExit: "cancelled",
}


@dataclass
class AgentRun:
    result: RunResultStreaming
    answer: ChatResponse | None = None  # set once the reply is stored


@dataclass(frozen=True)
class PreparedTurn:
    turn: OpenTurn
    context: ChatContext
    input: list[dict[str, Any]]

    @property
    def conversation_id(self) -> int:
        return self.turn.conversation_id


class _ModelTimer(RunHooks[ChatContext]):
    """Times each model request of one run (a run's requests come one after another)."""

    started = 0.0

    async def on_llm_start(self, *_: Any) -> None:
        self.started = time.perf_counter()

    async def on_llm_end(self, *_: Any) -> None:
        MODEL_DURATION.observe(time.perf_counter() - self.started)


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


_DONE = {
    "created": "added",
    "completed": "completed",
    "reopened": "reopened",
    "updated": "changed",
    "deleted": "deleted",
}


def _said(call: dict[str, Any]) -> str:
    """One change a tool call made, in words: 'added "milk" (task #4)'."""
    result = call.get("result") or {}
    if "title" in result and "status" in result:
        verb = _DONE.get(result["status"], result["status"])
        return f'{verb} "{result["title"]}" (task #{result.get("task_id")})'
    return f"{call.get('name')}({json.dumps(call.get('arguments'))})"


class ChatService:
    def __init__(self, db: Database, settings: Settings, agent: Agent[ChatContext]) -> None:
        self._db = db
        self._settings = settings
        self._agent = agent
        set_tracing_disabled(not settings.agent_tracing)
        self._run_config = RunConfig(tracing_disabled=not settings.agent_tracing)
        self._plain_agent = for_plain_runs(agent)
        # The user messages whose turns run in this process (see `open_turn`).
        self._answering: set[int] = set()

    async def prepare(self, user_id: str, request: ChatRequest) -> PreparedTurn:
        """Check the request, store the user's message, and build the model's input."""
        timezone = self._timezone(request.timezone)
        conversations = ConversationService(
            self._db, user_id, self._settings.max_conversations_per_user
        )
        turn = await conversations.open_turn(
            request.conversation_id,
            request.message,
            self._settings.chat_history_messages,
            self._answering,
        )
        return self._prepared(user_id, timezone, turn, request.message)

    async def prepare_again(
        self, user_id: str, conversation_id: int, message_id: int, timezone: str | None
    ) -> PreparedTurn:
        """A new answer to an earlier message of the conversation (ChatKit's retry)."""
        zone_name = self._timezone(timezone)
        conversations = ConversationService(self._db, user_id)
        turn, message = await conversations.reopen_turn(
            conversation_id, message_id, self._settings.chat_history_messages
        )
        return self._prepared(user_id, zone_name, turn, message)

    def _timezone(self, requested: str | None) -> str:
        """The request's zone (its schema checked the name), else the configured one."""
        if requested is None:
            return self._settings.default_timezone
        try:
            return zone_name(requested)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc

    @staticmethod
    def _prepared(user_id: str, timezone: str, turn: OpenTurn, message: str) -> PreparedTurn:
        items = [{"role": role, "content": content} for role, content in turn.history]
        items.append({"role": "user", "content": message})
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

    @asynccontextmanager
    async def _guarded(self, turn: PreparedTurn) -> AsyncIterator[ToolJournal]:
        """Around an agent run: its time limit and its tool journal. A failure is recorded on
        the turn (with what its tool calls did) and raised as an `AppError`: 502 from the
        provider, 504 past the time limit, 503 without the database."""
        journal = ToolJournal(list(turn.turn.done_before), turn.turn.message_id)
        # Set before the run starts: its tool calls run in tasks that inherit this context.
        token = current_journal.set(journal)
        outcome = "error"
        try:
            try:
                async with asyncio.timeout(self._settings.agent_timeout):
                    yield journal
            except (TimeoutError, APITimeoutError) as exc:
                raise self._timeout_error(turn) from exc
            except (APIError, AgentsException) as exc:
                raise self._provider_error(turn, exc) from exc
            except Exception as exc:
                if database_unavailable(exc):
                    # The message may be stored: sending it again in this conversation
                    # retries the turn without repeating what it changed.
                    raise Unavailable(conversation_id=turn.conversation_id) from exc
                raise
            outcome = "stopped" if journal.stopped else "ok"
        except BaseException as exc:
            outcome = _OUTCOMES.get(type(exc), "error")
            await self._failed(turn, journal)
            raise
        finally:
            CHAT_TURNS.labels(outcome).inc()
            current_journal.reset(token)
            self._answering.discard(turn.turn.message_id)

    @asynccontextmanager
    async def running(self, turn: PreparedTurn) -> AsyncIterator[AgentRun]:
        """The streamed agent run of a turn, for the caller to consume
        `run.result.stream_events()` inside the block. On leaving it the reply is stored and
        `run.answer` set; failures as in `_guarded`."""
        async with self._guarded(turn) as journal:
            run = AgentRun(
                Runner.run_streamed(
                    self._agent,
                    turn.input,  # type: ignore[arg-type]
                    context=turn.context,
                    run_config=self._run_config,
                    max_turns=MAX_TURNS,
                    hooks=_ModelTimer(),
                )
            )
            try:
                yield run
            except MaxTurnsExceeded:
                run.answer = await self._stopped(turn, journal)
                return
            except BaseException:
                # Also when the client hangs up. Stop the run, so that no tool keeps changing
                # tasks for an answer nobody reads: a consumer that reads the run's events
                # through tasks of its own (ChatKit's stream helper) does not stop it by going
                # away.
                run.result.cancel()
                raise
            run.answer = await self._finish(
                turn, str(run.result.final_output), tool_calls_of(run.result.new_items)
            )

    async def run(self, turn: PreparedTurn) -> ChatResponse:
        """The turn without streaming. The SDK's plain run does the same work as a streamed
        one without making, queueing and reading an event for every step."""
        async with self._guarded(turn) as journal:
            try:
                result = await Runner.run(
                    self._plain_agent,
                    turn.input,  # type: ignore[arg-type]
                    context=turn.context,
                    run_config=self._run_config,
                    max_turns=MAX_TURNS,
                    hooks=_ModelTimer(),
                )
            except MaxTurnsExceeded:
                return await self._stopped(turn, journal)
            return await self._finish(
                turn, str(result.final_output), tool_calls_of(result.new_items)
            )

    async def _stopped(self, turn: PreparedTurn, journal: ToolJournal) -> ChatResponse:
        """The answer to a turn that ran out of steps: what its tool calls did, stored like
        any answer. A turn that changed tasks never reports that it failed: a retry would
        do them again."""
        journal.stopped = True
        done = journal.completed()
        calls = [ToolCallRecord(**call) for call in done]
        lines = [f"I stopped after {MAX_TURNS} steps, before I was done."]
        if done:
            lines.append("What I did:")
            lines += [f"- {_said(call)}" for call in done]
            lines.append("Nothing else was changed. Tell me what is still missing.")
        else:
            lines.append("I changed nothing. Try asking for one thing at a time.")
        return await self._finish(turn, "\n".join(lines), calls)

    async def stream(self, turn: PreparedTurn) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event, data) pairs: conversation, delta, tool_call, tool_result, then done or error."""
        yield "conversation", {"conversation_id": turn.conversation_id}
        names: dict[str, str] = {}
        try:
            async with self.running(turn) as run:
                async for event in run.result.stream_events():
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
        except (UpstreamError, UpstreamTimeout, Unavailable) as failure:
            yield "error", {**failure.body(), "status": failure.status_code}
            return
        except Exception:
            # The answer is under way: the client hears of the failure as an event, not as a
            # dropped connection. The message is saved as failed, so sending it again retries.
            request_id = uuid.uuid4().hex[:16]
            log.exception("chat turn failed unexpectedly, request id %s", request_id)
            detail = f"an unexpected error occurred; quote request id {request_id} when reporting"
            body = error_body("internal_error", detail, request_id=request_id)
            yield "error", {**body, "status": 500}
            return
        assert run.answer is not None
        yield "done", run.answer.model_dump(mode="json")
