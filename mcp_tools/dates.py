"""Due dates as people say them: ISO timestamps, "tomorrow 5pm", "next friday", "in 3 days"."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from dateparser.date import DateDataParser


@cache
def _zone_names() -> frozenset[str]:
    # "Factory" is tzdata's placeholder zone, not a place: no date library handles it.
    return frozenset(available_timezones() - {"Factory"})


def zone(name: str) -> ZoneInfo:
    """The named IANA zone. Only real zone names pass: not a folder of the zone database
    ("Europe"), not a file path, not tzdata's placeholder."""
    if name not in _zone_names() and name != "UTC":
        raise ValueError(f"unknown timezone {name!r}: use an IANA name such as Europe/Paris")
    return ZoneInfo(name)


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
