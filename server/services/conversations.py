"""Conversations and their messages, always scoped to their owner."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import NotFound
from server.models import (
    Conversation,
    ConversationPublic,
    ConversationsPublic,
    Message,
    MessagePublic,
    MessagesPublic,
    utcnow,
)
from server.services import cursors

TITLE_LENGTH = 80
_conversations = Conversation.__table__  # type: ignore[attr-defined]
_messages = Message.__table__  # type: ignore[attr-defined]


def title_from(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


class ConversationService:
    def __init__(self, session: AsyncSession, owner_id: str) -> None:
        self.session = session
        self.owner_id = owner_id

    async def get(self, conversation_id: int) -> Conversation:
        conversation = await self.session.scalar(
            select(Conversation).where(
                _conversations.c.id == conversation_id,
                _conversations.c.owner_id == self.owner_id,
            )
        )
        if conversation is None:
            raise NotFound(f"Conversation {conversation_id} not found")
        return conversation

    async def start(self, first_message: str) -> Conversation:
        conversation = Conversation(owner_id=self.owner_id, title=title_from(first_message))
        self.session.add(conversation)
        await self.session.flush()
        return conversation

    async def recent(self, conversation: Conversation, limit: int) -> list[Message]:
        """The last `limit` messages, oldest first: the agent's bounded window of history."""
        if limit <= 0:
            return []
        rows = await self.session.scalars(
            select(Message)
            .where(_messages.c.conversation_id == conversation.id)
            .order_by(_messages.c.id.desc())
            .limit(limit)
        )
        return list(reversed(rows.all()))

    async def append(
        self,
        conversation_id: int,
        role: str,
        content: str,
        tool_calls: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """Add a message and bump the conversation; False if it is gone (deleted meanwhile)."""
        now = utcnow()
        bumped = await self.session.scalar(
            update(Conversation)
            .where(
                _conversations.c.id == conversation_id,
                _conversations.c.owner_id == self.owner_id,
            )
            .values(updated_at=now)
            .returning(_conversations.c.id)
        )
        if bumped is None:
            return False
        await self.session.execute(
            insert(Message).values(
                conversation_id=conversation_id,
                owner_id=self.owner_id,
                role=role,
                content=content,
                tool_calls=list(tool_calls),
                created_at=now,
            )
        )
        return True

    async def page(self, limit: int, cursor: str | None) -> ConversationsPublic:
        """Newest activity first."""
        statement = select(_conversations).where(_conversations.c.owner_id == self.owner_id)
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
        rows = (await self.session.execute(statement)).mappings().all()
        data = [ConversationPublic.model_validate(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = cursors.encode("conversations", data[-1].updated_at, data[-1].id)
        return ConversationsPublic(data=data, next_cursor=next_cursor)

    async def messages(
        self, conversation_id: int, limit: int, cursor: str | None
    ) -> MessagesPublic:
        """Oldest first, as a transcript reads."""
        await self.get(conversation_id)
        statement = select(_messages).where(_messages.c.conversation_id == conversation_id)
        if cursor:
            _, last_id = cursors.decode(cursor, "messages")
            statement = statement.where(_messages.c.id > last_id)
        statement = statement.order_by(_messages.c.id).limit(limit + 1)
        rows = (await self.session.execute(statement)).mappings().all()
        data = [MessagePublic.model_validate(row) for row in rows[:limit]]
        next_cursor = cursors.encode("messages", None, data[-1].id) if len(rows) > limit else None
        return MessagesPublic(data=data, next_cursor=next_cursor)

    async def delete(self, conversation_id: int) -> None:
        await self.get(conversation_id)
        await self.session.execute(
            delete(Message).where(_messages.c.conversation_id == conversation_id)
        )
        await self.session.execute(
            delete(Conversation).where(
                _conversations.c.id == conversation_id, _conversations.c.owner_id == self.owner_id
            )
        )
        await self.session.commit()
