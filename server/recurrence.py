"""Repeating tasks: RFC 5545 recurrence rules, read with python-dateutil's rrule.

A rule is kept as its RRULE text ("FREQ=WEEKLY;BYDAY=MO"). It is read in the task's timezone
from the series' first due time, on the wall clock: "every day at 9" stays 9:00 in Paris
across daylight-saving changes. Plain phrases ("every monday", "every 2 weeks", "monthly on
the 15th") are turned into rules here, for the REST API, the MCP tools and the chat agent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr

from server.errors import InvalidInput

FREQUENCIES = {"DAILY": DAILY, "WEEKLY": WEEKLY, "MONTHLY": MONTHLY, "YEARLY": YEARLY}
PARTS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "COUNT", "UNTIL", "WKST"}
RULE_MAX = 200
INTERVAL_MAX = 1000
DAYS = {
    "mo": "MO", "monday": "MO", "mon": "MO", "tu": "TU", "tuesday": "TU", "tue": "TU",
    "tues": "TU", "we": "WE", "wednesday": "WE", "wed": "WE", "th": "TH", "thursday": "TH",
    "thu": "TH", "thur": "TH", "thurs": "TH", "fr": "FR", "friday": "FR", "fri": "FR",
    "sa": "SA", "saturday": "SA", "sat": "SA", "su": "SU", "sunday": "SU", "sun": "SU",
}  # fmt: skip
DAY_NAMES = {
    "MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday",
    "SA": "Saturday", "SU": "Sunday",
}  # fmt: skip
UNITS = {"day": "DAILY", "week": "WEEKLY", "month": "MONTHLY", "year": "YEARLY"}
WORDS = {"daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY", "yearly": "YEARLY",
         "annually": "YEARLY", "fortnightly": "WEEKLY;INTERVAL=2"}  # fmt: skip
_DAY = r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|nesday|rsday|urday)?s?"
_DAYS = rf"{_DAY}(?:\s*(?:,|and|&)\s*{_DAY})*"
_NTH = r"(?P<d>\d{1,2})(?:st|nd|rd|th)?"
# Phrases, after "repeat"/"recurring" is taken off: the rule, or how to build it.
_PHRASES: list[tuple[str, str]] = [
    (r"^(?:every\s+)?week\s*days?$", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
    (r"^(?:every\s+)?weekends?$", "FREQ=WEEKLY;BYDAY=SA,SU"),
    (rf"^(?:every\s+|each\s+|on\s+)?(?P<days>{_DAYS})$", "days"),
    (r"^(?:every|each)\s+(?:(?P<n>\d+|other)\s+)?(?P<unit>day|week|month|year)s?$", "unit"),
    (rf"^(?:monthly|every\s+month)\s+on\s+the\s+{_NTH}$", "monthday"),
    (rf"^(?:on\s+)?the\s+{_NTH}\s+of\s+(?:every|each)\s+month$", "monthday"),
    (r"^(?:daily|weekly|monthly|yearly|annually|fortnightly)$", "word"),
]
PHRASES = [(re.compile(pattern), kind) for pattern, kind in _PHRASES]


def _days(text: str) -> str:
    names = re.findall(_DAY, text)
    codes = []
    for name in names:
        code = DAYS.get(name.rstrip("s")) or DAYS.get(name)
        if code is None:
            raise InvalidInput(f"not a day of the week: {name!r}")
        codes.append(code)
    return ",".join(dict.fromkeys(codes))


def from_phrase(text: str) -> str:
    """An RRULE from a phrase ("every monday", "every 2 weeks") or from RRULE text itself."""
    raw = " ".join(text.strip().split())
    if raw.upper().startswith(("FREQ=", "RRULE:")):
        return validate(raw.upper().removeprefix("RRULE:"))
    phrase = re.sub(r"^(?:repeat(?:ing)?|recurring)\s+", "", raw.lower()).rstrip(".")
    for pattern, kind in PHRASES:
        match = pattern.match(phrase)
        if match is None:
            continue
        if kind == "days":
            return validate(f"FREQ=WEEKLY;BYDAY={_days(match['days'])}")
        if kind == "unit":
            count = match["n"]
            interval = 2 if count == "other" else int(count or 1)
            rule = f"FREQ={UNITS[match['unit']]}"
            return validate(rule if interval == 1 else f"{rule};INTERVAL={interval}")
        if kind == "monthday":
            return validate(f"FREQ=MONTHLY;BYMONTHDAY={int(match['d'])}")
        if kind == "word":
            return validate(f"FREQ={WORDS[phrase]}")
        return validate(kind)
    raise InvalidInput(
        f"could not read {text!r} as a repetition: say e.g. 'daily', 'every monday', "
        "'every weekday', 'every 2 weeks', 'monthly on the 15th', or give an RRULE "
        "such as FREQ=WEEKLY;BYDAY=MO"
    )


def validate(rule: str) -> str:
    """The rule in a canonical form, or a clear error: only daily to yearly rules, with the
    parts this service understands."""
    if len(rule) > RULE_MAX:
        raise InvalidInput(f"a recurrence rule is at most {RULE_MAX} characters")
    parts: dict[str, str] = {}
    for part in rule.strip().strip(";").split(";"):
        name, sep, value = part.partition("=")
        name = name.strip().upper()
        if not sep or not value.strip() or name in parts:
            raise InvalidInput(f"not a recurrence rule: {rule!r}")
        if name not in PARTS:
            raise InvalidInput(f"the recurrence part {name} is not supported")
        parts[name] = value.strip().upper()
    if parts.get("FREQ") not in FREQUENCIES:
        raise InvalidInput("a recurrence repeats DAILY, WEEKLY, MONTHLY or YEARLY (FREQ=...)")
    if "INTERVAL" in parts and not (
        parts["INTERVAL"].isdigit() and 1 <= int(parts["INTERVAL"]) <= INTERVAL_MAX
    ):
        raise InvalidInput(f"INTERVAL is a whole number from 1 to {INTERVAL_MAX}")
    if "COUNT" in parts and "UNTIL" in parts:
        raise InvalidInput("a recurrence has COUNT or UNTIL, not both")
    if "COUNT" in parts and not (parts["COUNT"].isdigit() and 1 <= int(parts["COUNT"]) <= 10_000):
        raise InvalidInput("COUNT is a whole number from 1 to 10000")
    canonical = ";".join(f"{name}={value}" for name, value in parts.items())
    try:
        _rule(canonical, datetime(2026, 1, 5, 9, 0))
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"not a recurrence rule: {rule!r} ({exc})") from None
    return canonical


def _rule(rule: str, start: datetime) -> rrule:
    # UNTIL in a rule may carry a Z; the rule runs on naive wall-clock times.
    text = re.sub(r"UNTIL=(\d{8}(?:T\d{6})?)Z?", r"UNTIL=\1", rule)
    parsed = rrulestr(text, dtstart=start)
    assert isinstance(parsed, rrule)
    return parsed


def next_after(
    rule: str, timezone: str, series_start: datetime, current: datetime
) -> datetime | None:
    """The occurrence after `current` (UTC), or None when the series has ended."""
    zone = ZoneInfo(timezone)
    start = series_start.astimezone(zone).replace(tzinfo=None)
    after = current.astimezone(zone).replace(tzinfo=None)
    following = _rule(rule, start).after(after)
    if following is None:
        return None
    # Wall-clock time in the zone: 09:00 stays 09:00 across a DST change.
    return following.replace(tzinfo=zone).astimezone(UTC)


def upcoming(
    rule: str, timezone: str, series_start: datetime, current: datetime, count: int
) -> list[datetime]:
    """The next `count` occurrences after `current`: bounded, however long the series."""
    found: list[datetime] = []
    at = current
    while len(found) < count:
        following = next_after(rule, timezone, series_start, at)
        if following is None:
            break
        found.append(following)
        at = following
    return found


def describe(rule: str) -> str:
    """'every week on Monday', 'every 2 days', 'every month on the 15th, 5 times'."""
    parts = dict(part.split("=", 1) for part in rule.split(";"))
    unit = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}[parts["FREQ"]]
    interval = int(parts.get("INTERVAL", "1"))
    text = f"every {unit}" if interval == 1 else f"every {interval} {unit}s"
    days = parts.get("BYDAY", "")
    if days == "MO,TU,WE,TH,FR":
        text = "every weekday" if interval == 1 else text + " on weekdays"
    elif days:
        names = [DAY_NAMES.get(day[-2:], day) for day in days.split(",")]
        text += " on " + (
            names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        )
    if "BYMONTHDAY" in parts:
        text += (
            f" on the {_ordinal(int(parts['BYMONTHDAY']))}"
            if parts["BYMONTHDAY"].lstrip("-").isdigit()
            else ""
        )
    if "COUNT" in parts:
        text += f", {parts['COUNT']} times"
    if "UNTIL" in parts:
        text += f", until {parts['UNTIL'][:4]}-{parts['UNTIL'][4:6]}-{parts['UNTIL'][6:8]}"
    return text


def _ordinal(day: int) -> str:
    if day < 0:
        return "last day" if day == -1 else f"{_ordinal(-day)} last day"
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"
