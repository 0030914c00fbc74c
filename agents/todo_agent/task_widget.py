"""The ChatKit widget that shows listed tasks, each with a button to complete or reopen it.

It carries exactly what it shows: titles, due times (in the user's timezone), priorities, and
each task's id inside its button's action.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from chatkit.widgets import DynamicWidgetRoot

from server.models import TaskPublic

COMPLETE = "task.complete"
REOPEN = "task.reopen"
MAX_SHOWN = 20


def _row(task: TaskPublic, zone: ZoneInfo) -> dict[str, Any]:
    details = []
    if task.due is not None:
        details.append("due " + task.due.astimezone(zone).strftime("%a %d %b, %H:%M %Z"))
    if task.priority != "none":
        details.append(f"{task.priority} priority")
    if task.tags:
        details.append(" ".join(f"#{tag}" for tag in task.tags))
    text: list[dict[str, Any]] = [
        {
            "type": "Text",
            "value": task.title,
            "weight": "semibold",
            "lineThrough": task.completed,
            "color": "secondary" if task.completed else "primary",
        }
    ]
    if details:
        text.append({"type": "Caption", "value": " · ".join(details)})
    return {
        "type": "ListViewItem",
        "key": f"task-{task.id}",
        "gap": 3,
        "align": "center",
        "children": [
            {"type": "Col", "flex": 1, "gap": 1, "children": text},
            {
                "type": "Button",
                "label": "Reopen" if task.completed else "Done",
                "size": "sm",
                "variant": "outline" if task.completed else "solid",
                "onClickAction": {
                    "type": REOPEN if task.completed else COMPLETE,
                    "payload": {"task_id": task.id},
                },
            },
        ],
    }


def task_widget(tasks: list[TaskPublic], zone: ZoneInfo) -> DynamicWidgetRoot:
    rows = [_row(task, zone) for task in tasks[:MAX_SHOWN]]
    if not rows:
        rows = [
            {
                "type": "ListViewItem",
                "key": "none",
                "children": [{"type": "Text", "value": "None of these tasks is left."}],
            }
        ]
    return DynamicWidgetRoot.model_validate({"type": "ListView", "children": rows})


def listed_task_ids(tool_calls: list[dict[str, Any]]) -> list[int]:
    """The tasks an answer listed, when it listed tasks and changed none: its widget's tasks."""
    listed: list[int] = []
    for call in tool_calls:
        result = call.get("result") or {}
        if "error" in result:
            continue
        if call.get("name") == "list_tasks":
            listed = [task["id"] for task in result.get("tasks", [])][:MAX_SHOWN]
        elif call.get("name") != "get_task":
            return []  # the answer changed tasks: its reply says what, no list to tick
    return listed
