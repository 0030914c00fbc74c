"""Due dates as people say them: ISO timestamps, "tomorrow 5pm", "next friday", "in 3 days"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time

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
