"""Due dates as people say them: ISO timestamps, "tomorrow 5pm", "next friday", "in 3 days"."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateparser.date import DateDataParser


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA name such as Europe/Paris"
        ) from exc


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
        parsed = parser.get_date_data(text).date_obj
        if parsed is None:
            raise ValueError(
                f"could not read {text!r} as a date: use an ISO date such as 2026-05-01T17:00 "
                "or a phrase such as 'tomorrow 5pm', 'next friday', 'in 3 days'"
            )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)
