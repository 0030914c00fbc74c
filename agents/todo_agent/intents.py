"""What the offline model understands: one message in, one `Intent` out, by rules.

The words live in `vocabulary.py`; this module turns them into patterns. Reading a message:
1. normalise it: quotes, spaces, punctuation, and the filler people put around a request
   ("ok, now ...", "... please");
2. try the shapes below in order, each a pattern over the lower-cased text;
3. if none fits, correct a misspelt first word against the vocabulary (rapidfuzz) and try
   again, remembering that the verb was a guess: a guessed delete is confirmed first, and a
   word that could be two different verbs makes the model ask;
4. else a question about the list, else "unknown".

It knows nothing of tasks or tools; `offline.py` decides which tools to call for an intent.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from rapidfuzz import fuzz, process

from server.errors import AppError
from server.recurrence import from_phrase
from todo_agent import vocabulary as v

Kind = Literal[
    "add",
    "list",
    "search",
    "complete",
    "reopen",
    "delete",
    "update",
    "help",
    "greeting",
    "yes",
    "no",
    "pick",
    "others",
    "everything",
    "unclear",
    "unknown",
]
ACTIONS = ("complete", "reopen", "delete", "update")

# A reference to a task: its id, the one the conversation just talked about, or title words.
IdRef = int
It = Literal["it"]
TaskRef = IdRef | It | str


@dataclass(frozen=True)
class Intent:
    kind: Kind
    ref: TaskRef | None = None
    titles: tuple[str, ...] = ()  # add: one task, or one per item of a list
    title: str | None = None
    due: str | None = None
    clear_due: bool = False
    priority: str | None = None
    description: str | None = None
    tags_added: tuple[str, ...] = ()
    tags_removed: tuple[str, ...] = ()
    tags: tuple[str, ...] | None = None  # replaces the task's tags
    status: Literal["pending", "completed", "all"] = "pending"
    query: str | None = None
    due_before: str | None = None
    recurrence: str | None = None  # a phrase such as "every monday"; "none" stops repeating
    remind_before: int | None = None  # minutes
    repeating: bool | None = None  # list: only repeating tasks
    guessed: bool = False  # the verb was a typo correction
    confirmed: bool = False  # the user said yes to "do you mean ...?"
    options: tuple[str, ...] = field(default=())  # unclear: the verbs it could be; pick: [n]

    def with_ref(self, ref: TaskRef, confirmed: bool = False) -> Intent:
        return replace(self, ref=ref, confirmed=confirmed)

    @property
    def changes_repetition_or_reminder(self) -> bool:
        return self.recurrence is not None or self.remind_before is not None

    @property
    def changes_tags(self) -> bool:
        return bool(self.tags_added or self.tags_removed) or self.tags is not None


def _any(phrases: Iterable[str]) -> str:
    """A regex alternation of phrases, longest first so that "get rid of" beats "get"."""
    words = sorted(set(phrases), key=len, reverse=True)
    return "|".join(re.escape(word) for word in words)


# ---------------------------------------------------------------- normalising

_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "`": "'"})
_EDGE = " \t.,!?;:-"
_LEAD = re.compile(rf"^(?:{_any(v.LEAD_INS)})(?=[\s,.!:;-])[\s,.!:;-]*", re.I)
_TRAIL = re.compile(rf"[\s,.!;-]+(?:{_any(v.TRAILERS)})$", re.I)


def normalize(message: str) -> str:
    """The request without the filler around it, in the user's own case."""
    text = re.sub(r"\s+", " ", message.translate(_QUOTES)).strip(_EDGE)
    while True:
        shorter = _TRAIL.sub("", _LEAD.sub("", text)).strip(_EDGE)
        if not shorter or shorter == text:
            return text
        text = shorter


# ---------------------------------------------------------------- dates and priorities

_WEEKDAY = r"(?:mon|tues|tue|wednes|wed|thurs|thu|fri|satur|sat|sun)(?:day)?"
_TIME = r"(?:at\s+)?\d{1,2}(?::\d{2})?\s*(?:am|pm)|at\s+\d{1,2}(?::\d{2})?|at\s+noon|noon|midnight"
_PART = r"(?:\s+(?:morning|afternoon|evening|night))?"
_DAY = (
    rf"today{_PART}|tonight|tomorrow{_PART}|tmrw|tmr|(?:next|this|on)\s+{_WEEKDAY}{_PART}"
    rf"|{_WEEKDAY}{_PART}|next\s+week|next\s+month|the\s+weekend|this\s+weekend"
    r"|in\s+(?:\d{1,6}|an?|one|two|three)\s+(?:minutes?|hours?|days?|weeks?|months?)"
    r"|(?:on\s+)?\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2})?"
    r"|(?:on\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?"
    r"|(?:on\s+)?(?:the\s+)?\d{1,2}(?:st|nd|rd|th)(?:\s+of\s+[a-z]+)?"
)
_WHEN = rf"(?:{_DAY})(?:\s+(?:{_TIME}))?|(?:{_TIME})(?:\s+(?:{_DAY}))?"
_DUE_AT_END = re.compile(rf"[\s,]+(?:(?:due|by|on|before|for)\s+)?(?P<due>{_WHEN})\s*$", re.I)
_DUE_AT_START = re.compile(rf"^(?:(?:due|by|on|for)\s+)?(?P<due>{_WHEN})[\s,]+to\s+", re.I)
_ONLY_WHEN = re.compile(rf"^(?:(?:due|by|on|before|for)\s+)?(?P<due>{_WHEN})$", re.I)
_PRIORITY = re.compile(
    r"[\s,]*\b(?:with\s+|as\s+|at\s+)?(?:a\s+)?(?P<p>high|top|low|medium|normal|urgent|no)"
    r"\s+priority\b|[\s,]*\b(?P<u>urgent(?:ly)?|asap|important)\b",
    re.I,
)
_PARTS_OF_DAY = {"morning": "9am", "afternoon": "3pm", "evening": "7pm", "night": "9pm"}
_SHORT_DAYS = {"tmrw": "tomorrow", "tmr": "tomorrow", "the weekend": "saturday"}


def normalize_due(phrase: str) -> str:
    """A due phrase the date reader understands: it reads "tomorrow 9am", not "tomorrow
    morning"."""
    phrase = re.sub(r"^(?:due|by|on|before|for)\s+", "", phrase.strip(), flags=re.I)
    for short, long in _SHORT_DAYS.items():
        phrase = re.sub(rf"\b{short}\b", long, phrase, flags=re.I)
    for part, clock in _PARTS_OF_DAY.items():
        phrase = re.sub(rf"\b{part}\b", clock, phrase, flags=re.I)
    return phrase


def split_due(text: str) -> tuple[str, str | None]:
    """'call mom tomorrow at 5pm' -> ('call mom', 'tomorrow at 5pm'); a time said first, as
    in "(remind me) in 2 minutes to stretch", 'at noon to eat': ('stretch', 'in 2 minutes')."""
    match = _DUE_AT_END.search(text)
    if match and match.start() > 0:
        return text[: match.start()].strip(" ,"), normalize_due(match["due"])
    first = _DUE_AT_START.match(text)
    if first and first.end() < len(text):
        return text[first.end() :].strip(" ,"), normalize_due(first["due"])
    return text, None


def split_priority(text: str) -> tuple[str, str | None]:
    match = _PRIORITY.search(text)
    if not match:
        return text, None
    word = (match["p"] or match["u"]).lower()
    rest = (text[: match.start()] + text[match.end() :]).strip(" ,")
    return rest, v.PRIORITIES[word]


# ---------------------------------------------------------------- task references

# Numbers are read within sane bounds: a 5,000-digit "id" is words, not an int to convert.
_ID = re.compile(r"^(?:(?P<word>[a-z-]+)\.?\s*)?#?\s*(?P<n>\d{1,10})$", re.I)
_IT = re.compile(
    r"^(?:it|that|this|that one|this one|that task|this task|the task|the last one|the last task"
    r"|the one i just added|the one you just added|the new one|the previous one|the same one)$",
    re.I,
)
_EVERYTHING = re.compile(rf"^(?:{_any(v.EVERYTHING)})$", re.I)


def _id_word(word: str | None) -> bool:
    """ "task", or a slip of it ("tsk", "taks"): a word that says a number is a task id."""
    if word is None or word.lower() in v.ID_WORDS:
        return True
    return (
        len(word) >= 3
        and process.extractOne(word.lower(), v.ID_WORDS, scorer=fuzz.ratio, score_cutoff=75)
        is not None
    )


def parse_ref(text: str) -> TaskRef:
    text = re.sub(r"^(?:the|my)\s+", "", text.strip(_EDGE), flags=re.I)
    # "the task called clean the garage"
    text = re.sub(r"^(?:task|todo|one|item)\s+(?:called|named|titled)\s+", "", text, flags=re.I)
    number = _ID.match(text)
    if number and _id_word(number["word"]):
        return int(number["n"])
    if _IT.match(text) or _IT.match(f"the {text}"):
        return "it"
    words = re.sub(r"^(?:the|my|a)\s+", "", text, flags=re.I)
    words = re.sub(r"\s+(?:task|todo|to-do|item|one|thing)$", "", words, flags=re.I)
    return words.strip()


# ---------------------------------------------------------------- building intents


def _title(text: str) -> str:
    text = re.sub(
        r"\s+(?:to|on|in|onto)\s+(?:my|the)\s+(?:todo |to-do |task )?(?:list|tasks|todos)$",
        "",
        text.strip(_EDGE),
        flags=re.I,
    ).strip(_EDGE + "\"'")
    return text[:1].upper() + text[1:]


_ITEM = r"[^,]+?"
_LIST_OF_ITEMS = re.compile(rf"^{_ITEM}(?:,\s*{_ITEM}){{1,}}(?:,?\s+and\s+{_ITEM})?$", re.I)


def split_items(title: str) -> list[str]:
    """ "milk, eggs and bread" is three tasks; "call mom and dad" or "email Bob, Alice" is one:
    a list needs at least three items with commas between them."""
    if not _LIST_OF_ITEMS.match(title):
        return [title]
    items = [item.strip() for item in re.split(r",\s*(?:and\s+)?|\s+and\s+", title)]
    items = [item for item in items if item]
    return items if len(items) >= 3 else [title]


_AT = r"(?:\s+at\s+(?P<time>\d{1,2}(?::\d{2})?\s*(?:am|pm)?|noon|midnight))?"
_EVERY = r"(?:every|each)\s+.+?|daily|weekly|monthly|yearly|annually|fortnightly|on\s+weekdays"
_RECURRENCE_FIRST = re.compile(rf"^(?P<rec>{_EVERY}){_AT}\s+to\s+(?P<rest>.+)$", re.I)
_RECURRENCE_LAST = re.compile(rf"^(?P<rest>.+?)\s+(?P<rec>{_EVERY}){_AT}$", re.I)


# "pay rent on the 1st of every month", "pay rent every month on the 1st"
_MONTH_DAY = re.compile(
    r"^(?P<rest>.+?)\s+(?:on\s+the\s+(?P<day>\d{1,2})(?:st|nd|rd|th)\s+of\s+(?:every|each)\s+month"
    rf"|(?:every|each)\s+month\s+on\s+the\s+(?P<day2>\d{{1,2}})(?:st|nd|rd|th)){_AT}$",
    re.I,
)
_LEADS = ("every", "each", "daily", "weekly", "monthly", "fortnightly")
_AT_FIRST = re.compile(
    r"^at\s+(?P<time>\d{1,2}(?::\d{2})?\s*(?:am|pm)?|noon|midnight)\s+(?P<rest>.+)$", re.I
)


def split_recurrence(text: str) -> tuple[str, str | None, str | None]:
    """'every monday at 9 to water the plants' -> ('water the plants', 'every monday', due),
    with the first due time; a phrase that is no repetition ("every friend") stays put."""
    month_day = _MONTH_DAY.match(text.strip())
    if month_day is not None:
        phrase = f"monthly on the {_ordinal(int(month_day['day'] or month_day['day2']))}"
        with contextlib.suppress(AppError):
            rule = from_phrase(phrase)
            return month_day["rest"], phrase, _first_due(rule, month_day["time"])
    for pattern in (_RECURRENCE_FIRST, _RECURRENCE_LAST):
        match = pattern.match(text.strip())
        if match is None:
            continue
        phrase = match["rec"]
        try:
            rule = from_phrase(phrase)
        except AppError:
            continue
        return match["rest"], phrase, _first_due(rule, match["time"])
    return text, None, None


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _first_due(rule: str, time: str | None) -> str:
    """The first occurrence as a due phrase: the rule's first weekday or day of the month,
    at its time (a day alone is read as 9:00)."""
    clock = f" at {time}" if time else ""
    if time and re.fullmatch(r"\d{1,2}", time.strip()):
        clock = f" at {time.strip()}:00"
    parts = dict(part.split("=", 1) for part in rule.split(";"))
    if "BYDAY" in parts:
        day = parts["BYDAY"].split(",")[0][-2:]
        return f"{_WEEKDAYS[day]}{clock}"
    if "BYMONTHDAY" in parts and parts["BYMONTHDAY"].isdigit():
        return f"the {_ordinal(int(parts['BYMONTHDAY']))}{clock}"
    return f"tomorrow{clock}" if time else "tomorrow"


_WEEKDAYS = {
    "MO": "monday", "TU": "tuesday", "WE": "wednesday", "TH": "thursday", "FR": "friday",
    "SA": "saturday", "SU": "sunday",
}  # fmt: skip


def _add(raw: str, remind: bool = False) -> Intent:
    rest, priority = split_priority(raw)
    rest, recurrence, first_due = split_recurrence(rest)
    rest, due = split_due(rest)
    due = due or first_due
    titles = tuple(_title(item) for item in split_items(_title(rest)))
    if not all(titles):
        return Intent("unknown")
    # "remind me to ..." with a time: a reminder at that time.
    reminder = 0 if remind and due else None
    return Intent(
        "add",
        titles=titles,
        due=due,
        priority=priority,
        recurrence=recurrence,
        remind_before=reminder,
    )


_UNITS = {"min": 1, "minute": 1, "hour": 60, "hr": 60, "day": 1440, "week": 10080}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "five": 5, "ten": 10, "fifteen": 15,
            "twenty": 20, "thirty": 30, "half an": 0.5}  # fmt: skip


def _minutes(amount: str, unit: str) -> int | None:
    count = float(amount) if amount.isdigit() else _NUMBERS.get(amount.lower())
    if count is None:
        return None
    return int(count * _UNITS[unit.lower().rstrip("s")])


def _update(ref: str, change: str) -> Intent:
    """ "change task 1 to call mom tonight": a new title, due date or priority, in any mix."""
    change = change.strip(_EDGE)
    only_when = _ONLY_WHEN.match(change)
    if only_when:
        return Intent("update", ref=parse_ref(ref), due=normalize_due(only_when["due"]))
    rest, priority = split_priority(change)
    rest, due = split_due(rest)
    title = _title(rest) if rest else None
    return Intent("update", ref=parse_ref(ref), title=title, due=due, priority=priority)


def _tags(text: str) -> tuple[str, ...]:
    words = re.split(r"\s*,\s*|\s+and\s+|\s+", text.strip(_EDGE))
    return tuple(dict.fromkeys(w.lstrip("#").lower() for w in words if w.lstrip("#")))


_FIELD_NAMES = {phrase: name for name, phrases in v.FIELDS.items() for phrase in phrases}


def _edit(ref: str, field_word: str, value: str) -> Intent:
    name = _FIELD_NAMES[field_word.lower()]
    value = value.strip(_EDGE)
    target = parse_ref(ref)
    if name == "due":
        if value.lower() in ("none", "nothing", "no date", "no due date", "never"):
            return Intent("update", ref=target, clear_due=True)
        return Intent("update", ref=target, due=normalize_due(value))
    if name == "title":
        return Intent("update", ref=target, title=_title(value))
    if name == "priority":
        priority = v.PRIORITIES.get(value.lower().removesuffix(" priority"))
        return Intent("update", ref=target, priority=priority) if priority else Intent("unknown")
    if name == "description":
        return Intent("update", ref=target, description=value)
    return Intent("update", ref=target, tags=_tags(value))


# (pattern, shape), tried in order over the lower-cased, normalised message. Field edits and
# tag edits come first: they start with verbs ("set", "remove") that other shapes also use.
_REF = r"(?P<ref>.+?)"
_FIELD = rf"(?P<field>{_any(_FIELD_NAMES)})"
_EDIT = _any(v.EDIT_VERBS)
_STATE_VERB = _any(v.STATE_VERBS)
_MY_LIST = r"(?:my\s+|the\s+)?(?:todo\s+|to-do\s+|task\s+)?list"
_LIST_END = rf"(?:\s+(?:from|off|on|in)\s+{_MY_LIST})?"
_OFF_LIST = rf"(?:\s+{_MY_LIST})?"
# "what have I completed" asks for a list; "the report is done" says what is done.
_NOT_ASKING = r"(?!(?:what|what's|whats|which|how|have|has|did|do|does|is|are|any|show|list)\b)"
_SHAPES: list[tuple[str, str]] = [
    (r"^(?:help|what can you do|how does this work|commands|what do you do)\b", "help"),
    (rf"^(?:{_any(v.YES)})$", "yes"),
    (rf"^(?:{_any(v.NO)})$", "no"),
    (rf"^(?:the\s+)?(?P<ord>{_any(v.ORDINALS)})(?:\s+(?:one|task))?$", "pick"),
    (rf"^(?:{_EDIT})\s+(?:the\s+)?{_FIELD}\s+(?:of|for|on|in)\s+{_REF}\s+(?:to|as|into)\s+"
     r"(?P<value>.+)$", "edit"),
    (rf"^(?:{_EDIT})\s+{_REF}(?:'s|s')\s+{_FIELD}\s+(?:to|as|into)\s+(?P<value>.+)$", "edit"),
    (rf"^(?:{_EDIT})\s+{_REF}\s+{_FIELD}\s+(?:to|as|into)\s+(?P<value>.+)$", "edit"),
    (rf"^(?:remove|clear|delete|drop)\s+(?:the\s+)?(?:due date|deadline|due)\s+(?:from|of|on)\s+"
     rf"{_REF}$", "undue"),
    (rf"^(?:tag|label)\s+{_REF}\s+(?:with|as)\s+(?P<tags>.+)$", "tag"),
    (rf"^(?:add|put)\s+(?:the\s+)?(?:tags?|labels?)\s+(?P<tags>.+?)\s+(?:to|on)\s+{_REF}$", "tag"),
    (rf"^(?:remove|delete|drop|take)\s+(?:the\s+)?(?:tags?|labels?)\s+(?P<tags>.+?)\s+"
     rf"(?:from|off)\s+{_REF}$", "untag"),
    (rf"^(?:add|put|write|attach|set)\s+(?:a\s+|the\s+)?(?:note|description|details)\s+"
     rf"(?:to|on|for)\s+{_REF}\s*(?::|\s+saying|\s+that says|\s+-)\s*(?P<value>.+)$", "describe"),
    (rf"^(?:{_STATE_VERB})\s+{_REF}\s+(?:as\s+|to\s+)?(?:a\s+)?"
     rf"(?P<prio>{_any(v.PRIORITIES)})\s+priority$", "prioritize"),
    (rf"^(?:{_STATE_VERB})\s+{_REF}\s+(?:as\s+)?(?P<prio>urgent|important|critical)$",
     "prioritize"),
    (rf"^(?:prioriti[sz]e|bump up)\s+{_REF}$", "prioritize"),
    (rf"^(?:deprioriti[sz]e)\s+{_REF}$", "deprioritize"),
    (rf"^(?:{_STATE_VERB})\s+{_REF}\s+(?:as\s+|to\s+)?(?P<state>{_any(v.STATES)})$", "state"),
    (rf"^(?:cross|tick|check|mark)\s+{_REF}\s+off{_OFF_LIST}$", "complete"),
    (rf"^(?:take|knock|strike)\s+{_REF}\s+off{_OFF_LIST}$", "delete"),
    (r"^remind\s+me\s+(?P<n>\d{1,6}|an?|one|two|three|five|ten|fifteen|twenty|thirty|half\s+an)\s+"
     rf"(?P<unit>min|mins|minutes?|hours?|hrs?|days?|weeks?)\s+before\s+{_REF}$", "remind"),
    (rf"^(?:stop|quit|no\s+longer|don't|do\s+not)\s+(?:repeating|recurring|repeat)\s+{_REF}$",
     "stop"),
    (rf"^(?:make\s+)?{_REF}\s+(?:should\s+)?(?:stop|not|no\s+longer)\s+(?:repeat|repeating|recur)$",
     "stop"),
    (rf"^repeat\s+{_REF}\s+(?P<rec>(?:every|each)\s+.+|daily|weekly|monthly|yearly)$", "repeat"),
    (rf"^{_NOT_ASKING}(?:make\s+)?{_REF}\s+repeats?\s+(?P<rec>.+)$", "repeat"),
    (rf"^{_REF}\s+is\s+due\s+(?P<when>.+)$", "move"),
    (rf"^(?:{_any(v.ACTION_VERBS['move'])})\s+{_REF}\s+(?:to|until|till|for|on)\s+"
     r"(?P<when>.+)$", "move"),
    (rf"^(?:{_any(v.ACTION_VERBS['rename'])})\s+{_REF}\s+(?:to|as|into)\s+(?P<title>.+)$",
     "rename"),
    (rf"^(?:change|update|edit|modify)\s+{_REF}\s+(?:to|into)\s+(?P<change>.+)$", "update"),
    (rf"^(?:{_any(v.ACTION_VERBS['search'])})(?:\s+(?:my\s+)?tasks?)?"
     r"(?:\s+(?:about|for|with|named|called|matching|containing|mentioning))?\s+(?P<q>.+)$",
     "search"),
    (rf"^(?:{_any(v.ACTION_VERBS['complete'])})\s+{_REF}{_LIST_END}$", "complete"),
    (rf"^(?:{_any(v.ACTION_VERBS['reopen'])})\s+{_REF}$", "reopen"),
    (rf"^(?:{_any(v.ACTION_VERBS['delete'])})\s+{_REF}{_LIST_END}$", "delete"),
    (rf"^(?P<verb>{_any(v.ACTION_VERBS['add'])})\b(?:\s+(?:a|an))?(?:\s+new)?"
     r"(?:\s+(?:task|todo|to-do|item|reminder|entry))?"
     r"(?:\s+(?:to|called|named|for|saying|that says))?\s*:?\s+(?P<title>.+)$", "add"),
    (rf"^{_NOT_ASKING}{_REF}\s+(?:is|was|are|has been|got)\s+(?:now\s+|all\s+)?"
     rf"(?:{_any(v.DONE_WORDS)})$", "complete"),
    (rf"^{_NOT_ASKING}{_REF}\s+(?:{_any(v.DONE_WORDS)})$", "complete"),
    (rf"^{_NOT_ASKING}{_REF}\s+(?:{_any(v.GONE_WORDS)})$", "delete"),
    (r"^i\s+(?:didn't|did not|haven't|have not|never)\s+(?:actually\s+|really\s+)?"
     rf"(?:do\s+|done\s+|finish\s+|finished\s+)?{_REF}(?:\s+yet)?$", "reopen"),
]  # fmt: skip
SHAPES = [(re.compile(pattern), shape) for pattern, shape in _SHAPES]


def _from_shape(shape: str, groups: dict[str, str]) -> Intent:
    ref = groups.get("ref", "")
    if shape in ("help", "yes", "no"):
        return Intent(shape)  # type: ignore[arg-type]
    if shape == "pick":
        return Intent("pick", options=(str(v.ORDINALS[groups["ord"].lower()]),))
    if shape == "edit":
        return _edit(ref, groups["field"], groups["value"])
    if shape == "undue":
        return Intent("update", ref=parse_ref(ref), clear_due=True)
    if shape == "tag":
        return Intent("update", ref=parse_ref(ref), tags_added=_tags(groups["tags"]))
    if shape == "untag":
        return Intent("update", ref=parse_ref(ref), tags_removed=_tags(groups["tags"]))
    if shape == "describe":
        return Intent("update", ref=parse_ref(ref), description=groups["value"].strip(_EDGE))
    if shape in ("prioritize", "deprioritize"):
        word = groups.get("prio") or ("high" if shape == "prioritize" else "low")
        return Intent("update", ref=parse_ref(ref), priority=v.PRIORITIES[word.lower()])
    if shape == "state":
        kind = v.STATES[groups["state"].lower()]
        return Intent("complete" if kind == "complete" else "reopen", ref=parse_ref(ref))
    if shape == "move":
        rest, priority = split_priority(groups["when"])
        if priority and not rest:  # "bump the report to low priority"
            return Intent("update", ref=parse_ref(ref), priority=priority)
        return Intent("update", ref=parse_ref(ref), due=normalize_due(groups["when"]))
    if shape == "rename":
        return Intent("update", ref=parse_ref(ref), title=_title(groups["title"]))
    if shape == "update":
        return _update(ref, groups["change"])
    if shape == "remind":
        minutes = _minutes(" ".join(groups["n"].split()), groups["unit"])
        if minutes is None:
            return Intent("unknown")
        return Intent("update", ref=parse_ref(ref), remind_before=minutes)
    if shape == "stop":
        return Intent("update", ref=parse_ref(ref), recurrence="none")
    if shape == "repeat":
        return Intent("update", ref=parse_ref(ref), recurrence=groups["rec"].strip(_EDGE))
    if shape == "search":
        query = re.sub(r"^(?:the|my|a)\s+|\s+(?:tasks?|todos?|items?|one)$", "", groups["q"])
        return Intent("search", query=query.strip(_EDGE), status="all")
    if shape == "add":
        return _add(groups["title"], remind=groups.get("verb", "").lower().startswith("remind"))
    return Intent(shape, ref=parse_ref(ref))  # type: ignore[arg-type]  # complete/reopen/delete


def _by_shape(text: str) -> Intent | None:
    lowered = text.lower()
    for pattern, shape in SHAPES:
        match = pattern.match(lowered)
        if match is None:
            continue
        # Titles keep the user's capitalisation: cut the same spans from the original text.
        groups = {
            name: text[match.start(name) : match.end(name)]
            for name in match.groupdict()
            if match[name] is not None
        }
        intent = _from_shape(shape, groups)
        if intent.kind in ACTIONS and intent.ref is not None and _EVERYTHING.match(str(intent.ref)):
            return Intent("everything")
        return intent
    return None


# ---------------------------------------------------------------- misspelt verbs

# Every single word that can start a request, with the action it belongs to.
_VERB_WORDS: dict[str, str] = {}
for _action, _phrases in v.ACTION_VERBS.items():
    for _phrase in _phrases:
        if " " not in _phrase:
            _VERB_WORDS.setdefault(_phrase, _action)
for _word in (*v.STATE_VERBS, *v.EDIT_VERBS, "tag", "prioritize", "show", "list"):
    _VERB_WORDS.setdefault(_word, "change")
_VERB_WORDS.update(show="list", list="list", remind="add", search="search")
# Words that start a shape as they are: never "corrected" into another verb.
_KNOWN_FIRST = {
    phrase.split()[0]
    for phrase in (*(p for ps in v.ACTION_VERBS.values() for p in ps), *v.YES, *v.NO)
} | {*_VERB_WORDS, "i", "what", "what's", "whats", "how", "which", "any", "is", "label", "clear",
     "deprioritize", "deprioritise", "prioritise", "attach", "write", "cross", "take"}  # fmt: skip


_STATE_WORDS = {word: state for word, state in v.STATES.items() if " " not in word}
_STATE_AT_END = re.compile(rf"^(?:{_STATE_VERB})\s.+\s(?P<word>[a-z]+)$", re.I)


def _respell_state(text: str) -> str:
    """ "mark task 3 as dnoe" -> "... as done": a slip in the state word at the end."""
    match = _STATE_AT_END.match(text)
    if match is None or match["word"].lower() in _STATE_WORDS:
        return text
    found = process.extract(
        match["word"].lower(), list(_STATE_WORDS), scorer=fuzz.ratio, score_cutoff=75, limit=4
    )
    if not found or len({_STATE_WORDS[w] for w, score, _ in found if score >= found[0][1] - 5}) > 1:
        return text
    return text[: match.start("word")] + found[0][0]


def _respell(text: str) -> tuple[str, Intent | None]:
    """The message with a misspelt first word corrected ("ad milk" -> "add milk"), or an
    "unclear" intent when the slip could be two different verbs."""
    text = _respell_state(text)
    first, _, rest = text.partition(" ")
    word = first.lower()
    if not rest or len(word) < 2 or word in _KNOWN_FIRST or not word.isalpha():
        return text, None
    found = process.extract(word, list(_VERB_WORDS), scorer=fuzz.ratio, score_cutoff=75, limit=4)
    if not found:
        return text, None
    best = found[0][1]
    actions = {_VERB_WORDS[w] for w, score, _ in found if score >= best - 5}
    if len(actions) > 1:
        verbs = tuple(sorted(w for w, score, _ in found if score >= best - 5))
        return text, Intent("unclear", options=verbs)
    return f"{found[0][0]} {rest}", None


# ---------------------------------------------------------------- questions about the list

_LIST_WORDS = re.compile(
    r"\b(?:tasks?|todos?|to-dos?|list|pending|left|remaining|open|outstanding|agenda|due|overdue|"
    r"what do i have|what have i got|what's on|whats on|what's next|whats next|what should i do|"
    r"to do|on my plate|everything)\b"
)
_COMPLETED_WORDS = re.compile(
    r"\b(?:completed|done|finished|accomplished|did i (?:do|finish|complete)|checked off)\b"
)
_ALL_WORDS = re.compile(r"\b(?:all|every|everything|whole)\b")
_ASKING = re.compile(
    r"\b(?:what|what's|whats|show|list|display|see|which|any|my|how many|give me|tell me|view|"
    r"pending|overdue|due|todo|tasks?|check)\b"
)


_REPEATING = re.compile(r"\b(?:repeats?|repeating|recurring|recurrent|recur)\b")


def _list(lowered: str) -> Intent | None:
    if _REPEATING.search(lowered):  # the shapes that change a repetition came first
        return Intent("list", status="pending", repeating=True)
    if not _LIST_WORDS.search(lowered) and not _COMPLETED_WORDS.search(lowered):
        return None
    if not _ASKING.search(lowered):
        return None
    if "overdue" in lowered or "late" in lowered.split():
        return Intent("list", status="pending", due_before="now")
    # "due today", and the ways people ask for a day without "due": "what do I have today",
    # "what's on for tomorrow", "anything left this week".
    due = re.search(
        r"\b(?:due|have|got|on|for|left|planned)\s+(today|tomorrow|this week|next week)\b",
        lowered,
    )
    if due:
        limit = {
            "today": "today 23:59",
            "tomorrow": "tomorrow 23:59",
            "this week": "sunday 23:59",
            "next week": "in 14 days",
        }[due[1]]
        return Intent("list", status="pending", due_before=limit)
    if _COMPLETED_WORDS.search(lowered):
        return Intent("list", status="completed")
    if _ALL_WORDS.search(lowered):
        return Intent("list", status="all")
    return Intent("list", status="pending")


# ---------------------------------------------------------------- the whole reading

_GREETING = re.compile(
    r"^(?:hi|hello|hey|yo|thanks|thank you|thx|cheers|good (?:morning|afternoon|evening)|"
    r"morning|hiya|howdy)(?:\s+there)?(?:\s+(?:so much|a lot))?[\s!.]*$",
    re.I,
)
_OTHERS = re.compile(
    r"\b(?!(?:today|tomorrow|it|that|what|let|there|here|who|he|she|week|month|year|one|where|"
    r"how|everyone|nobody)'s)[a-z]+'s\s+(?:tasks?|todos?|to-dos?|list|stuff|items)\b"
    r"|\b(?:other|another|all|every|someone|somebody)\s+(?:users?|people|person)\b"
    r"|\bsomeone else|\beveryone's|\buser\s+(?:id\s+)?\S+'?s?\s+(?:tasks?|todos?)",
    re.I,
)


_PAST = re.compile(
    rf"^(?:i\s+)?(?:just\s+|finally\s+|already\s+)?(?P<verb>{_any(v.PAST_TENSE)})\s+"
    rf"(?P<rest>.+?)(?:[\s,;.!-]+(?:{_any(v.PAST_TENSE_ENDINGS)}))?$",
    re.I,
)


def _done_in_past_tense(text: str, asked: bool) -> Intent | None:
    """ "took out the bins, tick it off" -> complete the task "take out the bins". A task it
    does not match is reported as not found: nothing is added."""
    match = _PAST.match(text)
    if match is None or asked:  # "called mom?" asks, it does not say
        return None
    words = f"{v.PAST_TENSE[match['verb'].lower()]} {match['rest']}"
    return Intent("complete", ref=parse_ref(words.strip(_EDGE)))


def _repeating_first(text: str) -> Intent | None:
    """ "every monday at 9 water plants", "every other friday pay the cleaner": an add, read
    with the longest repetition phrase at the start that is one."""
    words = text.split()
    if not words or words[0].lower() not in _LEADS:
        return None
    for n in range(min(5, len(words) - 1), 0, -1):
        phrase = " ".join(words[:n])
        try:
            from_phrase(phrase)
        except AppError:
            continue
        rest = " ".join(words[n:])
        at = _AT_FIRST.match(rest)
        when = f" at {at['time']}" if at else ""
        rest = re.sub(r"^to\s+", "", at["rest"] if at else rest)
        intent = _add(f"{phrase}{when} to {rest}")
        return intent if intent.kind == "add" and intent.recurrence else None
    return None


def understand(message: str) -> Intent:
    raw = re.sub(r"\s+", " ", message.translate(_QUOTES)).strip()
    if _GREETING.match(raw):
        return Intent("greeting")
    text = normalize(raw)
    if not text:
        return Intent("help")
    if _OTHERS.search(text):
        return Intent("others")
    past = _done_in_past_tense(text, raw.endswith("?"))
    if past is not None:
        return past
    repeating = _repeating_first(text)
    if repeating is not None:
        return repeating
    # A misspelt verb first: "mrk task 3 as done" must not read as "<task 'mrk task 3 as'> done".
    respelt, unclear = _respell(text)
    if respelt != text:
        intent = _by_shape(respelt)
        if intent is not None:
            return replace(intent, guessed=True)
    intent = _by_shape(text)
    if intent is not None:
        return intent
    if unclear is not None:
        return unclear
    bare = parse_ref(text)
    if isinstance(bare, int):
        return Intent("unknown", ref=bare)  # "3", answering "which one do you mean?"
    return _list(text.lower()) or Intent("unknown")
