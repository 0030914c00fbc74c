"""Repeating tasks: RFC 5545 recurrence rules, read with python-dateutil's rrule.

A rule is kept as its RRULE text ("FREQ=WEEKLY;BYDAY=MO"). It is read in the task's timezone
from the series' first due time, on the wall clock: "every day at 9" stays 9:00 in Paris
across daylight-saving changes. Plain phrases ("every monday", "every 2 weeks", "monthly on
the 15th") are turned into rules here, for the REST API, the MCP tools and the chat agent.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime
from functools import lru_cache
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

# What the API's schema says a repetition may be: the phrases above in lower case, and the
# RRULEs whose every instance happens (so a generated example is never refused). The service
# also takes more (any case, BYMONTH, nth weekdays), checked as above.
_DAY_WORD = (
    r"(mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun"
    r"|monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?"
)
_DAY_LIST = rf"{_DAY_WORD}( ?(,|and|&) ?{_DAY_WORD})*"
_ORDINAL = r"([1-9]|[12][0-9]|3[01])(st|nd|rd|th)?"
_CODE = r"(MO|TU|WE|TH|FR|SA|SU)"
_END = r"(;(COUNT=[1-9][0-9]{0,3}|UNTIL=(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])))?"
_MONTHDAY = r"(;BYMONTHDAY=-?([1-9]|[12][0-9]|3[01]))?"
SCHEMA_PATTERN = (
    r"^((repeat |repeating |recurring )?("
    r"(every )?week ?days?|(every )?weekends?"
    rf"|((every|each|on) )?{_DAY_LIST}"
    r"|(every|each) (([1-9][0-9]{0,2}|other) )?(day|week|month|year)s?"
    rf"|(monthly|every month) on the {_ORDINAL}"
    rf"|(on )?the {_ORDINAL} of (every|each) month"
    r"|daily|weekly|monthly|yearly|annually|fortnightly)\.?"
    rf"|(RRULE:)?FREQ=DAILY(;INTERVAL=[1-9][0-9]{{0,2}})?{_MONTHDAY}{_END}"
    rf"|(RRULE:)?FREQ=(WEEKLY|MONTHLY|YEARLY)(;INTERVAL=[1-9][0-9]{{0,2}})?"
    rf"(;BYDAY={_CODE}(,{_CODE})*)?{_MONTHDAY}{_END})$"
)


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
    _check_numbers(parts)
    canonical = ";".join(f"{name}={value}" for name, value in parts.items())
    try:
        _rule(canonical, datetime(2026, 1, 5, 9, 0))
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"not a recurrence rule: {rule!r} ({exc})") from None
    # A rule that is well formed and never happens (FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30) would
    # send dateutil through every day to the year 9999 on each search: seconds of CPU.
    if not occurs(canonical):
        raise InvalidInput(f"the recurrence {rule!r} never occurs: check its days and months")
    return canonical


_BYDAY = re.compile(r"^([+-]?)(\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_RANGES = {"BYMONTHDAY": 31, "BYMONTH": 12}


def _check_numbers(parts: dict[str, str]) -> None:
    """The numbers in BYDAY, BYMONTHDAY and BYMONTH within what a calendar has (dateutil
    takes some out-of-range ones and fails on them later, inside every occurrence search)."""
    for name, most in _RANGES.items():
        for item in parts[name].split(",") if name in parts else ():
            # A day of the month may count from its end (-1 is the last); a month may not.
            number = item.removeprefix("-") if name == "BYMONTHDAY" else item
            if not number.isdigit() or not 1 <= int(number) <= most:
                raise InvalidInput(f"{name} takes numbers from 1 to {most}, not {item!r}")
    # An nth weekday ("2MO", "-1FR") counts within a month, or a year of a yearly rule.
    within = 53 if parts["FREQ"] == "YEARLY" and "BYMONTH" not in parts else 5
    for item in parts["BYDAY"].split(",") if "BYDAY" in parts else ():
        day = _BYDAY.match(item)
        if day is None:
            raise InvalidInput(f"BYDAY takes days such as MO or 2MO, not {item!r}")
        if day[2] is not None:
            if parts["FREQ"] not in ("MONTHLY", "YEARLY"):
                raise InvalidInput(f"an nth weekday ({item}) needs FREQ=MONTHLY or YEARLY")
            if not 1 <= int(day[2]) <= within:
                raise InvalidInput(f"an nth weekday counts from 1 to {within}, not {item!r}")


@lru_cache(maxsize=1024)
def occurs(rule: str) -> bool:
    """Whether some day matches the rule's months, days of the month and weekdays. The
    calendar repeats every 400 years, so those years answer for all; a rule that occurs at
    all occurs within them, and dateutil finds its next occurrence in as many steps. (Each
    step of a daily rule lands on the same weekday when its interval is a multiple of 7, so
    such a rule with weekdays counts as never: it may never meet them.)"""
    parts = dict(part.split("=", 1) for part in rule.split(";"))
    if parts["FREQ"] == "DAILY" and "BYDAY" in parts and int(parts.get("INTERVAL", "1")) % 7 == 0:
        return False
    months = [int(m) for m in parts["BYMONTH"].split(",")] if "BYMONTH" in parts else range(1, 13)
    monthdays = {int(d) for d in parts["BYMONTHDAY"].split(",")} if "BYMONTHDAY" in parts else None
    weekdays: list[tuple[int | None, int]] = []
    for item in parts["BYDAY"].split(",") if "BYDAY" in parts else ():
        named = _BYDAY.match(item)
        if named is None:
            return False
        nth = int(named[1] + named[2]) if named[2] else None
        weekdays.append((nth, _WEEKDAYS.index(named[3])))
    in_year = parts["FREQ"] == "YEARLY" and "BYMONTH" not in parts
    for year in range(2000, 2400):
        for month in months:
            length = calendar.monthrange(year, month)[1]
            for day in range(1, length + 1):
                if (
                    monthdays is not None
                    and day not in monthdays
                    and day - length - 1 not in monthdays
                ):
                    continue
                if not weekdays or any(
                    _is_weekday(year, month, day, weekday, nth, in_year)
                    for nth, weekday in weekdays
                ):
                    return True
    return False


_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _is_weekday(
    year: int, month: int, day: int, weekday: int, nth: int | None, in_year: bool
) -> bool:
    """Whether the date is that weekday: any, or the nth (from the end when negative) of its
    month, or of its year."""
    date = datetime(year, month, day)
    if date.weekday() != weekday:
        return False
    if nth is None:
        return True
    if in_year:
        position, total = date.timetuple().tm_yday, 366 if calendar.isleap(year) else 365
    else:
        position, total = day, calendar.monthrange(year, month)[1]
    return (position - 1) // 7 + 1 == nth if nth > 0 else -((total - position) // 7 + 1) == nth


def _rule(rule: str, start: datetime) -> rrule:
    # UNTIL in a rule may carry a Z; the rule runs on naive wall-clock times.
    text = re.sub(r"UNTIL=(\d{8}(?:T\d{6})?)Z?", r"UNTIL=\1", rule)
    parsed = rrulestr(text, dtstart=start)
    assert isinstance(parsed, rrule)
    return parsed


def next_after(
    rule: str, timezone: str, series_start: datetime, current: datetime
) -> datetime | None:
    """The occurrence after `current` (UTC), or None when the series has ended.

    A rule that never occurs (one stored before rules were checked for that) has no next
    occurrence: dateutil would search every day up to the year 9999 for one, for seconds.
    """
    if not occurs(rule):
        return None
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
