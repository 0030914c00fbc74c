"""Reading message content and tool output as the agents SDK hands them around."""

from __future__ import annotations

import json
from typing import Any


def content_text(output: Any) -> str:
    """The text of message content or tool output: a string, or a list of parts with `text`."""
    if isinstance(output, str):
        return output
    parts = output if isinstance(output, list) else [output]
    return "".join(
        str((part if isinstance(part, dict) else part.model_dump()).get("text", ""))
        for part in parts
    )


def parse_tool_output(output: Any) -> dict[str, Any]:
    """The tool's JSON result, or {"error": message} when the tool refused."""
    text = content_text(output)
    try:
        value = json.loads(text)
    except ValueError:
        return {"error": text.removeprefix("Error executing tool ").split(": ", 1)[-1]}
    return value if isinstance(value, dict) else {"result": value}


def describe_call(name: str, arguments: dict[str, Any], result: dict[str, Any] | None) -> str:
    """One line for a tool call: 'Added "Buy milk" (#12)', or what it is doing while it runs."""
    if result is None:
        return {
            "add_task": f'Adding "{arguments.get("title", "")}"…',
            "list_tasks": "Looking up tasks…",
        }.get(name, f"{name.replace('_', ' ').capitalize()} #{arguments.get('task_id', '')}…")
    if "error" in result:
        return f"{name.replace('_', ' ').capitalize()} failed: {result['error']}"
    task = result.get("task") or {}
    title = result.get("title") or task.get("title")
    task_id = result.get("task_id") or task.get("id") or arguments.get("task_id")
    named = f'"{title}" (#{task_id})' if title else f"#{task_id}"
    done = {
        "add_task": "Added",
        "complete_task": "Completed",
        "reopen_task": "Reopened",
        "delete_task": "Deleted",
        "update_task": "Updated",
        "get_task": "Looked at",
    }
    if name in done:
        return f"{done[name]} {named}"
    if name == "list_tasks":
        found = len(result.get("tasks", []))
        return f"Looked up tasks ({found} found)"
    return name
