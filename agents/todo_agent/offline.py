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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agents.items import (
    ModelResponse,
    TResponseInputItem,
    TResponseOutputItem,
    TResponseStreamEvent,
)
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
)

from todo_agent.intents import ACTIONS, Intent, TaskRef, understand
from todo_agent.tool_output import content_text, parse_tool_output

HELP = """\
I'm the built-in offline assistant. I understand common todo requests in plain English:
- add: "add buy milk", "remind me to call mom tomorrow at 5pm", "I need to pay the bills"
- list: "what's pending?", "show me all my tasks", "what have I completed?", "what's due today?"
- search: "find milk"
- complete: "mark task 3 as done", "I finished buying groceries", "mark it done"
- reopen: "reopen task 3"
- delete: "delete task 3", "delete the meeting task"
- update: "change task 1 to call mom tonight", "move task 2 to friday", "make it high priority"
For open conversation, connect a real model (OPENAI_API_KEY or OPENAI_BASE_URL)."""

_TASK_ID = re.compile(r"\(task #(\d+)\)|\btask #?(\d+)\b|#(\d+)\b", re.I)
_STOPWORDS = {
    "the",
    "a",
    "an",
    "my",
    "to",
    "of",
    "for",
    "and",
    "with",
    "on",
    "at",
    "in",
    "task",
    "todo",
    "item",
    "about",
    "that",
    "this",
}


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


def read_turn(items: list[TResponseInputItem]) -> Turn:
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
            step = calls[item["call_id"]]
            result = parse_tool_output(item.get("output"))
            if set(result) == {"error"}:
                step.error = str(result["error"])
            else:
                step.result = result
    return Turn(content_text(dicts[last_user].get("content")), list(calls.values()), history)


# ---------------------------------------------------------------- deciding


@dataclass
class Call:
    name: str
    arguments: dict[str, Any]


def _when(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).strftime("%a %d %b %Y, %H:%M UTC")


def _describe(task: dict[str, Any]) -> str:
    parts = [f"#{task['id']} {task['title']}"]
    details = []
    if task.get("completed"):
        details.append("done")
    if task.get("priority") not in (None, "none"):
        details.append(f"{task['priority']} priority")
    if task.get("due"):
        details.append(f"due {_when(task['due'])}")
    if details:
        parts.append(f"({', '.join(details)})")
    return " ".join(parts)


def _named(task: dict[str, Any]) -> str:
    return f'"{task["title"]}" (task #{task["id"]})'


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _words(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS}


def best_matches(reference: str, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks whose titles share the most words with the reference ("buying groceries")."""
    wanted = _words(reference)
    if not wanted:
        return []
    scored = [(len(wanted & _words(task["title"])) / len(wanted), task) for task in tasks]
    top = max((score for score, _ in scored), default=0.0)
    if top < 0.5:
        return []
    return [task for score, task in scored if score == top]


def last_task_mentioned(history: list[tuple[str, str]]) -> int | None:
    """The task the assistant's last reply was about, if it named exactly one."""
    for role, text in reversed(history):
        if role != "assistant":
            continue
        ids = {int(next(g for g in match.groups() if g)) for match in _TASK_ID.finditer(text)}
        return ids.pop() if len(ids) == 1 else None
    return None


def _previous_intent(history: list[tuple[str, str]]) -> Intent | None:
    """After "Which one do you mean?", a bare "3" answers the question before it."""
    if (
        len(history) < 2
        or history[-1][0] != "assistant"
        or not history[-1][1].rstrip().endswith("?")
    ):
        return None
    earlier = understand(history[-2][1]) if history[-2][0] == "user" else None
    return earlier if earlier is not None and earlier.kind in ACTIONS else None


def _action_call(intent: Intent, task_id: int) -> Call:
    if intent.kind == "update":
        changes = {
            key: value
            for key, value in (
                ("title", intent.title),
                ("due", intent.due),
                ("priority", intent.priority),
            )
            if value
        }
        return Call("update_task", {"task_id": task_id, **changes})
    return Call(f"{intent.kind}_task", {"task_id": task_id})


_DONE_VERB = {
    "complete": "Marked {} as done.",
    "reopen": "Reopened {}.",
    "delete": "Deleted {}.",
    "update": "Updated {}.",
}


def _changes(intent: Intent, task: dict[str, Any]) -> str:
    changed = []
    if intent.title:
        changed.append(f'title "{task["title"]}"')
    if intent.due:
        changed.append(f"due {_when(task['due'])}" if task.get("due") else "no due date")
    if intent.priority:
        changed.append(f"{task['priority']} priority")
    return ", ".join(changed)


def decide(turn: Turn) -> Call | str:
    """The next tool call for this turn, or the reply text once there is nothing left to call."""
    intent = understand(turn.message)
    if intent.kind == "unknown" and intent.ref is not None:
        earlier = _previous_intent(turn.history)
        if earlier is not None:
            intent = earlier.with_ref(intent.ref)
    done = turn.steps

    if intent.kind == "help":
        return HELP
    if intent.kind == "greeting":
        return 'Hello! Tell me what you need to do, or ask "what\'s pending?". Say "help" for more.'
    if intent.kind == "unknown":
        return f'Sorry, I didn\'t understand "{turn.message.strip()}".\n\n{HELP}'

    if intent.kind == "add":
        if not done:
            arguments: dict[str, Any] = {"title": intent.title}
            if intent.due:
                arguments["due"] = intent.due
            if intent.priority:
                arguments["priority"] = intent.priority
            return Call("add_task", arguments)
        step = done[-1]
        if step.result is None:
            return f"I couldn't add that task: {step.error}"
        task = step.result["task"]
        due = f", due {_when(task['due'])}" if task.get("due") else ""
        return f"Added {_named(task)}{due}."

    if intent.kind in ("list", "search"):
        if not done:
            arguments = {"status": intent.status, "limit": 20}
            if intent.query:
                arguments["query"] = intent.query
            if intent.due_before:
                arguments["due_before"] = intent.due_before
            return Call("list_tasks", arguments)
        return _list_reply(intent, done[-1])

    return _act(intent, turn, done)


def _list_reply(intent: Intent, step: ToolStep) -> str:
    if step.result is None:
        return f"I couldn't list your tasks: {step.error}"
    tasks, count = step.result["tasks"], step.result["count"]
    kind = {"pending": "pending ", "completed": "completed ", "all": ""}[intent.status]
    suffix = ""
    if intent.query:
        kind, suffix = "", f' matching "{intent.query}"'
    elif intent.due_before:
        kind, suffix = (
            ("pending ", " due by then") if intent.due_before != "now" else ("overdue ", "")
        )
    if not tasks:
        return f"You have no {kind}tasks{suffix}."
    lines = [f"You have {count} {kind}task{'' if count == 1 else 's'}{suffix}:"]
    lines += [f"- {_describe(task)}" for task in tasks]
    if count > len(tasks):
        lines.append(f"…and {count - len(tasks)} more.")
    return "\n".join(lines)


def _act(intent: Intent, turn: Turn, done: list[ToolStep]) -> Call | str:
    ref: TaskRef | None = intent.ref
    if ref == "it":
        ref = last_task_mentioned(turn.history)
        if ref is None:
            return 'Which task do you mean? Tell me its number, for example "task 3".'
    if intent.kind == "update" and not (intent.title or intent.due or intent.priority):
        return 'What should I change? For example "change task 1 to call mom tonight".'

    action = next((step for step in done if step.name != "list_tasks"), None)
    if action is not None:
        if action.result is None:
            return f"I couldn't do that: {action.error}."
        target = action.result
        done_text = _DONE_VERB[intent.kind].format(
            _named({"id": target["task_id"], "title": target["title"]})
        )
        if intent.kind == "update" and target.get("task"):
            done_text = done_text.rstrip(".") + f": {_changes(intent, target['task'])}."
        return done_text

    if isinstance(ref, int):
        return _action_call(intent, ref)

    # A task named by its words: look it up first, act only on a single clear match.
    lookup = next((step for step in done if step.name == "list_tasks"), None)
    if lookup is None:
        status = (
            "completed"
            if intent.kind == "reopen"
            else "pending"
            if intent.kind == "complete"
            else "all"
        )
        return Call("list_tasks", {"status": status, "limit": 50})
    if lookup.result is None:
        return f"I couldn't look that up: {lookup.error}"
    matches = best_matches(str(ref), lookup.result["tasks"])
    if not matches:
        return f'I couldn\'t find a task matching "{ref}". Say "show me all my tasks" to see them.'
    if len(matches) > 1:
        options = "\n".join(f"- {_describe(task)}" for task in matches)
        return f'Several tasks match "{ref}":\n{options}\nWhich one do you mean?'
    return _action_call(intent, matches[0]["id"])


# ---------------------------------------------------------------- the Model interface


def _output(decision: Call | str) -> list[TResponseOutputItem]:
    if isinstance(decision, Call):
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        return [
            ResponseFunctionToolCall(
                id=call_id,
                call_id=call_id,
                type="function_call",
                name=decision.name,
                arguments=json.dumps(decision.arguments),
            )
        ]
    return [
        ResponseOutputMessage(
            id=f"msg_{uuid.uuid4().hex[:12]}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=decision, annotations=[])],
        )
    ]


class OfflineModel(Model):
    name = "offline"

    def _respond(self, input: str | list[TResponseInputItem]) -> Call | str:
        items: list[TResponseInputItem] = (
            [{"role": "user", "content": input}] if isinstance(input, str) else input
        )
        return decide(read_turn(items))

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        *args: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        return ModelResponse(output=_output(self._respond(input)), usage=Usage(), response_id=None)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        *args: Any,
        **kwargs: Any,
    ) -> AsyncIterator[TResponseStreamEvent]:
        decision = self._respond(input)
        output = _output(decision)
        sequence = 0
        if isinstance(decision, str):
            item_id = output[0].id
            # Word by word, as a real model streams, so clients can render as it comes.
            for piece in re.findall(r"\S+\s*|\s+", decision):
                yield ResponseTextDeltaEvent(
                    type="response.output_text.delta",
                    item_id=item_id,
                    output_index=0,
                    content_index=0,
                    delta=piece,
                    logprobs=[],
                    sequence_number=sequence,
                )
                sequence += 1
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
