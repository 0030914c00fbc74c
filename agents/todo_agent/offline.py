"""The built-in offline model: deterministic, no network, behind the SDK's `Model` interface.

Each call looks at the latest user message and at the tool calls already made for it in this
run, then either asks for the next tool call or writes the reply. It drives the same MCP task
tools as a real LLM, so everything after the model (tools, storage, streaming) is the same.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agents.items import (
    ModelResponse,
    TResponseInputItem,
    TResponseOutputItem,
    TResponseStreamEvent,
)
from agents.models.interface import Model
from agents.tool import FunctionToolResult
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)

from agents import RunContextWrapper, ToolsToFinalOutputResult
from todo_agent.intents import ACTIONS, Intent, TaskRef, understand
from todo_agent.matching import find
from todo_agent.mcp_bridge import ChatContext
from todo_agent.tool_output import content_text, parse_tool_output

HELP = """\
I'm the built-in offline assistant. I understand common todo requests in plain English:
- add: "add buy milk", "remind me to call mom tomorrow at 5pm", "add milk, eggs and bread"
- list: "what's pending?", "show me all my tasks", "what have I completed?", "what's due today?"
- search: "find milk"
- complete: "mark task 3 as done", "I finished calling the plumber", "mark it done"
- reopen: "reopen task 3", "mark task 3 as not done"
- delete: "delete task 3", "get rid of the dentist task"
- update: "move task 2 to friday", "make it high priority", "rename task 1 to call mom",
  "change the due date of task 4 to monday", "tag task 5 with work", "add a note to task 5: ..."
For open conversation, connect a real model (OPENAI_API_KEY or OPENAI_BASE_URL)."""

_TASK_ID = re.compile(r"\(task #(\d{1,10})\)|\btask #?(\d{1,10})\b|#(\d{1,10})\b", re.I)
_TIMEZONE = re.compile(r"^The user's timezone is (\S+)\.$", re.M)
_LOOKUPS = ("list_tasks", "get_task")
UTC_ZONE = ZoneInfo("UTC")


@dataclass
class ToolStep:
    name: str
    arguments: dict[str, Any]
    result: dict[str, Any] | None  # None: the tool answered with an error
    error: str | None


# ---------------------------------------------------------------- reading the run's input


def _item(item: Any) -> dict[str, Any]:
    return item if isinstance(item, dict) else item.model_dump(exclude_none=True)


@dataclass
class Turn:
    message: str
    steps: list[ToolStep]
    history: list[tuple[str, str]]  # (role, text) before this message
    timezone: ZoneInfo = UTC_ZONE


def read_turn(items: list[TResponseInputItem], instructions: str | None = None) -> Turn:
    dicts = [_item(item) for item in items]
    last_user = max((i for i, item in enumerate(dicts) if item.get("role") == "user"), default=None)
    if last_user is None:
        return Turn("", [], [])
    history = [
        (str(item["role"]), content_text(item.get("content")))
        for item in dicts[:last_user]
        if item.get("role") in ("user", "assistant")
    ]
    calls: dict[str, ToolStep] = {}
    for item in dicts[last_user + 1 :]:
        if item.get("type") == "function_call":
            arguments = json.loads(item.get("arguments") or "{}")
            calls[item["call_id"]] = ToolStep(item["name"], arguments, None, None)
        elif item.get("type") == "function_call_output" and item.get("call_id") in calls:
            _take_output(calls[item["call_id"]], item.get("output"))
    message = content_text(dicts[last_user].get("content"))
    return Turn(message, list(calls.values()), history, _timezone(instructions))


def _take_output(step: ToolStep, output: Any) -> None:
    result = parse_tool_output(output)
    if set(result) == {"error"}:
        step.error = str(result["error"])
    else:
        step.result = result


def _timezone(instructions: str | None) -> ZoneInfo:
    """The agent's instructions end with the user's timezone (see `agent.instructions_for`)."""
    found = _TIMEZONE.search(instructions or "")
    return _zone(found[1]) if found else UTC_ZONE


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return UTC_ZONE


# ---------------------------------------------------------------- replying


@dataclass
class Call:
    name: str
    arguments: dict[str, Any]


# What the model does next: call one tool, call several at once, or reply.
Decision = Call | list[Call] | str


def _when(value: str | None, tz: ZoneInfo) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(tz).strftime("%a %d %b %Y, %H:%M %Z")


def _describe(task: dict[str, Any], tz: ZoneInfo) -> str:
    parts = [f"#{task['id']} {task['title']}"]
    details = []
    if task.get("completed"):
        details.append("done")
    if task.get("priority") not in (None, "none"):
        details.append(f"{task['priority']} priority")
    if task.get("due"):
        details.append(f"due {_when(task['due'], tz)}")
    if task.get("repeats"):
        details.append(f"repeats {task['repeats']}")
    if task.get("tags"):
        details.append(" ".join(f"#{tag}" for tag in task["tags"]))
    if details:
        parts.append(f"({', '.join(details)})")
    return " ".join(parts)


def _named(task: dict[str, Any]) -> str:
    return f'"{task["title"]}" (task #{task["id"]})'


def task_ids(text: str) -> list[int]:
    """The task ids a reply names, in order, each once."""
    found = (int(next(g for g in match.groups() if g)) for match in _TASK_ID.finditer(text))
    return list(dict.fromkeys(found))


def last_task_mentioned(history: list[tuple[str, str]]) -> int | None:
    """The task the assistant's last reply was about, if it named exactly one."""
    for role, text in reversed(history):
        if role == "assistant":
            ids = task_ids(text)
            return ids[0] if len(ids) == 1 else None
    return None


def _question(history: list[tuple[str, str]]) -> tuple[Intent, list[int]] | None:
    """The request the assistant's last reply asked about ("Which one do you mean?"), and the
    tasks that reply offered."""
    if len(history) < 2 or history[-1][0] != "assistant" or history[-2][0] != "user":
        return None
    if "?" not in history[-1][1]:
        return None
    earlier = understand(history[-2][1])
    return (earlier, task_ids(history[-1][1])) if earlier.kind in ACTIONS else None


def _answering(intent: Intent, history: list[tuple[str, str]]) -> Intent | str:
    """A short answer ("yes", "3", "the second one") to the question the assistant asked
    becomes the request it was about, for the task it names."""
    if intent.kind not in ("yes", "no", "pick") and not (
        intent.kind == "unknown" and isinstance(intent.ref, int)
    ):
        return intent
    asked = _question(history)
    if asked is None:
        if intent.kind == "unknown":
            return intent
        return "OK." if intent.kind == "no" else "There is nothing waiting for an answer."
    earlier, offered = asked
    if intent.kind == "no":
        return "OK, I left everything as it was."
    if intent.kind == "unknown" and isinstance(intent.ref, int):
        return earlier.with_ref(intent.ref, confirmed=True)
    if intent.kind == "pick":
        index = int(intent.options[0])
        if not offered or index > len(offered):
            return 'Which one? Tell me its number, for example "task 3".'
        return earlier.with_ref(offered[index - 1 if index > 0 else -1], confirmed=True)
    if len(offered) != 1:
        return 'Which one? Tell me its number, for example "task 3".'
    return earlier.with_ref(offered[0], confirmed=True)


def decide(turn: Turn) -> Decision:
    """The next tool calls for this turn, or the reply text once there is nothing left to
    call."""
    intent = _answering(understand(turn.message), turn.history)
    if isinstance(intent, str):
        return intent
    done = turn.steps
    tz = turn.timezone

    if intent.kind == "help":
        return HELP
    if intent.kind == "greeting":
        return 'Hello! Tell me what you need to do, or ask "what\'s pending?". Say "help" for more.'
    if intent.kind == "others":
        return "I can only see and change your own tasks, not anyone else's."
    if intent.kind == "everything":
        return (
            "I change one task at a time, so I changed nothing. "
            'Tell me which task, by its number ("task 3") or its title.'
        )
    if intent.kind == "unclear":
        options = " or ".join(f'"{word}"' for word in intent.options)
        return f"Did you mean {options}? I changed nothing; say it again with the word you meant."
    if intent.kind in ("unknown", "yes", "no", "pick"):
        return f'Sorry, I didn\'t understand "{turn.message.strip()}". I changed nothing.\n\n{HELP}'
    if intent.kind == "add":
        return _add(intent, done, tz)
    if intent.kind in ("list", "search"):
        if not done:
            arguments: dict[str, Any] = {"status": intent.status, "limit": 20}
            if intent.query:
                arguments["query"] = intent.query
            if intent.due_before:
                arguments["due_before"] = intent.due_before
            if intent.repeating:
                arguments["repeating"] = True
            return Call("list_tasks", arguments)
        return _list_reply(intent, done[-1], tz)
    return _act(intent, turn, done)


def _add(intent: Intent, done: list[ToolStep], tz: ZoneInfo) -> Decision:
    if not done:
        # Every task of a list in one response: the SDK runs the calls in one step, so a
        # list of thirty is one turn, not thirty.
        shared = {
            name: getattr(intent, name)
            for name in ("due", "priority", "recurrence", "remind_before")
            if getattr(intent, name) is not None
        }
        calls = [Call("add_task", {"title": title, **shared}) for title in intent.titles]
        return calls[0] if len(calls) == 1 else calls
    failed = [step for step in done if step.result is None]
    added = [step.result["task"] for step in done if step.result is not None]
    lines = []
    for task in added:
        due = f", due {_when(task['due'], tz)}" if task.get("due") else ""
        repeats = f", repeating {task['repeats']}" if task.get("repeats") else ""
        reminder = ", with a reminder" if task.get("remind_at") else ""
        lines.append(f"{_named(task)}{due}{repeats}{reminder}")
    if len(added) == 1:
        lines = [f"Added {lines[0]}."]
    elif added:
        lines = [f"Added {len(added)} tasks:", *(f"- {line}" for line in lines)]
    for step in failed:
        lines.append(f'I couldn\'t add "{step.arguments.get("title")}": {step.error}')
    return "\n".join(lines)


def _list_reply(intent: Intent, step: ToolStep, tz: ZoneInfo) -> str:
    if step.result is None:
        return f"I couldn't list your tasks: {step.error}"
    tasks, count = step.result["tasks"], step.result["count"]
    kind = {"pending": "pending ", "completed": "completed ", "all": ""}[intent.status]
    suffix = ""
    if intent.repeating:
        kind = "repeating "
    if intent.query:
        kind, suffix = "", f' matching "{intent.query}"'
    elif intent.due_before:
        kind, suffix = (
            ("pending ", " due by then") if intent.due_before != "now" else ("overdue ", "")
        )
    if not tasks:
        return f"You have no {kind}tasks{suffix}."
    lines = [f"You have {count} {kind}task{'' if count == 1 else 's'}{suffix}:"]
    lines += [f"- {_describe(task, tz)}" for task in tasks]
    if count > len(tasks):
        lines.append(f"…and {count - len(tasks)} more.")
    return "\n".join(lines)


def _has_change(intent: Intent) -> bool:
    return bool(
        intent.title
        or intent.due
        or intent.clear_due
        or intent.priority
        or intent.description
        or intent.changes_tags
        or intent.changes_repetition_or_reminder
    )


def _action_call(intent: Intent, task_id: int, task: dict[str, Any] | None) -> Call:
    if intent.kind != "update":
        return Call(f"{intent.kind}_task", {"task_id": task_id})
    changes: dict[str, Any] = {
        key: value
        for key, value in (
            ("title", intent.title),
            ("due", "none" if intent.clear_due else intent.due),
            ("priority", intent.priority),
            ("description", intent.description),
            ("recurrence", intent.recurrence),
        )
        if value
    }
    if intent.remind_before is not None:
        changes["remind_before"] = intent.remind_before
    if intent.tags is not None:
        changes["tags"] = list(intent.tags)
    elif intent.changes_tags:
        tags = [tag for tag in (task or {}).get("tags", []) if tag not in intent.tags_removed]
        changes["tags"] = tags + [tag for tag in intent.tags_added if tag not in tags]
    return Call("update_task", {"task_id": task_id, **changes})


_DONE_VERB = {
    "complete": "Marked {} as done.",
    "reopen": "Reopened {}.",
    "delete": "Deleted {}.",
    "update": "Updated {}.",
}
_VERB = {"complete": "complete", "reopen": "reopen", "delete": "delete", "update": "change"}


def _changes(intent: Intent, task: dict[str, Any], tz: ZoneInfo) -> str:
    changed = []
    if intent.title:
        changed.append(f'title "{task["title"]}"')
    if intent.due or intent.clear_due:
        changed.append(f"due {_when(task['due'], tz)}" if task.get("due") else "no due date")
    if intent.priority:
        changed.append(f"{task['priority']} priority")
    if intent.description:
        changed.append("new description")
    if intent.recurrence:
        repeats = task.get("repeats")
        changed.append(f"repeats {repeats}" if repeats else "no longer repeats")
    if intent.remind_before is not None and task.get("remind_at"):
        changed.append(f"reminder at {_when(task['remind_at'], tz)}")
    if intent.changes_tags:
        changed.append("tags " + (", ".join(task["tags"]) or "none"))
    return ", ".join(changed)


def _done_reply(intent: Intent, action: ToolStep, tz: ZoneInfo) -> str:
    if action.result is None:
        return f"I couldn't do that: {action.error}."
    target = action.result
    named = _named({"id": target["task_id"], "title": target["title"]})
    text = _DONE_VERB[intent.kind].format(named)
    if intent.kind == "update" and target.get("task"):
        text = text.rstrip(".") + f": {_changes(intent, target['task'], tz)}."
    return text


def _act(intent: Intent, turn: Turn, done: list[ToolStep]) -> Call | str:
    ref: TaskRef | None = intent.ref
    if ref == "it":
        ref = last_task_mentioned(turn.history)
        if ref is None:
            return 'Which task do you mean? Tell me its number, for example "task 3".'
    if intent.kind == "update" and not _has_change(intent):
        return 'What should I change? For example "move task 1 to friday".'
    if not ref:
        return 'Which task do you mean? Tell me its number, for example "task 3".'

    action = next((step for step in done if step.name not in _LOOKUPS), None)
    if action is not None:
        return _done_reply(intent, action, turn.timezone)

    if isinstance(ref, int):
        if intent.kind == "delete" and intent.guessed and not intent.confirmed:
            return f'Do you want me to delete task #{ref}? Say "yes" to delete it.'
        if not (intent.tags_added or intent.tags_removed):
            return _action_call(intent, ref, None)
        # Adding or removing a tag changes the task's list of tags: read it first.
        got = next((step for step in done if step.name == "get_task"), None)
        if got is None:
            return Call("get_task", {"task_id": ref})
        if got.result is None:
            return f"I couldn't do that: {got.error}."
        return _action_call(intent, ref, got.result)

    # A task named by its words: look it up first, act only on a task the user clearly named.
    lookup = next((step for step in done if step.name == "list_tasks"), None)
    if lookup is None:
        status = {"complete": "pending", "reopen": "completed"}.get(intent.kind, "all")
        return Call("list_tasks", {"status": status, "limit": 50})
    if lookup.result is None:
        return f"I couldn't look that up: {lookup.error}"
    match = find(str(ref), lookup.result["tasks"])
    open_ones = [task for task in match.tasks if not task.get("completed")]
    if len(match.tasks) > 1 and open_ones:
        # A repeating task's done occurrences share its title: the open one is meant.
        match = replace(match, tasks=open_ones)
    if not match.tasks:
        return (
            f'I couldn\'t find a task matching "{ref}", so I changed nothing. '
            'Say "show me all my tasks" to see them.'
        )
    if len(match.tasks) > 1:
        options = "\n".join(f"- {_describe(task, turn.timezone)}" for task in match.tasks[:10])
        return f'Several tasks match "{ref}":\n{options}\nWhich one do you mean?'
    task = match.tasks[0]
    unsure = not match.distinctive or (intent.kind == "delete" and not match.exact)
    if (unsure or (intent.kind == "delete" and intent.guessed)) and not intent.confirmed:
        return f'Do you mean {_named(task)}? Say "yes" to {_VERB[intent.kind]} it.'
    return _action_call(intent, task["id"], task)


# ---------------------------------------------------------------- replying without a call


_CALL_AGAIN = ToolsToFinalOutputResult(is_final_output=False)


def reply_after_tools(
    run: RunContextWrapper[ChatContext], results: list[FunctionToolResult]
) -> ToolsToFinalOutputResult:
    """The agent's `tool_use_behavior` for runs that do not stream: after the first tool call
    of a turn, the reply the offline model's next call would write, without that call.

    A real model must see the tool's result to answer; this model's answer is a function of
    the message and the results, and the SDK's round for a model call costs as much as the
    rest of the turn. A turn that needs more calls (a lookup, then the change; a list of
    tasks to add) goes back to the model as usual. Streamed runs keep the model call, whose
    events carry the reply word by word."""
    if run.usage.requests != 1 or len(results) != 1:
        return _CALL_AGAIN
    turn = replace(read_turn(run.turn_input), timezone=_zone(run.context.timezone))
    first = decide(turn)
    if not isinstance(first, Call) or first.name != results[0].tool.name:
        return _CALL_AGAIN
    step = ToolStep(first.name, first.arguments, None, None)
    _take_output(step, results[0].output)
    reply = decide(replace(turn, steps=[step]))
    if not isinstance(reply, str):
        return _CALL_AGAIN
    return ToolsToFinalOutputResult(is_final_output=True, final_output=reply)


# ---------------------------------------------------------------- the Model interface


def _output(decision: Decision) -> list[TResponseOutputItem]:
    if isinstance(decision, Call | list):
        output: list[TResponseOutputItem] = []
        for call in decision if isinstance(decision, list) else [decision]:
            call_id = f"call_{uuid.uuid4().hex[:12]}"
            output.append(
                ResponseFunctionToolCall(
                    id=call_id,
                    call_id=call_id,
                    type="function_call",
                    name=call.name,
                    arguments=json.dumps(call.arguments),
                )
            )
        return output
    return [
        ResponseOutputMessage(
            id=f"msg_{uuid.uuid4().hex[:12]}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=decision, annotations=[])],
        )
    ]


def _message_events(item: TResponseOutputItem, text: str) -> list[TResponseStreamEvent]:
    """A message as the Responses API streams it: the item and its text part opened, the text
    word by word (so clients render as it comes), then both closed. ChatKit builds its
    assistant message from these events."""
    assert isinstance(item, ResponseOutputMessage)
    at = {"item_id": item.id, "output_index": 0, "content_index": 0, "sequence_number": 0}
    empty = item.model_copy(update={"content": [], "status": "in_progress"})
    part = ResponseOutputText(type="output_text", text=text, annotations=[])
    return [
        ResponseOutputItemAddedEvent(
            type="response.output_item.added", item=empty, output_index=0, sequence_number=0
        ),
        ResponseContentPartAddedEvent(
            type="response.content_part.added", part=part.model_copy(update={"text": ""}), **at
        ),
        *(
            ResponseTextDeltaEvent(
                type="response.output_text.delta", delta=piece, logprobs=[], **at
            )
            for piece in re.findall(r"\S+\s*|\s+", text)
        ),
        ResponseTextDoneEvent(type="response.output_text.done", text=text, logprobs=[], **at),
        ResponseContentPartDoneEvent(type="response.content_part.done", part=part, **at),
        ResponseOutputItemDoneEvent(
            type="response.output_item.done", item=item, output_index=0, sequence_number=0
        ),
    ]


class OfflineModel(Model):
    name = "offline"

    def _respond(self, instructions: str | None, input: str | list[TResponseInputItem]) -> Decision:
        items: list[TResponseInputItem] = (
            [{"role": "user", "content": input}] if isinstance(input, str) else input
        )
        return decide(read_turn(items, instructions))

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        *args: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        return ModelResponse(
            output=_output(self._respond(system_instructions, input)),
            usage=Usage(requests=1),
            response_id=None,
        )

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        *args: Any,
        **kwargs: Any,
    ) -> AsyncIterator[TResponseStreamEvent]:
        decision = self._respond(system_instructions, input)
        output = _output(decision)
        events = _message_events(output[0], decision) if isinstance(decision, str) else []
        for sequence, event in enumerate(events):
            yield event.model_copy(update={"sequence_number": sequence})
        sequence = len(events)
        response = Response(
            id=f"resp_{uuid.uuid4().hex[:12]}",
            created_at=0,
            model=self.name,
            object="response",
            output=output,
            tool_choice="auto",
            tools=[],
            top_p=None,
            parallel_tool_calls=False,
            status="completed",
        )
        yield ResponseCompletedEvent(
            type="response.completed", response=response, sequence_number=sequence
        )
