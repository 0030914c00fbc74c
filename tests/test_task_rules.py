"""The task core's rules as plain functions: no database, no app."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.errors import InvalidInput
from server.recurrence import from_phrase, next_after, validate
from server.tasks import rules

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DUE = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


def stored(**fields: Any) -> dict[str, Any]:
    """A task's row as the database gives it back."""
    return {**rules.NEW, "id": 7, "title": "water plants", **fields}


def test_a_change_writes_only_what_differs() -> None:
    old = stored(priority=2, tags=["home"])
    assert rules.plan(old, {"title": "water plants", "priority": "medium"}, None, NOW, "UTC") == {}
    assert rules.plan(old, {"priority": "high", "tags": ["home"]}, None, NOW, "UTC") == {
        "priority": 3
    }


def test_completion_sets_and_clears_its_time() -> None:
    done = rules.plan(stored(), {}, "done", NOW, "UTC")
    assert done == {"completed": True, "completed_at": NOW}
    assert rules.events_of(done) == ["task.completed"]
    reopened = rules.plan(stored(completed=True, completed_at=NOW), {}, "toggle", NOW, "UTC")
    assert reopened == {"completed": False, "completed_at": None}
    assert rules.events_of({"title": "x", **reopened}) == ["task.updated", "task.reopened"]


def test_a_repeating_task_needs_a_due_date_and_a_real_zone() -> None:
    with pytest.raises(InvalidInput, match="needs a due date"):
        rules.plan(stored(), {"recurrence": "daily"}, None, NOW, "UTC")
    for zone in ("Europe", "America/Argentina", "Factory", "x" * 20_000):
        with pytest.raises(InvalidInput, match="unknown timezone"):
            rules.plan(
                stored(), {"recurrence": "daily", "due": DUE, "timezone": zone}, None, NOW, "UTC"
            )


def test_a_repeating_task_starts_its_series_and_uses_the_default_zone() -> None:
    values = rules.plan(
        stored(), {"recurrence": "every monday", "due": DUE}, None, NOW, "Asia/Tokyo"
    )
    assert values["recurrence"] == "FREQ=WEEKLY;BYDAY=MO"
    assert values["timezone"] == "Asia/Tokyo"
    assert values["series_id"] == 7 and values["series_start"] == DUE


def test_reminders_before_the_due_move_with_it_and_are_sent_anew() -> None:
    old = stored(due=DUE, remind_before=30, remind_at=DUE - timedelta(minutes=30), reminded_at=NOW)
    later = DUE + timedelta(days=1)
    values = rules.plan(old, {"due": later}, None, NOW, "UTC")
    assert values["remind_at"] == later - timedelta(minutes=30)
    assert values["reminded_at"] is None and values["reminder_lease"] is None
    with pytest.raises(InvalidInput, match="in the past"):
        rules.plan(old, {"remind_at": NOW - timedelta(minutes=1)}, None, NOW, "UTC")
    with pytest.raises(InvalidInput, match="not both"):
        rules.plan(old, {"remind_at": later, "remind_before": 5}, None, NOW, "UTC")


def test_completing_an_occurrence_plans_the_next_with_its_reminder() -> None:
    row = stored(
        due=DUE,
        recurrence="FREQ=WEEKLY;BYDAY=MO",
        timezone="Europe/Paris",
        series_id=3,
        series_start=DUE,
        remind_before=60,
    )
    values = rules.plan(row, {}, "done", NOW, "UTC")
    assert rules.continues_series(row, values)
    following = rules.next_occurrence(row, NOW, "UTC")
    assert following is not None
    assert following["due"] == DUE + timedelta(weeks=1)
    assert following["remind_at"] == following["due"] - timedelta(hours=1)
    assert following["series_id"] == 3 and following["title"] == "water plants"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "never occurs"),
        ("FREQ=YEARLY;BYMONTH=4,6;BYMONTHDAY=31", "never occurs"),
        ("FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=-30", "never occurs"),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=MO", "never occurs"),
        ("FREQ=MONTHLY;BYDAY=+53MO", "from 1 to 5"),
        ("FREQ=YEARLY;BYDAY=54FR", "from 1 to 53"),
        ("FREQ=WEEKLY;BYDAY=2MO", "needs FREQ=MONTHLY or YEARLY"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY takes numbers from 1 to 31"),
        ("FREQ=YEARLY;BYMONTH=13", "BYMONTH takes numbers from 1 to 12"),
        ("FREQ=YEARLY;BYMONTH=-1", "BYMONTH takes numbers from 1 to 12"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY takes days"),
    ],
)
def test_rules_that_cannot_happen_are_refused_at_once(rule: str, message: str) -> None:
    started = time.process_time()
    with pytest.raises(InvalidInput, match=message):
        from_phrase(rule)
    assert time.process_time() - started < 0.5


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",  # every four years
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYMONTHDAY=31",
        "FREQ=YEARLY;BYDAY=53MO",  # in years with 53 Mondays
        "FREQ=YEARLY;BYMONTH=2;BYDAY=5MO",
    ],
)
def test_rare_rules_that_do_happen_are_kept(rule: str) -> None:
    assert validate(rule) == rule
    assert next_after(rule, "UTC", DUE, DUE) is not None


def test_a_stored_rule_that_never_occurs_has_no_next_occurrence_and_costs_nothing() -> None:
    """Rules stored before they were checked: the search is not run at all."""
    started = time.process_time()
    for _ in range(4):
        assert next_after("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "UTC", DUE, NOW) is None
    assert time.process_time() - started < 0.5
