"""Tables and the API schemas built on them. A table model is never a response schema."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
)
from pydantic import field_validator as validator
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from server.recurrence import SCHEMA_PATTERN, describe
from server.timezones import ZoneName

ID_MAX = 2**63 - 1  # the id columns are 64-bit: BIGINT on PostgreSQL, INTEGER on SQLite
TITLE_MAX = 500
DESCRIPTION_MAX = 10_000
TAG_MAX = 40
TAGS_MAX = 20
MESSAGE_MAX = 8_000
OWNER_MAX = 255

PortableJSON = JSON().with_variant(JSONB(), "postgresql")
# SQLite's INTEGER is 64-bit, and only an INTEGER primary key is its autoincrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """timestamptz on Postgres; on SQLite, which keeps no offset, UTC in and UTC out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return to_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


class Priority(StrEnum):
    none = "none"
    low = "low"
    medium = "medium"
    high = "high"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        return _PRIORITY_BY_RANK[rank]


_PRIORITY_RANK = {Priority.none: 0, Priority.low: 1, Priority.medium: 2, Priority.high: 3}
_PRIORITY_BY_RANK = {rank: priority for priority, rank in _PRIORITY_RANK.items()}


# ---------------------------------------------------------------- tables


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        # One user's listing, newest first, and the keyset cursor (created_at, id).
        Index("ix_tasks_owner_created", "owner_id", "created_at", "id"),
        Index("ix_tasks_owner_completed_created", "owner_id", "completed", "created_at", "id"),
        Index("ix_tasks_owner_due", "owner_id", "due", "id"),
        Index("ix_tasks_owner_priority", "owner_id", "priority", "id"),
        # One next occurrence per series and date, however many completes race.
        Index("ux_tasks_series_due", "series_id", "due", unique=True),
        # The reminders still to send, soonest first.
        Index("ix_tasks_reminders", "reminded_at", "remind_at"),
        # Never hand out a deleted task's id again (SQLite reuses the highest rowid otherwise).
        {"sqlite_autoincrement": True},
    )

    id: int | None = SQLField(default=None, sa_column=Column(BigId, primary_key=True))
    owner_id: str = SQLField(sa_column=Column(String(OWNER_MAX), nullable=False))
    title: str = SQLField(sa_column=Column(String(TITLE_MAX), nullable=False))
    description: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    completed: bool = SQLField(default=False, nullable=False)
    completed_at: datetime | None = SQLField(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    # Stored as a rank (0 none .. 3 high) so that sorting and keyset cursors are plain integers.
    priority: int = SQLField(default=0, sa_column=Column(SmallInteger, nullable=False))
    due: datetime | None = SQLField(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    tags: list[str] = SQLField(default_factory=list, sa_column=Column(PortableJSON, nullable=False))
    # A repeating task: each occurrence is a task of its series (series_id: the first one's id),
    # and completing one makes the next. The rule (RFC 5545 RRULE) is read in `timezone`, from
    # `series_start` (the first occurrence's due).
    recurrence: str | None = SQLField(default=None, sa_column=Column(Text, nullable=True))
    timezone: str | None = SQLField(default=None, sa_column=Column(String(64), nullable=True))
    series_id: int | None = SQLField(default=None, sa_column=Column(BigId, nullable=True))
    series_start: datetime | None = SQLField(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    # A reminder: at `remind_at`, or `remind_before` minutes before each occurrence's due.
    # Sent once: `reminded_at` is set with its event; `reminder_lease` is a sender's claim.
    remind_at: datetime | None = SQLField(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    remind_before: int | None = SQLField(default=None, sa_column=Column(Integer, nullable=True))
    reminded_at: datetime | None = SQLField(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    reminder_lease: datetime | None = SQLField(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    created_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class Event(SQLModel, table=True):
    """The outbox: every task change and due reminder, written in the change's transaction."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_owner_id", "owner_id", "id"),
        Index("ix_events_webhook", "delivered_at", "next_attempt_at", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = SQLField(default=None, sa_column=Column(BigId, primary_key=True))
    owner_id: str = SQLField(sa_column=Column(String(OWNER_MAX), nullable=False))
    type: str = SQLField(sa_column=Column(String(40), nullable=False))
    task_id: int | None = SQLField(default=None, sa_column=Column(BigId, nullable=True))
    data: dict[str, Any] = SQLField(
        default_factory=dict, sa_column=Column(PortableJSON, nullable=False)
    )
    created_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    # Webhook delivery: done, tries so far, when to try next, and a sender's claim.
    delivered_at: datetime | None = SQLField(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    attempts: int = SQLField(default=0, sa_column=Column(Integer, nullable=False, default=0))
    next_attempt_at: datetime | None = SQLField(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    lease_until: datetime | None = SQLField(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_owner_updated", "owner_id", "updated_at", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = SQLField(default=None, sa_column=Column(BigId, primary_key=True))
    owner_id: str = SQLField(sa_column=Column(String(OWNER_MAX), nullable=False))
    title: str = SQLField(sa_column=Column(String(200), nullable=False))
    created_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_id", "conversation_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = SQLField(default=None, sa_column=Column(BigId, primary_key=True))
    conversation_id: int = SQLField(
        sa_column=Column(BigId, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False)
    )
    owner_id: str = SQLField(sa_column=Column(String(OWNER_MAX), nullable=False))
    role: str = SQLField(sa_column=Column(String(16), nullable=False))
    content: str = SQLField(sa_column=Column(Text, nullable=False))
    tool_calls: list[dict[str, Any]] = SQLField(
        default_factory=list, sa_column=Column(PortableJSON, nullable=False)
    )
    # A user message whose turn failed; its tool_calls are what completed before the failure.
    failed: bool = SQLField(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    # On an answer: the user message it answers (ChatKit names a turn's items after it).
    reply_to: int | None = SQLField(default=None, sa_column=Column(BigId, nullable=True))
    created_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class TurnEffect(SQLModel, table=True):
    """A change that a chat turn's tool call made, written in the change's own transaction:
    a retry of the turn (its message sent again) finds it here instead of making it again."""

    __tablename__ = "turn_effects"
    __table_args__ = (
        Index("ix_turn_effects_message", "message_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = SQLField(default=None, sa_column=Column(BigId, primary_key=True))
    message_id: int = SQLField(
        sa_column=Column(BigId, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False)
    )
    owner_id: str = SQLField(sa_column=Column(String(OWNER_MAX), nullable=False))
    name: str = SQLField(sa_column=Column(String(64), nullable=False))
    arguments: dict[str, Any] = SQLField(sa_column=Column(PortableJSON, nullable=False))
    result: dict[str, Any] = SQLField(sa_column=Column(PortableJSON, nullable=False))
    created_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


# ---------------------------------------------------------------- input rules
# Every adapter (REST bodies, paths and queries, MCP tool arguments, chat requests) uses these
# types, so none can forget a rule. PostgreSQL text cannot hold NUL, and other control
# characters are never meant in a todo list: both are refused everywhere, so what SQLite
# accepts can always move to PostgreSQL.

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Characters that print nothing: a title made of them only is no title.
_INVISIBLE = re.compile(r"[\s\u00ad\u200b-\u200f\u2028-\u202f\u205f-\u206f\ufeff]+")


def id_in_range(value: int) -> bool:
    """Whether `value` can name a row at all; anything else is simply not found."""
    return 1 <= value <= ID_MAX


def _plain_text(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters such as NUL")
    return value


def _visible_text(value: str) -> str:
    if not _INVISIBLE.sub("", value):
        raise ValueError("must contain visible characters")
    return value


# The range a date may take: written in the years 1900 to 9998, at any offset (so in UTC a day
# either side). Python's own limits (years 1 and 9999) are where drivers map dates to
# -infinity/infinity and back to naive values, and no todo is due in year 1.
EARLIEST = datetime(1899, 12, 31, tzinfo=UTC)
LATEST = datetime(9999, 1, 2, tzinfo=UTC)
# The same as a pattern for the API's document: the year a date-time is written with.
YEAR_PATTERN = r"^(19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"


def _utc(value: datetime) -> datetime:
    message = "date must be in the years 1900 to 9998"
    local_year = value.year
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(message) from None
    if not (EARLIEST <= value <= LATEST and 1900 <= local_year <= 9998):
        raise ValueError(message)
    return value


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX),
    AfterValidator(_plain_text),
    AfterValidator(_visible_text),
]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=DESCRIPTION_MAX),
    AfterValidator(_plain_text),
]
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TAG_MAX),
    AfterValidator(_plain_text),
    AfterValidator(_visible_text),
]


def _normalize_tags(tags: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags:
        seen.setdefault(tag.lower(), None)
    return list(seen)


# The same rules as JSON Schema patterns, for the API's document (so that what it allows is
# accepted). Tool schemas leave them out: not every model's strict mode takes a lookahead.
PLAIN_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
VISIBLE_PATTERN = (
    r"^(?=[\s\S]*[^\s\u00ad\u200b-\u200f\u2028-\u202f\u205f-\u206f\ufeff])"
    r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
)
_PLAIN_DOC = Field(json_schema_extra={"pattern": PLAIN_PATTERN})
_VISIBLE_DOC = Field(json_schema_extra={"pattern": VISIBLE_PATTERN})
TitleText = Annotated[Title, _VISIBLE_DOC]
DescriptionText = Annotated[Description, _PLAIN_DOC]
TagText = Annotated[Tag, _VISIBLE_DOC]
SearchText = Annotated[str, StringConstraints(max_length=200), AfterValidator(_plain_text)]
QueryText = Annotated[SearchText, _PLAIN_DOC]
Tags = Annotated[list[TagText], Field(max_length=TAGS_MAX), AfterValidator(_normalize_tags)]
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _written_date(value: Any) -> Any:
    """Dates come as ISO 8601 text, as the schema says: pydantic would also take a number
    (or a numeric string) as seconds since 1970, which no client means."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be an ISO 8601 date and time with an offset, e.g. 2026-05-01T17:00Z")
    return value


# A timestamp with an offset, kept in UTC, between EARLIEST and LATEST: dates at the calendar's
# edges are a validation error, not an OverflowError.
Due = Annotated[
    AwareDatetime,
    BeforeValidator(_written_date),
    AfterValidator(_utc),
    Field(json_schema_extra={"pattern": YEAR_PATTERN}),
]
MessageText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MESSAGE_MAX),
    AfterValidator(_plain_text),
    AfterValidator(_visible_text),
    _VISIBLE_DOC,
]


RecurrenceText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_plain_text),
    Field(
        json_schema_extra={"pattern": SCHEMA_PATTERN},
        description="How the task repeats: an RRULE (FREQ=WEEKLY;BYDAY=MO) or a phrase such as "
        "'daily', 'every monday', 'every weekday', 'every 2 weeks', 'monthly on the 15th'. "
        "Needs a due date: the first occurrence.",
    ),
]
TaskZone = Annotated[
    ZoneName,
    Field(description="IANA timezone the repetition and reminders follow (default: the server's)"),
]
ReminderOffset = Annotated[
    int,
    Field(
        ge=0,
        le=525_600,
        description="Remind this many minutes before the due time (of each occurrence)",
    ),
]
ReminderTime = Annotated[Due, Field(description="Remind at this time (in the future)")]


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: TitleText
    description: DescriptionText | None = None
    priority: Priority = Priority.none
    due: Due | None = None
    tags: Tags = []
    recurrence: RecurrenceText | None = None
    timezone: TaskZone | None = None
    remind_at: ReminderTime | None = None
    remind_before: ReminderOffset | None = None


class TaskReplace(TaskCreate):
    """PUT body: every field is set; what is left out goes back to its default."""

    completed: bool = False


def _without_null(*names: str) -> Callable[[dict[str, Any]], None]:
    """Schema edit: these optional fields may be left out, but not sent as null."""

    def edit(schema: dict[str, Any]) -> None:
        for name in names:
            field = schema["properties"][name]
            kinds = [kind for kind in field.pop("anyOf", []) if kind.get("type") != "null"]
            field.pop("default", None)
            if len(kinds) == 1:
                field.update(kinds[0])
            elif kinds:
                field["anyOf"] = kinds

    return edit


class TaskUpdate(BaseModel):
    """PATCH body: only the fields sent change; `null` clears description and due."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_without_null("title", "priority", "tags", "completed", "timezone"),
    )

    title: TitleText | None = None
    description: DescriptionText | None = None
    priority: Priority | None = None
    due: Due | None = None
    tags: Tags | None = None
    completed: bool | None = None
    recurrence: RecurrenceText | None = Field(default=None, description="null: stop repeating")
    timezone: TaskZone | None = None
    remind_at: ReminderTime | None = Field(default=None, description="null: no reminder")
    remind_before: ReminderOffset | None = Field(default=None, description="null: no reminder")

    @validator("title", "priority", "tags", "completed", "timezone", mode="after")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Explicit null for a required column is an error, not "leave unchanged".
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str | None
    completed: bool
    completed_at: datetime | None
    priority: Priority
    due: datetime | None
    tags: list[str]
    recurrence: str | None = Field(description="RRULE of a repeating task")
    timezone: str | None = Field(description="Timezone its repetition and reminders follow")
    series_id: int | None = Field(description="A repeating task's series: its first task's id")
    remind_at: datetime | None = Field(description="When the reminder is due")
    remind_before: int | None = Field(description="Minutes before each due time to remind")
    reminded_at: datetime | None = Field(description="When the reminder was sent")
    created_at: datetime
    updated_at: datetime

    @validator("priority", mode="before")
    @classmethod
    def _from_rank(cls, value: Any) -> Any:
        return Priority.from_rank(value) if isinstance(value, int) else value

    @computed_field(description="How it repeats, in words")  # type: ignore[prop-decorator]
    @property
    def repeats(self) -> str | None:
        return describe(self.recurrence) if self.recurrence else None


class Occurrences(BaseModel):
    repeats: str | None = Field(description="How it repeats, in words; null for a one-off task")
    due: list[datetime] = Field(description="The next due times, soonest first")


class TasksPublic(BaseModel):
    data: list[TaskPublic]
    count: int | None = Field(
        description="With `count=true`, on the first page: how many tasks match, counted up to "
        "10,000. Null otherwise."
    )
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page")


# ---------------------------------------------------------------- chat schemas


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: MessageText
    conversation_id: Annotated[int, Field(ge=1, le=ID_MAX)] | None = None
    timezone: Annotated[
        ZoneName | None, Field(description="IANA timezone for phrases like 'tomorrow 5pm'")
    ] = None


class ToolCallRecord(BaseModel):
    name: str
    arguments: dict[str, Any]
    result: dict[str, Any] | None = Field(
        description="The tool's JSON result, or {'error': ...} when the tool refused"
    )


class ChatResponse(BaseModel):
    conversation_id: int
    response: str
    tool_calls: list[ToolCallRecord]


class ConversationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    created_at: datetime
    updated_at: datetime


class ConversationsPublic(BaseModel):
    data: list[ConversationPublic]
    next_cursor: str | None


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    role: str
    content: str
    tool_calls: list[ToolCallRecord] = Field(
        description="An answer's tool calls; on a failed user message, those that completed"
    )
    failed: bool = Field(
        description="A user message whose turn failed: sending the same text again retries it "
        "without repeating what its tool calls already did"
    )
    created_at: datetime


class MessagesPublic(BaseModel):
    data: list[MessagePublic]
    next_cursor: str | None


# ---------------------------------------------------------------- errors


class FieldError(BaseModel):
    field: str = Field(description="The input that was refused, e.g. `title` or `tags.0`")
    message: str


class ErrorBody(BaseModel):
    """Every error answer, whatever its status."""

    error: str = Field(description="A stable code, e.g. not_found, validation_error")
    detail: str = Field(description="What went wrong, in one sentence for a person")
    fields: list[FieldError] | None = Field(default=None, description="On 422: each bad input")
    request_id: str | None = Field(default=None, description="On 500: quote it in a report")
    conversation_id: int | None = Field(
        default=None, description="On a failed chat turn: where the message was saved"
    )
    limit: int | None = Field(default=None, description="On 409: the cap that was reached")
    limit_name: str | None = Field(default=None, description="On 409: what the cap counts")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all in the `ErrorBody` shape."""
    return {code: {"model": ErrorBody, "description": _ERROR_MEANINGS[code]} for code in codes}


_ERROR_MEANINGS = {
    400: "The body is not JSON, or nests deeper than 64 levels",
    401: "No valid bearer token",
    403: "The user id in the path is not the token's",
    404: "Not found, or not yours",
    405: "Method not allowed on this path; see Allow",
    409: "A per-user cap (tasks, conversations) is reached; `limit` says it",
    413: "Request body over 1 MiB",
    422: "Invalid input; `fields` names each one",
    429: "Rate limit exceeded; see Retry-After",
    500: "Unexpected server error; `request_id` is in the server log",
    502: "The model provider failed; the message is saved and a retry is safe",
    503: "The database is unavailable; see Retry-After",
    504: "The model did not answer in time; the message is saved and a retry is safe",
}
API_ERRORS = error_responses(400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 503)
