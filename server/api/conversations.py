"""Conversation history for chat UIs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from server.deps import CurrentUser
from server.models import ConversationsPublic, MessagesPublic
from server.ratelimit import RateLimits
from server.services.conversations import ConversationService


async def conversation_service(request: Request, user: CurrentUser) -> ConversationService:
    return ConversationService(request.app.state.db, user)


Conversations = Annotated[ConversationService, Depends(conversation_service)]
Limit = Annotated[int, Query(ge=1, le=100, description="Items per page")]
Cursor = Annotated[
    str | None, Query(max_length=500, description="`next_cursor` of the previous page")
]


def build_router(limits: RateLimits) -> APIRouter:
    router = APIRouter(prefix="/conversations", tags=["conversations"])

    @router.get("")
    @limits.rest
    async def list_conversations(
        request: Request,
        response: Response,
        conversations: Conversations,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> ConversationsPublic:
        """The user's conversations, most recently active first."""
        return await conversations.page(limit, cursor)

    @router.get("/{conversation_id}/messages")
    @limits.rest
    async def list_messages(
        request: Request,
        response: Response,
        conversation_id: int,
        conversations: Conversations,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> MessagesPublic:
        """A conversation's messages, oldest first, with the tool calls each answer made."""
        return await conversations.messages(conversation_id, limit, cursor)

    @router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
    @limits.rest
    async def delete_conversation(
        request: Request, response: Response, conversation_id: int, conversations: Conversations
    ) -> Response:
        await conversations.delete(conversation_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
