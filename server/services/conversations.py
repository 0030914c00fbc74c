"""Conversations and their messages, always scoped to their owner.

A chat turn is opened (the user's message stored, the history read) and closed (the reply
stored) in one short transaction each. Each change a turn's tool calls make is recorded
against its user message in the change's own transaction (`TurnRecord`, the table
`turn_effects`). Sending the same message again while it has no answer (its turn failed, or
the process or database died before the answer was stored) retries that turn: the retry
reads those records and does not make the same changes twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    update,
)

from server.database import Database, Transaction
from server.errors import LimitReached, NotFound
from server.models import (
    Conversation,
    ConversationPublic,
    ConversationsPublic,
    Message,
    MessagePublic,
    MessagesPublic,
    PortableJSON,
    TaskPublic,
    TurnEffect,
    UTCDateTime,
    id_in_range,
    utcnow,
)
from server.services import cursors

TITLE_LENGTH = 80
_conversations = Conversation.__table__  # type: ignore[attr-defined]
_messages = Message.__table__  # type: ignore[attr-defined]
_CONVERSATION_COLUMNS = [_conversations.c[name] for name in ConversationPublic.model_fields]
_MESSAGE_COLUMNS = [_messages.c[name] for name in MessagePublic.model_fields]


def title_from(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


@dataclass(frozen=True)
class TurnRecord:
    """One tool call of a chat turn, recorded with the change it makes (see `Effect` in
    `server.tasks.locking`): only against a message of the same owner."""

    message_id: int
    owner_id: str
    name: str
    arguments: dict[str, Any]
    result: Callable[[TaskPublic], dict[str, Any]]  # the tool's answer, made from the task

    async def record(self, tx: Transaction, task: TaskPublic) -> None:
        params = {
            "message_id": self.message_id,
            "owner": self.owner_id,
            "name": self.name,
            "arguments": self.arguments,
            "result": self.result(task),
            "now": utcnow(),
        }
        await tx.rows(_RECORD_EFFECT, params)


@dataclass(frozen=True)
class OpenTurn:
    conversation_id: int
    message_id: int
    history: list[tuple[str, str]]  # (role, content) before the message, oldest first
    done_before: list[dict[str, Any]]  # the changes an earlier attempt made, oldest first


class ConversationService:
    def __init__(self, db: Database, owner_id: str, max_conversations: int = 0) -> None:
        """`max_conversations`: how many the user may have (0: no cap)."""
        self.db = db
        self.owner_id = owner_id
        self.max_conversations = max_conversations

    def _params(self, conversation_id: int, **values: Any) -> dict[str, Any]:
        if not id_in_range(conversation_id):
            raise _not_found(conversation_id)
        return {"conversation_id": conversation_id, "owner": self.owner_id, **values}

    async def get(self, conversation_id: int) -> ConversationPublic:
        rows = await self.db.rows(_GET, self._params(conversation_id))
        if not rows:
            raise _not_found(conversation_id)
        return ConversationPublic.model_validate(rows[0])

    async def open_turn(
        self,
        conversation_id: int | None,
        message: str,
        window: int,
        answering: set[int] | None = None,
    ) -> OpenTurn:
        """Store the user's message (or take up its unanswered earlier attempt) and read the
        history.

        `answering`: the user messages whose turns this process is running now. The same text
        again while its turn runs is a message of its own (a double send), not a retry; the
        new message's id is added before the transaction commits, so a concurrent double send
        in this process always sees it.

        Bumping the conversation first takes its row lock on PostgreSQL, so turns that open
        on one conversation at the same time queue here for a moment instead of racing.
        """
        now = utcnow()
        async with self.db.transaction() as tx:
            if conversation_id is None:
                if self.max_conversations:
                    counted = await tx.one(_COUNT, {"owner": self.owner_id})
                    if counted is not None and counted["count"] >= self.max_conversations:
                        raise LimitReached("conversations", self.max_conversations)
                created = await tx.one(
                    _START, {"owner": self.owner_id, "title": title_from(message), "now": now}
                )
                assert created is not None
                conversation_id = int(created["id"])
                recent: list[dict[str, Any]] = []
            else:
                params = self._params(conversation_id, now=now)
                if await tx.one(_BUMP, params) is None:
                    raise _not_found(conversation_id)
                recent = await tx.rows(_RECENT, {**params, "limit": window + 1})
            done_before: list[dict[str, Any]] | None = None
            last = recent[0] if recent else None
            running = answering if answering is not None else set()
            if (
                last
                and last["role"] == "user"
                and last["content"] == message
                and (last["failed"] or last["id"] not in running)
            ):
                # The same message again, and it has no answer: a retry of that turn, whether
                # it failed or never finished (its process or the database went away).
                if last["failed"]:
                    await tx.one(_CLAIM, {"message_id": last["id"]})
                done_before = await _effects(tx, last["id"])
            if done_before is not None:
                message_id = last["id"]  # type: ignore[index]
                recent = recent[1:]
            else:
                added = await tx.one(
                    _APPEND,
                    {
                        "conversation_id": conversation_id,
                        "owner": self.owner_id,
                        "role": "user",
                        "content": message,
                        "tool_calls": [],
                        "reply_to": None,
                        "now": now,
                    },
                )
                assert added is not None
                message_id = added["id"]
            running.add(message_id)
        history = [(row["role"], row["content"]) for row in reversed(recent[:window])]
        return OpenTurn(conversation_id, message_id, history, done_before or [])

    async def close_turn(
        self, turn: OpenTurn, reply: str, tool_calls: Sequence[dict[str, Any]]
    ) -> bool:
        """Store the reply; False if the conversation was deleted during the turn."""
        now = utcnow()
        params = self._params(turn.conversation_id, now=now)
        async with self.db.transaction() as tx:
            if await tx.one(_BUMP, params) is None:
                return False
            await tx.rows(
                _APPEND,
                {
                    **params,
                    "role": "assistant",
                    "content": reply,
                    "tool_calls": list(tool_calls),
                    "reply_to": turn.message_id,
                },
            )
        return True

    async def fail_turn(self, turn: OpenTurn, done: Sequence[dict[str, Any]]) -> None:
        """Mark the turn's message as failed, with the tool calls that completed."""
        params = {"message_id": turn.message_id, "owner": self.owner_id, "tool_calls": list(done)}
        await self.db.rows(_FAIL, params)

    async def page(
        self, limit: int, cursor: str | None, oldest_first: bool = False
    ) -> ConversationsPublic:
        """Newest activity first (or last)."""
        params: dict[str, Any] = {"owner": self.owner_id, "limit": limit + 1}
        if cursor:
            params["last_updated"], params["last_id"] = cursors.decode(cursor, "conversations")
        statements = _PAGES[oldest_first]
        rows = await self.db.rows(statements[1] if cursor else statements[0], params)
        data = [ConversationPublic.model_validate(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = cursors.encode("conversations", data[-1].updated_at, data[-1].id)
        return ConversationsPublic(data=data, next_cursor=next_cursor)

    async def messages(
        self, conversation_id: int, limit: int, cursor: str | None
    ) -> MessagesPublic:
        """Oldest first, as a transcript reads."""
        params = self._params(conversation_id, limit=limit + 1, last_id=0)
        if cursor:
            _, params["last_id"] = cursors.decode(cursor, "messages")
        rows = await self.db.rows(_MESSAGES, params)
        if not rows and not await self.db.rows(_GET, params):
            raise _not_found(conversation_id)
        data = [MessagePublic.model_validate(row) for row in rows[:limit]]
        next_cursor = cursors.encode("messages", None, data[-1].id) if len(rows) > limit else None
        return MessagesPublic(data=data, next_cursor=next_cursor)

    async def reopen_turn(
        self, conversation_id: int, message_id: int, window: int
    ) -> tuple[OpenTurn, str]:
        """Answer an earlier user message again (ChatKit's retry): the history before it, and
        the tool calls its failed attempt or its earlier answer made, so that a change already
        made is replayed from the record, not made twice."""
        if not id_in_range(message_id):
            raise NotFound(f"Message {message_id} not found")
        params = self._params(conversation_id, message_id=message_id, now=utcnow())
        async with self.db.transaction() as tx:
            if await tx.one(_BUMP, params) is None:
                raise _not_found(conversation_id)
            asked = await tx.one(_ROW, params)
            if asked is None or asked["role"] != "user":
                raise NotFound(f"Message {message_id} not found")
            if asked["failed"]:
                await tx.one(_CLAIM, params)
            done = await _effects(tx, message_id)
            recent = await tx.rows(_BEFORE, {**params, "limit": window})
        history = [(row["role"], row["content"]) for row in reversed(recent)]
        turn = OpenTurn(conversation_id, message_id, history, done)
        return turn, str(asked["content"])

    async def rename(self, conversation_id: int, title: str) -> None:
        if not await self.db.rows(_RENAME, self._params(conversation_id, title=title)):
            raise _not_found(conversation_id)

    async def rows(
        self, conversation_id: int, after_id: int | None, limit: int, newest_first: bool
    ) -> list[dict[str, Any]]:
        """Messages with every column, in either order, after a message id (exclusive)."""
        params = self._params(conversation_id, limit=limit)
        if after_id is None:
            statement = _ROWS_DESC if newest_first else _ROWS_ASC
        else:
            params["last_id"] = after_id
            statement = _ROWS_DESC_AFTER if newest_first else _ROWS_ASC_AFTER
        return await self.db.rows(statement, params)

    async def row(self, conversation_id: int, message_id: int) -> dict[str, Any] | None:
        if not id_in_range(message_id):
            return None
        found = await self.db.rows(_ROW, self._params(conversation_id, message_id=message_id))
        return found[0] if found else None

    async def answer(self, conversation_id: int, reply_to: int) -> dict[str, Any] | None:
        """The answer to a user message, if it has one."""
        if not id_in_range(reply_to):
            return None
        found = await self.db.rows(_ANSWER, self._params(conversation_id, reply_to=reply_to))
        return found[0] if found else None

    async def delete_message(self, conversation_id: int, message_id: int) -> None:
        if id_in_range(message_id):
            params = self._params(conversation_id, message_id=message_id)
            await self.db.rows(_DELETE_MESSAGE, params)

    async def delete(self, conversation_id: int) -> None:
        """Delete a conversation; its messages go with it (ON DELETE CASCADE)."""
        if not await self.db.rows(_DELETE, self._params(conversation_id)):
            raise _not_found(conversation_id)


async def _effects(tx: Transaction, message_id: int) -> list[dict[str, Any]]:
    """The changes recorded for a message's turns, oldest first, as the tool journal keeps
    them ({"name", "arguments", "result"})."""
    return await tx.rows(_EFFECTS, {"message_id": message_id})


def _not_found(conversation_id: int) -> NotFound:
    return NotFound(f"Conversation {conversation_id} not found")


# ---------------------------------------------------------------- statements
# Built once; every one that names a conversation filters by its owner.

_OWNER = bindparam("owner", type_=String())
_CONVERSATION_ID = bindparam("conversation_id", type_=BigInteger())
_NOW = bindparam("now", type_=UTCDateTime())
_LIMIT = bindparam("limit", type_=Integer())
_OWNED = and_(_conversations.c.id == _CONVERSATION_ID, _conversations.c.owner_id == _OWNER)

_GET = select(*_CONVERSATION_COLUMNS).where(_OWNED)
_COUNT = select(func.count().label("count")).where(_conversations.c.owner_id == _OWNER)
_START = (
    insert(_conversations)
    .values(
        owner_id=_OWNER,
        title=bindparam("title", type_=String()),
        created_at=_NOW,
        updated_at=_NOW,
    )
    .returning(_conversations.c.id)
)
_BUMP = update(_conversations).where(_OWNED).values(updated_at=_NOW).returning(_conversations.c.id)
_DELETE = delete(_conversations).where(_OWNED).returning(_conversations.c.id)
_RECENT = (
    select(_messages.c.id, _messages.c.role, _messages.c.content, _messages.c.failed)
    .where(_messages.c.conversation_id == _CONVERSATION_ID)
    .order_by(_messages.c.id.desc())
    .limit(_LIMIT)
)
_APPEND = (
    insert(_messages)
    .values(
        conversation_id=_CONVERSATION_ID,
        owner_id=_OWNER,
        role=bindparam("role", type_=String()),
        content=bindparam("content", type_=Text()),
        tool_calls=bindparam("tool_calls", type_=PortableJSON),
        failed=False,
        reply_to=bindparam("reply_to", type_=BigInteger()),
        created_at=_NOW,
    )
    .returning(_messages.c.id)
)
_MESSAGE_ID = bindparam("message_id", type_=BigInteger())
_effects_table = TurnEffect.__table__  # type: ignore[attr-defined]
_EFFECTS = (
    select(_effects_table.c.name, _effects_table.c.arguments, _effects_table.c.result)
    .where(_effects_table.c.message_id == _MESSAGE_ID)
    .order_by(_effects_table.c.id)
)
# Only against a message of the same owner: the message id travels through the MCP layer.
_RECORD_EFFECT = insert(_effects_table).from_select(
    ["message_id", "owner_id", "name", "arguments", "result", "created_at"],
    select(
        _messages.c.id,
        _messages.c.owner_id,
        bindparam("name", type_=String()),
        bindparam("arguments", type_=PortableJSON),
        bindparam("result", type_=PortableJSON),
        _NOW,
    ).where(_messages.c.id == _MESSAGE_ID, _messages.c.owner_id == _OWNER),
)
_CLAIM = (
    update(_messages)
    .where(_messages.c.id == _MESSAGE_ID, _messages.c.failed == true())
    .values(failed=False, tool_calls=[])
    .returning(_messages.c.id)
)
_FAIL = (
    update(_messages)
    .where(_messages.c.id == _MESSAGE_ID, _messages.c.owner_id == _OWNER)
    .values(failed=True, tool_calls=bindparam("tool_calls", type_=PortableJSON))
)
_PAGE = (
    select(*_CONVERSATION_COLUMNS)
    .where(_conversations.c.owner_id == _OWNER)
    .order_by(_conversations.c.updated_at.desc(), _conversations.c.id.desc())
    .limit(_LIMIT)
)
_LAST_UPDATED = bindparam("last_updated", type_=UTCDateTime())
_LAST_ID = bindparam("last_id", type_=BigInteger())
_PAGE_AFTER = _PAGE.where(
    or_(
        _conversations.c.updated_at < _LAST_UPDATED,
        and_(_conversations.c.updated_at == _LAST_UPDATED, _conversations.c.id < _LAST_ID),
    )
)
_PAGE_OLDEST = (
    select(*_CONVERSATION_COLUMNS)
    .where(_conversations.c.owner_id == _OWNER)
    .order_by(_conversations.c.updated_at, _conversations.c.id)
    .limit(_LIMIT)
)
_PAGE_OLDEST_AFTER = _PAGE_OLDEST.where(
    or_(
        _conversations.c.updated_at > _LAST_UPDATED,
        and_(_conversations.c.updated_at == _LAST_UPDATED, _conversations.c.id > _LAST_ID),
    )
)
_PAGES = {False: (_PAGE, _PAGE_AFTER), True: (_PAGE_OLDEST, _PAGE_OLDEST_AFTER)}
_MESSAGES = (
    select(*_MESSAGE_COLUMNS)
    .where(
        _messages.c.conversation_id == _CONVERSATION_ID,
        _messages.c.id > _LAST_ID,
        select(_conversations.c.id).where(_OWNED).exists(),
    )
    .order_by(_messages.c.id)
    .limit(_LIMIT)
)

# For ChatKit, which reads a conversation's messages both ways and one by one.
_IN_OWNED = and_(
    _messages.c.conversation_id == _CONVERSATION_ID,
    select(_conversations.c.id).where(_OWNED).exists(),
)
_ALL_COLUMNS = [_messages.c[name] for name in (*MessagePublic.model_fields, "reply_to")]
_ROWS_ASC = select(*_ALL_COLUMNS).where(_IN_OWNED).order_by(_messages.c.id).limit(_LIMIT)
_ROWS_DESC = select(*_ALL_COLUMNS).where(_IN_OWNED).order_by(_messages.c.id.desc()).limit(_LIMIT)
_ROWS_ASC_AFTER = _ROWS_ASC.where(_messages.c.id > _LAST_ID)
_ROWS_DESC_AFTER = _ROWS_DESC.where(_messages.c.id < _LAST_ID)
_ROW = select(*_ALL_COLUMNS).where(_IN_OWNED, _messages.c.id == _MESSAGE_ID)
_ANSWER = (
    select(*_ALL_COLUMNS)
    .where(
        _IN_OWNED,
        _messages.c.role == "assistant",
        _messages.c.reply_to == bindparam("reply_to", type_=BigInteger()),
    )
    .order_by(_messages.c.id.desc())
    .limit(1)
)
_BEFORE = (
    select(_messages.c.role, _messages.c.content)
    .where(_IN_OWNED, _messages.c.id < _MESSAGE_ID)
    .order_by(_messages.c.id.desc())
    .limit(_LIMIT)
)
_DELETE_MESSAGE = delete(_messages).where(
    _messages.c.id == _MESSAGE_ID,
    _messages.c.conversation_id == _CONVERSATION_ID,
    _messages.c.owner_id == _OWNER,
)
_RENAME = (
    update(_conversations)
    .where(_OWNED)
    .values(title=bindparam("title", type_=String()))
    .returning(_conversations.c.id)
)
