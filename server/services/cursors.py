"""Opaque keyset cursors: the last row's sort value and id, tied to the order they came from."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from server.errors import InvalidInput
from server.models import ID_MAX, id_in_range

_JSON = json.JSONEncoder(separators=(",", ":"))  # json.dumps makes one per call with these


def encode(order: str, value: Any, last_id: int) -> str:
    if isinstance(value, Enum):
        value = getattr(value, "rank", value.value)
    if isinstance(value, datetime):
        value = {"dt": value.isoformat()}
    raw = _JSON.encode([order, value, last_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, order: str) -> tuple[Any, int]:
    """(value, id) of a cursor made by `encode` for the same `order`; 422 otherwise.

    A cursor comes back from the client, so everything in it is checked as input: an id the
    table can hold, an aware datetime or a small integer, nothing else.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_order, value, last_id = json.loads(raw)
        if type(last_id) is not int or not id_in_range(last_id):
            raise ValueError("id")
        if isinstance(value, dict):
            value = datetime.fromisoformat(value["dt"])
            if value.tzinfo is None:
                raise ValueError("naive datetime")
            value.astimezone(UTC)  # OverflowError at the calendar's edges
        elif value is not None and (type(value) is not int or not 0 <= value <= ID_MAX):
            raise ValueError("value")
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error) as exc:
        raise InvalidInput("cursor is not valid: start again without it") from exc
    if cursor_order != order:
        raise InvalidInput("cursor belongs to another sort order: start again without it")
    return value, last_id
