"""Keyset cursors: the last row's sort value and id, as `<value>_<id>`.

Every string of that form is a position in any order, so a cursor that the schema allows is
never refused: the value is read as a number for the order it is used with (microseconds
since 1970 in UTC for a time, the rank for a priority; empty for a missing due date), and a
value or id beyond what the table can hold is the position past everything on that side.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from server.errors import InvalidInput
from server.models import ID_MAX

PATTERN = r"^(-?[0-9]{1,20})?_[0-9]{1,20}$"
_FORM = re.compile(PATTERN)
Cursor = Annotated[
    str,
    StringConstraints(pattern=PATTERN, max_length=42),
    Field(description="`next_cursor` of the previous page"),
]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Just outside the dates a task can have (models.EARLIEST, LATEST): before or after them all.
_FIRST = datetime(1899, 12, 30, tzinfo=UTC)
_LAST = datetime(9999, 1, 3, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LOW, _HIGH = ((when - _EPOCH) // _MICROSECOND for when in (_FIRST, _LAST))
# The orders whose cursor value is a rank, not a time; and the one with no value at all.
_RANKED = frozenset({"priority", "-priority"})
_RANKS = (-1, 4)  # past the lowest and highest priority


def encode(order: str, value: Any, last_id: int) -> str:
    if isinstance(value, Enum):
        value = getattr(value, "rank", value.value)
    if isinstance(value, datetime):
        value = (value - _EPOCH) // _MICROSECOND
    return f"{'' if value is None else value}_{last_id}"


def decode(cursor: str, order: str) -> tuple[Any, int]:
    """(value, id) of a cursor for `order`: a datetime, a rank or None, and an id."""
    form = _FORM.match(cursor)
    if form is None:
        raise InvalidInput("cursor is not valid: start again without it")
    raw_value, raw_id = cursor.split("_")
    last_id = min(int(raw_id), ID_MAX)
    if not raw_value or order == "messages":
        return None, last_id
    number = int(raw_value)
    if order in _RANKED:
        return max(_RANKS[0], min(number, _RANKS[1])), last_id
    return _EPOCH + max(_LOW, min(number, _HIGH)) * _MICROSECOND, last_id
