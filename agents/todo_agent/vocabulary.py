"""The offline model's vocabulary, as data. Adding a phrasing is one entry here.

`intents.py` builds its patterns from these tables; every phrase is lower case, and several
words are fine ("get rid of"). Longer phrases win over their prefixes.
"""

from __future__ import annotations

# Said around a request without changing it. Stripped from the start and the end, repeatedly,
# as long as something is left ("hi" alone stays a greeting).
LEAD_INS = (
    "ok", "okay", "ok so", "great", "cool", "nice", "perfect", "good", "alright", "all right",
    "right", "now", "then", "and", "also", "so", "well", "actually", "hmm", "hm", "um", "uh",
    "oh", "oops", "sorry", "hey", "hi", "hello", "yo", "please", "pls", "plz", "kindly",
    "can you", "could you", "would you", "will you", "can u", "could u", "would you mind",
    "i want you to", "i'd like you to", "i would like you to", "go ahead and", "quickly",
    "can you please", "could you please", "help me", "let's", "lets",
)  # fmt: skip
TRAILERS = (
    "please", "pls", "plz", "thanks", "thank you", "thx", "ty", "for me", "now", "again",
    "too", "as well", "if you can", "if you could", "when you can", "right now", "ok", "okay",
)  # fmt: skip

# The verbs that start a request, by the action they ask for.
ACTION_VERBS: dict[str, tuple[str, ...]] = {
    "add": (
        "add", "create", "new", "put", "jot down", "note down", "write down", "note", "insert",
        "schedule", "make a note to", "remember to", "remind me to", "remind me about",
        "remind me", "don't let me forget to", "do not let me forget to", "don't forget to",
        "i need to", "i have to", "i must", "i should", "i've got to", "i got to", "i gotta",
        "need to", "have to", "gotta", "todo", "to do", "to-do", "save",
    ),
    "complete": (
        "complete", "finish", "check off", "tick off", "cross off", "close", "mark off",
        "done with", "i'm done with", "i am done with", "i finished", "i completed", "i did",
        "i've done", "i have done", "i've finished", "i have finished", "i've completed",
        "finished", "completed", "i'm finished with", "i just finished", "i just did",
        "i just completed", "tick", "knock out", "knocked out",
    ),
    "reopen": (
        "reopen", "re-open", "undo", "uncheck", "unmark", "untick", "restore", "un-complete",
        "uncomplete", "unfinish", "bring back", "resume", "revive",
    ),
    "delete": (
        "delete", "remove", "drop", "cancel", "get rid of", "erase", "trash", "scratch", "bin",
        "ditch", "discard", "nuke", "forget about", "forget", "take off", "kill", "strike",
        "strike out", "cross out",
    ),
    "move": (
        "move", "reschedule", "postpone", "push", "push back", "defer", "delay", "bump",
        "shift", "change the date of", "put off",
    ),
    "rename": ("rename", "retitle", "reword"),
    "search": (
        "search", "search for", "find", "look for", "look up", "search my tasks for",
        "find my tasks about", "find tasks about", "find tasks with", "any tasks about",
        "do i have anything about", "is there a task about", "search tasks for",
    ),
}  # fmt: skip

# Verbs that set a task's state or field: "mark task 3 as done", "make it high priority".
STATE_VERBS = ("mark", "set", "flag", "make", "turn", "put", "label")
STATES: dict[str, str] = {
    "done": "complete", "complete": "complete", "completed": "complete",
    "finished": "complete", "checked": "complete", "checked off": "complete",
    "ticked": "complete", "ticked off": "complete", "resolved": "complete",
    "not done": "reopen", "undone": "reopen", "incomplete": "reopen", "not finished": "reopen",
    "unfinished": "reopen", "not complete": "reopen", "not completed": "reopen",
    "uncompleted": "reopen", "pending": "reopen", "open": "reopen", "todo": "reopen",
    "to do": "reopen", "active": "reopen", "unchecked": "reopen", "not checked": "reopen",
}  # fmt: skip

# "<task> is done", "task 3 done".
DONE_WORDS = ("done", "finished", "complete", "completed", "sorted", "taken care of", "handled")
# "<task> can go": no longer wanted.
GONE_WORDS = ("can go", "is not needed", "isn't needed", "is no longer needed", "can be deleted",
              "can be removed", "is cancelled", "is canceled", "is off")  # fmt: skip

# Field edits: "change the due date of task 3 to friday", "set task 3's priority to low".
EDIT_VERBS = ("change", "set", "update", "edit", "make", "modify", "switch", "adjust", "move")
FIELDS: dict[str, tuple[str, ...]] = {
    "due": ("due date", "due", "deadline", "date", "due time", "time", "day"),
    "title": ("title", "name", "text", "wording"),
    "priority": ("priority", "importance", "urgency"),
    "description": ("description", "notes", "note", "details", "detail", "desc"),
    "tags": ("tags", "tag", "labels", "label"),
}  # fmt: skip

PRIORITIES: dict[str, str] = {
    "high": "high", "top": "high", "urgent": "high", "important": "high", "asap": "high",
    "urgently": "high", "critical": "high", "medium": "medium", "normal": "medium",
    "mid": "medium", "low": "low", "no": "none", "none": "none",
}  # fmt: skip

# Words of a task reference that say nothing about which task: never a match on their own.
STOPWORDS = frozenset((
    "the", "a", "an", "my", "to", "of", "for", "and", "with", "on", "at", "in", "task", "tasks",
    "todo", "todos", "to-do", "item", "items", "about", "that", "this", "one", "thing", "it",
    "its", "from", "off", "list",
))  # fmt: skip
# Verbs that start many titles ("Buy oat milk", "Pay the bills"): a reference made only of
# these ("the call task") never picks a task by itself; the model asks.
COMMON_VERBS = frozenset((
    "buy", "pay", "call", "get", "make", "do", "go", "take", "send", "write", "email", "clean",
    "fix", "pick", "see", "meet", "read", "finish", "start", "bring", "ask", "tell", "text",
    "visit", "find", "prepare", "submit", "update", "cook", "wash", "sort", "put", "set", "look",
    "water",
))  # fmt: skip

# Words that name a task by number: "task 3", "tsk 3" (a typo), "#3".
ID_WORDS = ("task", "todo", "item", "number", "no", "ticket")

# Replies to a question the assistant asked.
YES = ("yes", "ok", "okay", "sure thing", "yes do it", "yes delete it", "y", "yep", "yeah", "yup", "sure", "ok do it", "do it", "go ahead", "confirm",
       "correct", "right", "that one", "yes please", "please do", "yes that one", "affirmative")  # fmt: skip
NO = ("no", "n", "nope", "nah", "never mind", "nevermind", "don't", "do not", "stop",
      "leave it", "forget it", "no thanks", "cancel that")  # fmt: skip
ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4,
            "4th": 4, "fifth": 5, "5th": 5, "last": -1}  # fmt: skip

# Bulk references: the model changes one task at a time.
EVERYTHING = ("all", "everything", "all of them", "all tasks", "all my tasks", "every task",
              "all my todos", "them all", "the whole list", "my whole list", "all the tasks")  # fmt: skip

# "took out the bins": a past-tense sentence about a task says it is done. The verb's present
# form, so that the words can be matched against the task's title ("Take out the bins").
# Only verbs whose past form is not also a present one (not "read", "put", "set", "cut").
PAST_TENSE: dict[str, str] = {
    "took": "take", "paid": "pay", "bought": "buy", "called": "call", "rang": "call",
    "phoned": "call", "went": "go", "made": "make", "sent": "send", "wrote": "write",
    "cleaned": "clean", "washed": "wash", "emailed": "email", "fixed": "fix", "booked": "book",
    "picked": "pick", "watered": "water", "walked": "walk", "fed": "feed", "got": "get",
    "returned": "return", "renewed": "renew", "submitted": "submit", "cancelled": "cancel",
    "canceled": "cancel", "ordered": "order", "posted": "post", "mailed": "mail",
    "replied": "reply", "answered": "answer", "visited": "visit", "mowed": "mow",
    "vacuumed": "vacuum", "tidied": "tidy", "packed": "pack", "filed": "file",
    "signed": "sign", "scheduled": "schedule", "updated": "update", "printed": "print",
    "collected": "collect", "dropped off": "drop off", "brought": "bring", "gave": "give",
    "sold": "sell", "swept": "sweep", "cooked": "cook", "baked": "bake", "texted": "text",
}  # fmt: skip
# What may follow such a sentence: "took out the bins, tick it off".
PAST_TENSE_ENDINGS = (
    "tick it off", "check it off", "cross it off", "mark it done", "mark it as done",
    "mark it off", "mark that done", "so tick it off", "so mark it done", "done", "all done",
)  # fmt: skip
