"""What a task change means, decided without a database.

Each rule is a function of the task as stored (`old`: a row, priority as its rank, times in
UTC), the change asked for, and the time: it returns what to write, or raises `InvalidInput`
saying why not. The writers (`locking`, `postgres`) only carry the plans out, so every rule
here is tested on plain dicts (tests/test_task_rules.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from server.errors import InvalidInput
from server.models import Occurrences, Priority, Task
from server.recurrence import describe, from_phrase, next_after, upcoming
from server.timezones import zone_name

# How a change sets completion: mark done, reopen, or flip.
Completion = Literal["done", "open", "toggle"]
COMPLETION_COLUMNS = frozenset({"completed", "completed_at"})
# Fields whose new values depend on nothing but themselves (unlike due, which moves reminders
# and the series of a repeating task).
PLAIN = frozenset({"title", "description", "priority", "tags"})
# The columns written when a task is made; and those an occurrence takes from the one before.
WRITTEN = (
    "title",
    "description",
    "priority",
    "due",
    "tags",
    "recurrence",
    "timezone",
    "series_start",
    "remind_at",
    "remind_before",
)
CARRIED = (
    "title",
    "description",
    "priority",
    "tags",
    "recurrence",
    "timezone",
    "series_start",
    "remind_before",
)
# A task before it exists: what `plan` compares a new task's fields with.
NEW: dict[str, Any] = {
    column.name: None
    for column in Task.__table__.columns  # type: ignore[attr-defined]
} | {"completed": False, "priority": 0, "tags": []}


def plan(
    old: dict[str, Any],
    changes: dict[str, Any],
    completion: Completion | None,
    now: datetime,
    default_zone: str,
) -> dict[str, Any]:
    """The columns to write (only those that change), or a clear error.

    `changes` holds the fields asked for (priority as a `Priority` or its name); a new task is
    planned as a change of `NEW`.
    """
    values: dict[str, Any] = {}
    for name in ("title", "description", "due", "tags"):
        if name in changes and changes[name] != old[name]:
            values[name] = changes[name]
    if "priority" in changes and Priority(changes["priority"]).rank != old["priority"]:
        values["priority"] = Priority(changes["priority"]).rank
    done = {"toggle": not old["completed"], "done": True, "open": False}.get(completion or "")
    if done is not None and done != old["completed"]:
        values.update(completed=done, completed_at=now if done else None)
    due = values.get("due", old["due"])
    values |= repetition(old, changes, due, default_zone)
    values |= reminder(old, changes, due, now)
    return values


def repetition(
    old: dict[str, Any], changes: dict[str, Any], due: datetime | None, default_zone: str
) -> dict[str, Any]:
    """The repetition columns a change writes: rule, zone, series and its start."""
    rule = old["recurrence"]
    if "recurrence" in changes:
        rule = from_phrase(changes["recurrence"]) if changes["recurrence"] else None
    zone = changes.get("timezone") or old["timezone"] or default_zone
    try:
        zone_name(zone)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if rule is None:
        # Stop repeating; its history keeps its series.
        return {"recurrence": None} if old["recurrence"] is not None else {}
    if due is None:
        raise InvalidInput("a repeating task needs a due date: its first occurrence")
    values: dict[str, Any] = {}
    if rule != old["recurrence"]:
        values["recurrence"] = rule
    if zone != old["timezone"]:
        values["timezone"] = zone
    if old["series_id"] is None and old["id"] is not None:
        values["series_id"] = old["id"]
    # The series runs from this occurrence on when its rule or its date is changed.
    if "recurrence" in values or due != old["due"] or old["series_start"] is None:
        values["series_start"] = due
    return values


def reminder(
    old: dict[str, Any], changes: dict[str, Any], due: datetime | None, now: datetime
) -> dict[str, Any]:
    """The reminder columns a change writes. A new reminder time is a reminder not yet sent."""
    explicit = changes.get("remind_at")
    if explicit is not None and changes.get("remind_before") is not None:
        raise InvalidInput("give remind_at or remind_before, not both")
    before = changes["remind_before"] if "remind_before" in changes else old["remind_before"]
    if "remind_at" in changes and explicit is None and "remind_before" not in changes:
        before = None  # remind_at: null clears the reminder, whichever kind it was
    if explicit is not None:
        if explicit <= now:
            raise InvalidInput("remind_at is in the past: a reminder needs a future time")
        remind_at, before = explicit, None  # an absolute time replaces an offset
    elif before is not None:
        if due is None:
            raise InvalidInput("remind_before needs a due date to count back from")
        remind_at = due - timedelta(minutes=before)
    elif "remind_at" in changes or "remind_before" in changes:
        remind_at = None
    else:
        remind_at = old["remind_at"]
    values: dict[str, Any] = {}
    if before != old["remind_before"]:
        values["remind_before"] = before
    if remind_at != old["remind_at"]:
        values.update(remind_at=remind_at, reminded_at=None, reminder_lease=None)
    return values


def events_of(values: dict[str, Any]) -> list[str]:
    """The events a change of these columns makes, in order."""
    kinds = ["task.updated"] if set(values) - COMPLETION_COLUMNS else []
    if "completed" in values:
        kinds.append("task.completed" if values["completed"] else "task.reopened")
    return kinds


def continues_series(row: dict[str, Any], values: dict[str, Any]) -> bool:
    """Whether this change completes an occurrence of a repeating task, which makes the next."""
    return bool(values.get("completed")) and bool(row["recurrence"])


def next_occurrence(row: dict[str, Any], now: datetime, default_zone: str) -> dict[str, Any] | None:
    """The columns of the occurrence after `row` (a repeating task as written), or None when
    its series has ended (COUNT or UNTIL reached)."""
    following = next_after(
        row["recurrence"],
        row["timezone"] or default_zone,
        row["series_start"] or row["due"],
        max(row["due"], now),
    )
    if following is None:
        return None
    before = row["remind_before"]
    return {
        **{name: row[name] for name in CARRIED},
        "due": following,
        "series_id": row["series_id"] or row["id"],
        "remind_at": following - timedelta(minutes=before) if before is not None else None,
    }


def occurrences(row: dict[str, Any], default_zone: str, limit: int) -> Occurrences:
    """The due times after this occurrence of a repeating task: as many as asked, never the
    whole series."""
    if not row["recurrence"] or row["due"] is None:
        return Occurrences(repeats=None, due=[])
    zone = row["timezone"] or default_zone
    start = row["series_start"] or row["due"]
    due = upcoming(row["recurrence"], zone, start, row["due"], limit)
    return Occurrences(repeats=describe(row["recurrence"]), due=due)
