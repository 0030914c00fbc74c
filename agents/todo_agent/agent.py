"""The todo assistant: an openai-agents Agent over the MCP task tools, and its model."""

from __future__ import annotations

from dataclasses import dataclass, field

from openai import AsyncOpenAI

from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunContextWrapper,
    Tool,
)
from server.settings import Settings
from todo_agent.mcp_bridge import ChatContext, InProcessTaskTools
from todo_agent.offline import OfflineModel, reply_after_tools

INSTRUCTIONS = """\
You are a todo assistant. You manage the user's todo list with the task tools, and nothing else.

- Use the tools for every fact about tasks. Never invent tasks, ids, dates or results.
- After a change, say what you did and name each task by its title and id, e.g.
  'Added "Buy milk" (task #7).' Keep replies short; a list of tasks may use one line per task.
- When the user names a task by its words, look it up with list_tasks (query) first. If more
  than one task could be meant, ask which one before changing or deleting anything.
- "it" or "that" means the task the conversation was just about. If that is unclear, ask.
- Pass due dates as the user said them ("tomorrow 5pm", "next friday"); the tools read them
  in the user's timezone.
- If a tool reports an error, tell the user plainly what went wrong and what they can do.
- You cannot see or change other people's tasks; requests to do so get a polite no.
"""


def instructions_for(run: RunContextWrapper[ChatContext], agent: Agent[ChatContext]) -> str:
    """The instructions with the user's timezone: a real model then writes times the user's
    way, and the offline model reads the zone from the last line."""
    return f"{INSTRUCTIONS}\nThe user's timezone is {run.context.timezone}."


def build_model(settings: Settings) -> Model:
    """OpenAI, any OpenAI-compatible server, or the offline model, by what is configured."""
    provider = settings.agent_provider
    if provider == "offline":
        return OfflineModel()
    client = AsyncOpenAI(
        api_key=settings.openai_api_key or "not-needed",
        base_url=settings.openai_base_url or None,
        timeout=settings.agent_timeout,
        max_retries=1,
    )
    if provider == "openai-compatible":
        # Ollama, vLLM, LM Studio and LiteLLM speak Chat Completions, not the Responses API.
        return OpenAIChatCompletionsModel(model=settings.agent_model, openai_client=client)
    return OpenAIResponsesModel(model=settings.agent_model, openai_client=client)


@dataclass
class TodoAgent(Agent[ChatContext]):
    """The agent, with its MCP tools converted into function tools once per process.

    The SDK converts the server's tool list on every model call (12 % of a chat turn's CPU),
    but the task tools never change while the process runs, and a converted tool binds no
    run: each call gets its own context when invoked.
    """

    _function_tools: list[Tool] | None = field(default=None, init=False, repr=False)

    async def get_mcp_tools(self, run_context: RunContextWrapper[ChatContext]) -> list[Tool]:
        if self._function_tools is None:
            self._function_tools = await super().get_mcp_tools(run_context)
        return self._function_tools


def build_agent(tools: InProcessTaskTools, model: Model) -> Agent[ChatContext]:
    return TodoAgent(
        name="Todo assistant", instructions=instructions_for, mcp_servers=[tools], model=model
    )


def for_plain_runs(agent: Agent[ChatContext]) -> Agent[ChatContext]:
    """The agent for runs that do not stream. With the offline model, the reply after a
    turn's tool call is written without another model call (`offline.reply_after_tools`)."""
    if isinstance(agent.model, OfflineModel):
        return agent.clone(tool_use_behavior=reply_after_tools)
    return agent
