"""Conversation history for chat UIs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from server.deps import CurrentUser, SessionDep
from server.models import ConversationsPublic, MessagesPublic
from server.services.conversations import ConversationService

router = APIRouter(prefix="/conversations", tags=["conversations"])


async def conversation_service(session: SessionDep, user: CurrentUser) -> ConversationService:
    return ConversationService(session, user)


Conversations = Annotated[ConversationService, Depends(conversation_service)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=500)]


@router.get("")
async def list_conversations(
    conversations: Conversations, limit: Limit = 20, cursor: Cursor = None
) -> ConversationsPublic:
    """The user's conversations, most recently active first."""
    return await conversations.page(limit, cursor)


@router.get("/{conversation_id}/messages")
async def list_messages(
    conversation_id: int, conversations: Conversations, limit: Limit = 50, cursor: Cursor = None
) -> MessagesPublic:
    """A conversation's messages, oldest first, with the tool calls each answer made."""
    return await conversations.messages(conversation_id, limit, cursor)


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(conversation_id: int, conversations: Conversations) -> Response:
    await conversations.delete(conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
