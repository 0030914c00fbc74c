"""FastAPI dependencies, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.errors import Forbidden, Unauthorized
from server.tasks import TaskService

bearer = HTTPBearer(auto_error=False, description="A JWT from Better Auth or `todo-chat token`")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def current_user(request: Request, credentials: Credentials) -> str:
    """The verified token's user; the request is counted against its route's budget once
    (see `server.ratelimit.ROUTES`)."""
    known: str | None = getattr(request.state, "user_id", None)
    if known is not None:
        return known
    limits = request.app.state.rate_limits
    try:
        if credentials is None:
            raise Unauthorized("missing bearer token")
        claims = await request.app.state.verifier.verify(credentials.credentials)
    except Unauthorized:
        # Requests without a valid token have their own, smaller budget per address.
        await limits.spend(request, "anonymous")
        raise
    user_id: str = claims["sub"]
    request.state.user_id = user_id
    await limits.spend_route(request)
    return user_id


CurrentUser = Annotated[str, Depends(current_user)]


async def path_user(user_id: str, current: CurrentUser) -> str:
    """For `/api/{user_id}/...` routes: the path must name the token's own user."""
    if user_id != current:
        raise Forbidden("the user id in the path does not match the token")
    return current


async def task_service(request: Request, credentials: Credentials) -> TaskService:
    # The user straight from the token, not through `CurrentUser`: each level of dependencies
    # FastAPI solves costs about 3 % of a task listing's CPU.
    user = await current_user(request, credentials)
    settings = request.app.state.settings
    return TaskService(
        request.app.state.db,
        user,
        settings.default_timezone,
        max_tasks=settings.max_tasks_per_user,
    )


TaskServiceDep = Annotated[TaskService, Depends(task_service)]
