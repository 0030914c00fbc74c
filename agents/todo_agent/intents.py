"""What the offline model understands: common todo requests in plain English, by rules.

`understand(text)` turns one message into an `Intent`. It knows nothing of tasks or tools;
`offline.py` decides which tools to call for an intent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

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
    "unknown",
]

# A reference to a task: its id, the one the conversation just talked about, or words of its title.
IdRef = int
It = Literal["it"]
TaskRef = IdRef | It | str


@dataclass(frozen=True)
class Intent:
    kind: Kind
    ref: TaskRef | None = None
    title: str | None = None
    due: str | None = None
    priority: str | None = None
    status: Literal["pending", "completed", "all"] = "pending"
    query: str | None = None
    due_before: str | None = None

    def with_ref(self, ref: TaskRef) -> Intent:
        return replace(self, ref=ref)


ACTIONS = ("complete", "reopen", "delete", "update")
# What a rule recognises: an intent kind, or a shape that becomes an "update".
Rule = Literal[
    "add",
    "search",
    "complete",
    "reopen",
    "delete",
    "update",
    "help",
    "greeting",
    "move",
    "prioritize",
]

_WEEKDAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_TIME = r"(?:at\s+)?\d{1,2}(?::\d{2})?\s*(?:am|pm)|at\s+\d{1,2}(?::\d{2})?|at\s+noon|noon|midnight"
_PART = r"(?:\s+(?:morning|afternoon|evening|night))?"
_DAY = (
    rf"today{_PART}|tonight|tomorrow{_PART}|(?:next|this|on)\s+{_WEEKDAY}{_PART}|{_WEEKDAY}{_PART}"
    r"|next\s+week|next\s+month|in\s+(?:\d+|an?)\s+(?:minutes?|hours?|days?|weeks?|months?)"
    r"|(?:on\s+)?\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2})?"
    r"|(?:on\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?"
)
_WHEN = rf"(?:{_DAY})(?:\s+(?:{_TIME}))?|(?:{_TIME})(?:\s+(?:{_DAY}))?"
_DUE_AT_END = re.compile(rf"[\s,]+(?:(?:due|by|on|before|for)\s+)?(?P<due>{_WHEN})\s*$", re.I)
_ONLY_WHEN = re.compile(rf"^(?:(?:due|by|on|before|for)\s+)?(?P<due>{_WHEN})$", re.I)
_PRIORITY = re.compile(
    r"[\s,]*\b(?:with\s+|as\s+|at\s+)?(?:a\s+)?(?P<p>high|top|low|medium|normal|urgent|no)\s+priority\b"
    r"|[\s,]*\b(?P<u>urgent(?:ly)?|asap|important)\b",
    re.I,
)
_PRIORITY_WORDS = {
    "high": "high",
    "top": "high",
    "urgent": "high",
    "important": "high",
    "asap": "high",
    "urgently": "high",
    "medium": "medium",
    "normal": "medium",
    "low": "low",
    "no": "none",
    "none": "none",
}
_PARTS_OF_DAY = {"morning": "9am", "afternoon": "3pm", "evening": "7pm", "night": "9pm"}

_ID = re.compile(r"^(?:task|todo|item|number|no\.?)?\s*#?\s*(\d+)$", re.I)
_IT = re.compile(
    r"^(?:it|that|this|that one|this one|that task|this task|the task|the last one|the last task)$",
    re.I,
)


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().strip(".!?").strip()


_POLITE = re.compile(r"^(?:(?:can|could|would|will) you\s+)?(?:please\s+)?", re.I)


def normalize_due(phrase: str) -> str:
    """dateparser reads "tomorrow 9am" but not "tomorrow morning"."""
    for part, clock in _PARTS_OF_DAY.items():
        phrase = re.sub(rf"\b{part}\b", clock, phrase, flags=re.I)
    return re.sub(r"^(?:due|by|on|before|for)\s+", "", phrase.strip(), flags=re.I)


def split_due(text: str) -> tuple[str, str | None]:
    """'call mom tomorrow at 5pm' -> ('call mom', 'tomorrow at 5pm')."""
    match = _DUE_AT_END.search(text)
    if not match or match.start() == 0:
        return text, None
    return text[: match.start()].strip(" ,"), normalize_due(match["due"])


def split_priority(text: str) -> tuple[str, str | None]:
    match = _PRIORITY.search(text)
    if not match:
        return text, None
    word = (match["p"] or match["u"]).lower()
    rest = (text[: match.start()] + text[match.end() :]).strip(" ,")
    return rest, _PRIORITY_WORDS[word]


def parse_ref(text: str) -> TaskRef:
    text = _clean(text)
    number = _ID.match(text)
    if number:
        return int(number[1])
    if _IT.match(text):
        return "it"
    words = re.sub(r"^(?:the|my|a)\s+", "", text, flags=re.I)
    words = re.sub(r"\s+(?:task|todo|to-do|item|one|thing)$", "", words, flags=re.I)
    return words.strip()


def _title(text: str) -> str:
    text = re.sub(
        r"\s+(?:to|on|in)\s+(?:my|the)\s+(?:todo |to-do |task )?(?:list|tasks|todos)$",
        "",
        text,
        flags=re.I,
    )
    text = _clean(text)
    return text[:1].upper() + text[1:]


def _add(raw: str) -> Intent:
    rest, priority = split_priority(raw)
    rest, due = split_due(rest)
    return Intent("add", title=_title(rest), due=due, priority=priority)


def _update(ref: str, change: str) -> Intent:
    change = _clean(change)
    only_when = _ONLY_WHEN.match(change)
    if only_when:
        return Intent("update", ref=parse_ref(ref), due=normalize_due(only_when["due"]))
    rest, priority = split_priority(change)
    rest, due = split_due(rest)
    title = _title(rest) if rest else None
    return Intent("update", ref=parse_ref(ref), title=title, due=due, priority=priority)


# (pattern, builder) pairs, tried in order; each pattern sees the message in lower case.
_RULES: list[tuple[re.Pattern[str], Rule]] = [
    (re.compile(r"^(?:help|what can you do|how does this work|commands|what do you do)\b"), "help"),
    (
        re.compile(
            r"^(?:hi|hello|hey|thanks|thank you|good (?:morning|afternoon|evening))\b[\s!.]*$"
        ),
        "greeting",
    ),
    (
        re.compile(
            r"^(?:please\s+)?(?:mark|set|flag)\s+(?P<ref>.+?)\s+(?:as\s+)?"
            r"(?:not done|undone|not finished|incomplete|pending|open|to ?do)$"
        ),
        "reopen",
    ),
    (
        re.compile(
            r"^(?:please\s+)?(?:reopen|undo|uncheck|unmark|restore|un-complete)\s+(?P<ref>.+)$"
        ),
        "reopen",
    ),
    (
        re.compile(
            r"^(?:please\s+)?(?:mark|set|flag)\s+(?P<ref>.+?)\s+(?:as\s+)?"
            r"(?:done|complete|completed|finished)$"
        ),
        "complete",
    ),
    (
        re.compile(
            r"^(?:please\s+)?(?:complete|finish|check off|tick off|cross off|close)\s+(?P<ref>.+)$"
        ),
        "complete",
    ),
    (
        re.compile(
            r"^(?:i\s+)?(?:just\s+)?(?:finished|completed|did|have done|'ve done|am done with|"
            r"'m done with|done with)\s+(?P<ref>.+)$"
        ),
        "complete",
    ),
    (re.compile(r"^(?P<ref>.+?)\s+is\s+(?:done|finished|complete|completed)$"), "complete"),
    (
        re.compile(
            r"^(?:please\s+)?(?:delete|remove|drop|cancel|get rid of|erase|trash)\s+(?P<ref>.+)$"
        ),
        "delete",
    ),
    (
        re.compile(
            r"^(?:please\s+)?(?:move|reschedule|postpone|push|defer)\s+(?P<ref>.+?)\s+"
            r"(?:to|until|till)\s+(?P<when>.+)$"
        ),
        "move",
    ),
    (
        re.compile(
            r"^(?:please\s+)?(?:make|set|mark|flag)\s+(?P<ref>.+?)\s+(?:as\s+|to\s+)?(?:a\s+)?"
            r"(?P<prio>high|top|low|medium|normal|no)\s+priority$"
        ),
        "prioritize",
    ),
    (
        re.compile(
            r"^(?:please\s+)?(?:make|mark|flag)\s+(?P<ref>.+?)\s+(?:as\s+)?"
            r"(?P<prio>urgent|important)$"
        ),
        "prioritize",
    ),
    (
        re.compile(
            r"^(?:please\s+)?(?:set|change)\s+(?:the\s+)?priority\s+(?:of|for|on)\s+(?P<ref>.+?)"
            r"\s+to\s+(?P<prio>\w+)$"
        ),
        "prioritize",
    ),
    (re.compile(r"^(?P<ref>.+?)\s+is\s+due\s+(?P<when>.+)$"), "move"),
    (
        re.compile(
            r"^(?:please\s+)?(?:change|rename|update|edit)\s+(?P<ref>.+?)\s+(?:to|into)\s+"
            r"(?P<change>.+)$"
        ),
        "update",
    ),
    (
        re.compile(
            r"^(?:search|find|look for|look up|search for)(?:\s+(?:my\s+)?tasks?)?"
            r"(?:\s+(?:about|for|with|named|called|matching|containing))?\s+(?P<q>.+)$"
        ),
        "search",
    ),
    (
        re.compile(
            r"^(?:please\s+)?(?:add|create|new|jot down)\b(?:\s+(?:a|an))?"
            r"(?:\s+new)?(?:\s+(?:task|todo|to-do|item|reminder|entry))?"
            r"(?:\s+(?:to|called|named|for|saying|that says))?\s*:?\s+(?P<title>.+)$"
        ),
        "add",
    ),
    (
        re.compile(
            r"^(?:please\s+)?(?:remind me to|remind me about|remind me|don't let me forget to|"
            r"do not let me forget to|i need to|i have to|i must|i should|i've got to|"
            r"i got to|i gotta|need to|have to|gotta|todo:?|to do:?|to-do:?)\s+(?P<title>.+)$"
        ),
        "add",
    ),
]

_LIST_WORDS = re.compile(
    r"\b(?:tasks?|todos?|to-dos?|list|pending|left|remaining|open|outstanding|agenda|due|overdue|"
    r"what do i have|what's next|whats next|what should i do|to do)\b"
)
_COMPLETED_WORDS = re.compile(r"\b(?:completed|done|finished|accomplished|did i do|checked off)\b")
_ALL_WORDS = re.compile(r"\b(?:all|every|everything|whole)\b")


def _list(lowered: str) -> Intent | None:
    if not _LIST_WORDS.search(lowered) and not _COMPLETED_WORDS.search(lowered):
        return None
    if not re.search(
        r"\b(?:what|what's|whats|show|list|display|see|which|any|my|how many|"
        r"give me|tell me|view|pending|overdue|due|todo|tasks?)\b",
        lowered,
    ):
        return None
    if "overdue" in lowered:
        return Intent("list", status="pending", due_before="now")
    due = re.search(r"\bdue\s+(today|tomorrow|this week|next week)\b", lowered)
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


def understand(message: str) -> Intent:
    text = _POLITE.sub("", _clean(message))
    if not text:
        return Intent("help")
    lowered = text.lower().replace("’", "'")
    for pattern, kind in _RULES:
        match = pattern.match(lowered)
        if not match:
            continue
        # Titles keep the user's capitalisation: cut the same span from the original text.
        groups = {
            name: text[match.start(name) : match.end(name)]
            for name in match.groupdict()
            if match[name] is not None
        }
        if kind == "help" or kind == "greeting":
            return Intent(kind)
        if kind == "complete" or kind == "reopen" or kind == "delete":
            return Intent(kind, ref=parse_ref(groups["ref"]))
        if kind == "move":
            return Intent("update", ref=parse_ref(groups["ref"]), due=normalize_due(groups["when"]))
        if kind == "prioritize":
            priority = _PRIORITY_WORDS.get(groups["prio"].lower())
            if priority is None:
                return Intent("unknown")
            return Intent("update", ref=parse_ref(groups["ref"]), priority=priority)
        if kind == "update":
            return _update(groups["ref"], groups["change"])
        if kind == "search":
            return Intent("search", query=_clean(groups["q"]), status="all")
        if kind == "add":
            return _add(groups["title"])
    listed = _list(lowered)
    if listed is not None:
        return listed
    bare = parse_ref(text)
    if isinstance(bare, int) and _ID.match(text):
        return Intent("unknown", ref=bare)
    return Intent("unknown")
