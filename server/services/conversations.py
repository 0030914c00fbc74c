"""Conversations and their messages, always scoped to their owner.

A chat turn is opened (the user's message stored, the history read) and closed (the reply
stored) in one short transaction each. A turn that fails is marked on its user message,
together with the tool calls that completed before the failure: sending the same message
again claims that record, so the retry knows what was already done and does not do it twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, true, update

from server.database import Database
from server.errors import NotFound
from server.models import (
    Conversation,
    ConversationPublic,
    ConversationsPublic,
    Message,
    MessagePublic,
    MessagesPublic,
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
class OpenTurn:
    conversation_id: int
    message_id: int
    history: list[tuple[str, str]]  # (role, content) before the message, oldest first
    done_before: list[dict[str, Any]]  # tool calls an earlier, failed attempt completed


class ConversationService:
    def __init__(self, db: Database, owner_id: str) -> None:
        self.db = db
        self.owner_id = owner_id

    def _owned(self, conversation_id: int) -> Any:
        if not id_in_range(conversation_id):
            raise _not_found(conversation_id)
        return and_(
            _conversations.c.id == conversation_id, _conversations.c.owner_id == self.owner_id
        )

    async def get(self, conversation_id: int) -> ConversationPublic:
        statement = select(*_CONVERSATION_COLUMNS).where(self._owned(conversation_id))
        async with self.db.connect() as connection:
            row = (await connection.execute(statement)).mappings().first()
        if row is None:
            raise _not_found(conversation_id)
        return ConversationPublic.model_validate(row)

    async def open_turn(self, conversation_id: int | None, message: str, window: int) -> OpenTurn:
        """Store the user's message (or claim its failed earlier attempt) and read the history.

        Bumping the conversation first takes its row lock on PostgreSQL, so turns that open
        on one conversation at the same time queue here for a moment instead of racing.
        """
        now = utcnow()
        async with self.db.begin() as connection:
            if conversation_id is None:
                conversation_id = await connection.scalar(
                    insert(_conversations)
                    .values(
                        owner_id=self.owner_id,
                        title=title_from(message),
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(_conversations.c.id)
                )
                recent = []
            else:
                bumped = await connection.scalar(
                    update(_conversations)
                    .where(self._owned(conversation_id))
                    .values(updated_at=now)
                    .returning(_conversations.c.id)
                )
                if bumped is None:
                    raise _not_found(conversation_id)
                recent = list(
                    (
                        await connection.execute(
                            select(
                                _messages.c.id,
                                _messages.c.role,
                                _messages.c.content,
                                _messages.c.failed,
                                _messages.c.tool_calls,
                            )
                            .where(_messages.c.conversation_id == conversation_id)
                            .order_by(_messages.c.id.desc())
                            .limit(window + 1)
                        )
                    ).all()
                )
            assert conversation_id is not None
            done_before: list[dict[str, Any]] | None = None
            last = recent[0] if recent else None
            if last is not None and last.role == "user" and last.content == message and last.failed:
                # The same message again after its turn failed: a retry of that turn. The
                # claim is conditional, so of two retries at once only one takes the record.
                claimed = await connection.scalar(
                    update(_messages)
                    .where(_messages.c.id == last.id, _messages.c.failed == true())
                    .values(failed=False, tool_calls=[])
                    .returning(_messages.c.id)
                )
                if claimed is not None:
                    done_before = list(last.tool_calls)
            if done_before is not None:
                message_id = last.id  # type: ignore[union-attr]
                recent = recent[1:]
            else:
                message_id = await connection.scalar(
                    insert(_messages)
                    .values(
                        conversation_id=conversation_id,
                        owner_id=self.owner_id,
                        role="user",
                        content=message,
                        tool_calls=[],
                        failed=False,
                        created_at=now,
                    )
                    .returning(_messages.c.id)
                )
        history = [(row.role, row.content) for row in reversed(recent[:window])]
        return OpenTurn(conversation_id, message_id, history, done_before or [])

    async def close_turn(
        self, turn: OpenTurn, reply: str, tool_calls: Sequence[dict[str, Any]]
    ) -> bool:
        """Store the reply; False if the conversation was deleted during the turn."""
        now = utcnow()
        async with self.db.begin() as connection:
            bumped = await connection.scalar(
                update(_conversations)
                .where(self._owned(turn.conversation_id))
                .values(updated_at=now)
                .returning(_conversations.c.id)
            )
            if bumped is None:
                return False
            await connection.execute(
                insert(_messages).values(
                    conversation_id=turn.conversation_id,
                    owner_id=self.owner_id,
                    role="assistant",
                    content=reply,
                    tool_calls=list(tool_calls),
                    failed=False,
                    created_at=now,
                )
            )
        return True

    async def fail_turn(self, turn: OpenTurn, done: Sequence[dict[str, Any]]) -> None:
        """Mark the turn's message as failed, with the tool calls that completed."""
        async with self.db.connect() as connection:
            await connection.execute(
                update(_messages)
                .where(_messages.c.id == turn.message_id, _messages.c.owner_id == self.owner_id)
                .values(failed=True, tool_calls=list(done))
            )

    async def page(self, limit: int, cursor: str | None) -> ConversationsPublic:
        """Newest activity first."""
        statement = select(*_CONVERSATION_COLUMNS).where(_conversations.c.owner_id == self.owner_id)
        if cursor:
            updated_at, last_id = cursors.decode(cursor, "conversations")
            statement = statement.where(
                or_(
                    _conversations.c.updated_at < updated_at,
                    and_(_conversations.c.updated_at == updated_at, _conversations.c.id < last_id),
                )
            )
        statement = statement.order_by(
            _conversations.c.updated_at.desc(), _conversations.c.id.desc()
        ).limit(limit + 1)
        async with self.db.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        data = [ConversationPublic.model_validate(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = cursors.encode("conversations", data[-1].updated_at, data[-1].id)
        return ConversationsPublic(data=data, next_cursor=next_cursor)

    async def messages(
        self, conversation_id: int, limit: int, cursor: str | None
    ) -> MessagesPublic:
        """Oldest first, as a transcript reads."""
        owned = self._owned(conversation_id)
        statement = select(*_MESSAGE_COLUMNS).where(
            _messages.c.conversation_id == conversation_id,
            select(_conversations.c.id).where(owned).exists(),
        )
        if cursor:
            _, last_id = cursors.decode(cursor, "messages")
            statement = statement.where(_messages.c.id > last_id)
        statement = statement.order_by(_messages.c.id).limit(limit + 1)
        async with self.db.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
            if not rows and not await connection.scalar(select(_conversations.c.id).where(owned)):
                raise _not_found(conversation_id)
        data = [MessagePublic.model_validate(row) for row in rows[:limit]]
        next_cursor = cursors.encode("messages", None, data[-1].id) if len(rows) > limit else None
        return MessagesPublic(data=data, next_cursor=next_cursor)

    async def delete(self, conversation_id: int) -> None:
        """Delete a conversation; its messages go with it (ON DELETE CASCADE)."""
        async with self.db.connect() as connection:
            deleted = await connection.scalar(
                delete(_conversations)
                .where(self._owned(conversation_id))
                .returning(_conversations.c.id)
            )
        if deleted is None:
            raise _not_found(conversation_id)


def _not_found(conversation_id: int) -> NotFound:
    return NotFound(f"Conversation {conversation_id} not found")
