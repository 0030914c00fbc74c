"""Due dates as people say them, read in the user's timezone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from mcp_tools.dates import parse_due

NOW = datetime(2026, 11, 23, 13, 30, tzinfo=UTC)  # a Monday, 14:30 in Paris


@pytest.mark.parametrize(
    ("phrase", "paris"),
    [
        ("tomorrow", "2026-11-24 09:00"),  # a day without a time: 09:00 local
        ("friday", "2026-11-27 09:00"),
        ("in 3 days", "2026-11-26 09:00"),
        ("dec 5", "2026-12-05 09:00"),
        ("tomorrow 5pm", "2026-11-24 17:00"),
        ("tomorrow at 17:30", "2026-11-24 17:30"),
        ("noon tomorrow", "2026-11-24 12:00"),
        ("tonight", "2026-11-23 20:00"),
        ("in 2 hours", "2026-11-23 16:30"),
        ("in 30 minutes", "2026-11-23 15:00"),
        # a day of the month: the next one (the date reader alone took "the 1st" for January)
        ("the 1st", "2026-12-01 09:00"),
        ("the 2nd", "2026-12-02 09:00"),
        ("on the 25th at 5pm", "2026-11-25 17:00"),
        ("the 31st", "2026-12-31 09:00"),  # November has none: the next month that has one
        ("the 3rd of march", "2027-03-03 09:00"),
    ],
)
def test_phrases_in_the_users_timezone(phrase: str, paris: str) -> None:
    due = parse_due(phrase, "Europe/Paris", now=NOW).astimezone(ZoneInfo("Europe/Paris"))
    assert due.strftime("%Y-%m-%d %H:%M") == paris


@pytest.mark.parametrize("zone", ["Europe", "Factory", "../../etc/passwd", "Mars/Olympus"])
def test_a_timezone_must_be_a_zone(zone: str) -> None:
    with pytest.raises(ValueError, match="unknown timezone"):
        parse_due("tomorrow", zone, now=NOW)
