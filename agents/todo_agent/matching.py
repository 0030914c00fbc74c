"""Which task a user means when they name it by words ("the plumber one", "buying groceries").

Strict on purpose: acting on a task the user did not name is the worst thing the offline model
can do. Every distinctive word of the reference must be in the title (allowing a typo in longer
words); words that start many titles ("buy", "pay", "call") and filler ("the", "task") never
make a match on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

from todo_agent.vocabulary import COMMON_VERBS, STOPWORDS

Task = dict[str, Any]


def _stem(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def words(text: str) -> list[str]:
    """The words that can tell tasks apart, stemmed: "Buying the groceries" -> buy, grocery."""
    found = re.findall(r"[a-z0-9]+", text.lower().replace("'s", ""))
    return [_stem(word) for word in found if word not in STOPWORDS]


def _same(wanted: str, title_word: str) -> bool:
    if wanted == title_word:
        return True
    # A slip in a longer word ("plumer", "grocries"); short words must be exact.
    return min(len(wanted), len(title_word)) >= 5 and fuzz.ratio(wanted, title_word) >= 80


def _contains(title: list[str], wanted: list[str]) -> bool:
    return all(any(_same(word, have) for have in title) for word in wanted)


@dataclass(frozen=True)
class Match:
    tasks: list[Task]  # the candidates, best first
    exact: bool  # one task whose words are exactly the reference's
    distinctive: bool  # decided by words other than common verbs

    @property
    def one(self) -> Task | None:
        return self.tasks[0] if len(self.tasks) == 1 else None


def find(reference: str, tasks: list[Task]) -> Match:
    wanted = words(reference)
    distinctive = [word for word in wanted if word not in COMMON_VERBS]
    if not wanted:
        return Match([], exact=False, distinctive=False)
    titles = [(task, words(task["title"])) for task in tasks]
    exact = [task for task, title in titles if set(title) == set(wanted)]
    if len(exact) == 1:
        return Match(exact, exact=True, distinctive=True)
    candidates = [
        (task, title) for task, title in titles if _contains(title, distinctive or wanted)
    ]
    # "call the vet" among "Call the vet" and "Email the vet": the verb narrows it further.
    fuller = [(task, title) for task, title in candidates if _contains(title, wanted)]
    chosen = sorted(fuller or candidates, key=lambda pair: pair[0]["id"])
    return Match([task for task, _ in chosen], exact=False, distinctive=bool(distinctive))
