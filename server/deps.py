"""FastAPI dependencies, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import Forbidden, Unauthorized
from server.services.tasks import TaskService

bearer = HTTPBearer(auto_error=False, description="A JWT from Better Auth or `todo-chat token`")


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    try:
        if credentials is None:
            raise Unauthorized("missing bearer token")
        claims = await request.app.state.verifier.verify(credentials.credentials)
    except Unauthorized:
        # Requests without a valid token have their own, smaller budget per address.
        await request.app.state.rate_limits.check_anonymous(request)
        raise
    user_id: str = claims["sub"]
    request.state.user_id = user_id
    return user_id


SessionDep = Annotated[AsyncSession, Depends(get_session)]
CurrentUser = Annotated[str, Depends(current_user)]


async def path_user(user_id: str, current: CurrentUser) -> str:
    """For `/api/{user_id}/...` routes: the path must name the token's own user."""
    if user_id != current:
        raise Forbidden("the user id in the path does not match the token")
    return current


async def task_service(session: SessionDep, user: CurrentUser) -> TaskService:
    return TaskService(session, user)


TaskServiceDep = Annotated[TaskService, Depends(task_service)]
