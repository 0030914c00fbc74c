"""The agent's connection to the task tools: MCP in-process, no network hop, no subprocess."""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from agents.mcp import MCPServer as AgentMCPServer
from agents.mcp.util import MCPToolMetaContext
from mcp import Client, Tool
from mcp.server.mcpserver import MCPServer
from mcp.types import (
    CallToolResult,
    GetPromptResult,
    ListPromptsResult,
    RequestParamsMeta,
    TextContent,
)

from agents import AgentBase, RunContextWrapper
from mcp_tools.identity import IN_PROCESS_USER_KEY, TIMEZONE_META_KEY, TURN_META_KEY
from mcp_tools.inprocess import InProcessClient


@dataclass(frozen=True)
class ChatContext:
    """Server-side facts about one run; the model never sees or sets them."""

    user_id: str
    timezone: str


@dataclass
class ToolJournal:
    """What one chat turn's tool calls changed, so that a retry of a failed turn replays
    those calls from the record instead of doing them again.

    `earlier` holds the changes a failed attempt of the same message completed, each as
    {"name", "arguments", "result"}; a call with the same name and arguments takes the first
    matching record once. `done` is what this attempt has completed (replayed or new).
    """

    earlier: list[dict[str, Any]]
    message_id: int | None = None  # the user message whose turn this is
    done: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False  # the turn ran out of steps

    def replay(self, name: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
        for index, record in enumerate(self.earlier):
            if record["name"] == name and record["arguments"] == arguments:
                self.done.append(self.earlier.pop(index))
                return cast(dict[str, Any], record["result"])
        return None

    def record(self, name: str, arguments: dict[str, Any], result: dict[str, Any]) -> None:
        self.done.append({"name": name, "arguments": arguments, "result": result})

    def completed(self) -> list[dict[str, Any]]:
        """Every change made for this message so far, by this attempt or an earlier one."""
        return [*self.done, *self.earlier]


class ToolProgress(Protocol):
    """Told when each tool call of a run starts and ends (ChatKit shows them as they run)."""

    async def started(self, name: str, arguments: dict[str, Any]) -> int: ...

    async def finished(
        self, token: int, name: str, arguments: dict[str, Any], result: dict[str, Any]
    ) -> None: ...


# The running turn's journal and progress listener. Context variables, because the SDK calls
# `call_tool` without the run context; the run's tasks inherit them from the task that
# started the run.
current_journal: ContextVar[ToolJournal | None] = ContextVar("current_journal", default=None)
current_progress: ContextVar[ToolProgress | None] = ContextVar("current_progress", default=None)


def bind_user(context: MCPToolMetaContext) -> dict[str, Any]:
    chat: ChatContext = context.run_context.context
    return {IN_PROCESS_USER_KEY: chat.user_id, TIMEZONE_META_KEY: chat.timezone}


async def _trusted(name: str, result: CallToolResult) -> None:
    return None


class InProcessTaskTools(AgentMCPServer):
    """One connected session shared by every run; each call carries its run's user in `_meta`."""

    def __init__(self, server: MCPServer) -> None:
        # Structured content: the model gets the tool's JSON, not a wrapped text block.
        super().__init__(use_structured_content=True, tool_meta_resolver=bind_user)
        self._holder = InProcessClient(server)
        self._client: Client | None = None
        self._tools: list[Tool] | None = None
        self._changing: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return "todo-tasks"

    async def connect(self) -> None:
        client = await self._holder.open()
        # The client re-checks every structured result against the tool's output schema with
        # jsonschema: 5-10 ms per call. In-process, the result was just built from the same
        # pydantic models on the server side, so the check can only repeat what pydantic did.
        client.session.validate_tool_result = _trusted  # type: ignore[method-assign]
        self._client = client
        self._tools = (await client.list_tools()).tools
        self._changing = frozenset(
            tool.name
            for tool in self._tools
            if not (tool.annotations and tool.annotations.read_only_hint)
        )

    async def cleanup(self) -> None:
        await self._holder.close()
        self._client = None

    async def list_tools(
        self, run_context: RunContextWrapper[Any] | None = None, agent: AgentBase | None = None
    ) -> list[Tool]:
        if self._tools is None:
            raise RuntimeError("the task tools are not connected")
        return self._tools

    async def call_tool(
        self, tool_name: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None = None
    ) -> CallToolResult:
        if self._client is None:
            raise RuntimeError("the task tools are not connected")
        arguments = arguments or {}
        progress = current_progress.get()
        token = await progress.started(tool_name, arguments) if progress else 0
        result = await self._call(tool_name, arguments, meta)
        if progress:
            text = " ".join(part.text for part in result.content if isinstance(part, TextContent))
            outcome = {"error": text} if result.is_error else (result.structured_content or {})
            await progress.finished(token, tool_name, arguments, outcome)
        return result

    async def _call(
        self, tool_name: str, arguments: dict[str, Any], meta: dict[str, Any] | None
    ) -> CallToolResult:
        assert self._client is not None
        journal = current_journal.get() if tool_name in self._changing else None
        if journal is not None:
            earlier = journal.replay(tool_name, arguments)
            if earlier is not None:
                text = TextContent(type="text", text=json.dumps(earlier))
                return CallToolResult(content=[text], structured_content=earlier)
            if journal.message_id is not None:
                # The tool records its change against the turn's message in the change's
                # own transaction (see `mcp_tools.identity.turn_from_server_meta`).
                call = {"message_id": journal.message_id, "name": tool_name, "arguments": arguments}
                meta = {**(meta or {}), TURN_META_KEY: call}
        result = await self._client.call_tool(
            tool_name, arguments, meta=cast(RequestParamsMeta | None, meta)
        )
        if journal is not None and not result.is_error and result.structured_content is not None:
            journal.record(tool_name, arguments, result.structured_content)
        return result

    async def list_prompts(self) -> ListPromptsResult:
        return ListPromptsResult(prompts=[])

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None
    ) -> GetPromptResult:
        raise KeyError(f"no prompt {name!r}")
