"""REST endpoints for tasks. Thin: parsing and status codes here, rules in the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from server.api.params import parse_query, query_parameters
from server.deps import TaskServiceDep
from server.models import (
    Occurrences,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TasksPublic,
    TaskUpdate,
)
from server.ratelimit import RateLimits
from server.services.tasks import TaskQuery


def build_routers(limits: RateLimits) -> tuple[APIRouter, APIRouter]:
    """The task routes, and the toggle route that only the /api/{user_id} paths have.

    `request` and `response` are in every signature because SlowAPI reads the one and writes
    the X-RateLimit-* headers on the other.
    """
    router = APIRouter(prefix="/tasks", tags=["tasks"])
    limited = limits.rest

    @router.post("", status_code=status.HTTP_201_CREATED)
    @limited
    async def create_task(
        request: Request, response: Response, body: TaskCreate, tasks: TaskServiceDep
    ) -> TaskPublic:
        return await tasks.create(body)

    @router.get("", openapi_extra=query_parameters(TaskQuery))
    @limited
    async def list_tasks(
        request: Request, response: Response, tasks: TaskServiceDep
    ) -> TasksPublic:
        return await tasks.find(parse_query(request, TaskQuery))

    @router.get("/{task_id}")
    @limited
    async def get_task(
        request: Request, response: Response, task_id: int, tasks: TaskServiceDep
    ) -> TaskPublic:
        return await tasks.get(task_id)

    @router.patch("/{task_id}")
    @limited
    async def update_task(
        request: Request, response: Response, task_id: int, body: TaskUpdate, tasks: TaskServiceDep
    ) -> TaskPublic:
        return await tasks.update(task_id, body)

    @router.put("/{task_id}")
    @limited
    async def replace_task(
        request: Request,
        response: Response,
        task_id: int,
        body: TaskReplace,
        tasks: TaskServiceDep,
    ) -> TaskPublic:
        return await tasks.replace(task_id, body)

    @router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
    @limited
    async def delete_task(
        request: Request,
        response: Response,
        task_id: int,
        tasks: TaskServiceDep,
        series: Annotated[
            bool,
            Query(
                description="Delete every occurrence of a repeating task. Without it, deleting "
                "the open occurrence skips it: the next one is made."
            ),
        ] = False,
    ) -> Response:
        await tasks.delete(task_id, whole_series=series)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/{task_id}/occurrences")
    @limited
    async def upcoming_occurrences(
        request: Request,
        response: Response,
        task_id: int,
        tasks: TaskServiceDep,
        limit: Annotated[int, Query(ge=1, le=50, description="How many")] = 5,
    ) -> Occurrences:
        """The next due times of a repeating task after this occurrence (none for a one-off
        task). A series is listed as its open occurrence; this shows the ones after it."""
        return await tasks.upcoming(task_id, limit)

    @router.post("/{task_id}/complete")
    @limited
    async def complete_task(
        request: Request, response: Response, task_id: int, tasks: TaskServiceDep
    ) -> TaskPublic:
        return await tasks.set_completed(task_id, True)

    @router.post("/{task_id}/reopen")
    @limited
    async def reopen_task(
        request: Request, response: Response, task_id: int, tasks: TaskServiceDep
    ) -> TaskPublic:
        return await tasks.set_completed(task_id, False)

    # Only under /api/{user_id}: the toggle that Better Auth + Next.js todo frontends call.
    toggle = APIRouter(prefix="/tasks", tags=["tasks"])

    @toggle.patch("/{task_id}/complete")
    @limited
    async def toggle_task(
        request: Request, response: Response, task_id: int, tasks: TaskServiceDep
    ) -> TaskPublic:
        return await tasks.set_completed(task_id, None)

    return router, toggle
