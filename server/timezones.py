"""Time zones: IANA names only, one rule for every way a zone comes in.

REST bodies, the chat request, ChatKit's X-Timezone header, MCP tool arguments and the
DEFAULT_TIMEZONE setting all pass through `zone_name`. What is not a zone of the IANA
database is refused by name: a folder of it ("Europe", "America/Argentina"), tzdata's
placeholder "Factory", a file path, an overlong string. `ZoneInfo` itself would raise
`IsADirectoryError` or `ValueError` for those, deep inside a request.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema

ZONE_NAME_MAX = 64
# "Factory" is tzdata's placeholder zone, not a place: no date library handles it.
ZONE_NAMES = frozenset(available_timezones() - {"Factory"} | {"UTC"})
_DESCRIPTION = "IANA time zone, e.g. Europe/Paris"


def zone_name(name: str) -> str:
    """`name` if it is an IANA zone; ValueError saying what is allowed otherwise."""
    if name not in ZONE_NAMES:
        shown = name if len(name) <= ZONE_NAME_MAX else name[:ZONE_NAME_MAX] + "…"
        raise ValueError(f"unknown timezone {shown!r}: use an IANA name such as Europe/Paris")
    return name


def zone(name: str) -> ZoneInfo:
    """The named IANA zone; ValueError for anything else."""
    return ZoneInfo(zone_name(name))


_Checked = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=ZONE_NAME_MAX),
    AfterValidator(zone_name),
]
# For the API's schemas: the document lists every name it accepts.
ZoneName = Annotated[
    _Checked,
    WithJsonSchema({"type": "string", "enum": sorted(ZONE_NAMES), "description": _DESCRIPTION}),
]
# For MCP tool arguments: the same rule, without six hundred names in every tool's schema
# (a model reads them all on every turn).
ZoneArgument = Annotated[_Checked, Field(description=_DESCRIPTION)]
