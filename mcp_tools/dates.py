"""Due dates as people say them: ISO timestamps, "tomorrow 5pm", "next friday", "in 3 days"."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time

from dateparser.date import DateDataParser

from server.timezones import zone

# A phrase that names a day but no time ("tomorrow", "friday", "in 3 days", "dec 5") means
# this time of day in the user's timezone, not the current time of day or midnight.
DEFAULT_TIME = time(9, 0)
_SAYS_A_TIME = re.compile(
    r"\d{1,2}\s*(:\s*\d{2})?\s*(a\.?m\.?|p\.?m\.?)(?![a-z])|\d{1,2}:\d{2}|\bnoon\b|midnight|tonight"
    r"|morning|afternoon|evening|\bnow\b|hours?\b|minutes?\b|mins?\b|\bh\b",
    re.IGNORECASE,
)


# "the 1st", "on the 22nd at 5pm": the next such day of a month. The date reader alone takes
# "the 1st" and "the 2nd" for January and February.
_DAY_OF_MONTH = re.compile(
    r"^(?:on\s+)?(?:the\s+)?(?P<day>\d{1,2})(?:st|nd|rd|th)\b(?!\s+of\b)(?P<rest>.*)$",
    re.I,
)


def _next_day_of_month(text: str, today: date) -> str:
    match = _DAY_OF_MONTH.match(text)
    if match is None or not 1 <= int(match["day"]) <= 31:
        return text
    day, year, month = int(match["day"]), today.year, today.month
    if day < today.day:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    while day > calendar.monthrange(year, month)[1]:  # no 31st in this month: the next one
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{calendar.month_name[month]} {day} {year}{match['rest']}"


def parse_due(text: str, timezone: str, *, now: datetime | None = None) -> datetime:
    """Resolve `text` in `timezone` and return it in UTC; ValueError if it is not a date."""
    tz = zone(timezone)
    text = text.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None:
        base = (now or datetime.now(UTC)).astimezone(tz).replace(tzinfo=None)
        text = _next_day_of_month(text, base.date())
        parser = DateDataParser(
            languages=["en"],
            settings={
                "TIMEZONE": timezone,
                "RETURN_AS_TIMEZONE_AWARE": True,
                "PREFER_DATES_FROM": "future",
                "RELATIVE_BASE": base,
            },
        )
        try:
            parsed = parser.get_date_data(text).date_obj
        except (ValueError, OverflowError, TypeError):
            parsed = None
        if parsed is not None and not _SAYS_A_TIME.search(text):
            local = parsed.astimezone(tz) if parsed.tzinfo else parsed.replace(tzinfo=tz)
            parsed = datetime.combine(local.date(), DEFAULT_TIME, tzinfo=tz)
        if parsed is None:
            raise ValueError(
                f"could not read {text!r} as a date: use an ISO date such as 2026-05-01T17:00 "
                "or a phrase such as 'tomorrow 5pm', 'next friday', 'in 3 days'"
            )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of the range of dates") from None
