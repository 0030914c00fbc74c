"""Conversation history for chat UIs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from server.api.params import ConversationId
from server.deps import CurrentUser
from server.models import ConversationsPublic, MessagesPublic
from server.services import cursors
from server.services.conversations import ConversationService


async def conversation_service(request: Request, user: CurrentUser) -> ConversationService:
    return ConversationService(request.app.state.db, user)


Conversations = Annotated[ConversationService, Depends(conversation_service)]
Limit = Annotated[int, Query(ge=1, le=100, description="Items per page")]
Cursor = Annotated[cursors.Cursor | None, Query(description="`next_cursor` of the previous page")]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/conversations", tags=["conversations"])

    @router.get("")
    async def list_conversations(
        conversations: Conversations,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> ConversationsPublic:
        """The user's conversations, most recently active first."""
        return await conversations.page(limit, cursor)

    @router.get("/{conversation_id}/messages")
    async def list_messages(
        conversation_id: ConversationId,
        conversations: Conversations,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> MessagesPublic:
        """A conversation's messages, oldest first, with the tool calls each answer made."""
        return await conversations.messages(conversation_id, limit, cursor)

    @router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_conversation(
        conversation_id: ConversationId, conversations: Conversations
    ) -> Response:
        await conversations.delete(conversation_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
