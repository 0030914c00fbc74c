"""REST endpoints for tasks. Thin: parsing and status codes here, rules in the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from server.api.params import TaskId, parse_query, query_parameters
from server.deps import TaskServiceDep
from server.models import (
    Occurrences,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TasksPublic,
    TaskUpdate,
)
from server.tasks import TaskQuery


def build_routers() -> tuple[APIRouter, APIRouter]:
    """The task routes, and the toggle route that only the /api/{user_id} paths have."""
    router = APIRouter(prefix="/tasks", tags=["tasks"])

    @router.post("", status_code=status.HTTP_201_CREATED)
    async def create_task(body: TaskCreate, tasks: TaskServiceDep) -> TaskPublic:
        return await tasks.create(body)

    @router.get("", openapi_extra=query_parameters(TaskQuery))
    async def list_tasks(request: Request, tasks: TaskServiceDep) -> TasksPublic:
        return await tasks.find(parse_query(request, TaskQuery))

    @router.get("/{task_id}")
    async def get_task(task_id: TaskId, tasks: TaskServiceDep) -> TaskPublic:
        return await tasks.get(task_id)

    @router.patch("/{task_id}")
    async def update_task(task_id: TaskId, body: TaskUpdate, tasks: TaskServiceDep) -> TaskPublic:
        return await tasks.update(task_id, body)

    @router.put("/{task_id}")
    async def replace_task(
        task_id: TaskId,
        body: TaskReplace,
        tasks: TaskServiceDep,
    ) -> TaskPublic:
        return await tasks.replace(task_id, body)

    @router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_task(
        task_id: TaskId,
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
    async def upcoming_occurrences(
        task_id: TaskId,
        tasks: TaskServiceDep,
        limit: Annotated[int, Query(ge=1, le=50, description="How many")] = 5,
    ) -> Occurrences:
        """The next due times of a repeating task after this occurrence (none for a one-off
        task). A series is listed as its open occurrence; this shows the ones after it."""
        return await tasks.upcoming(task_id, limit)

    @router.post("/{task_id}/complete")
    async def complete_task(task_id: TaskId, tasks: TaskServiceDep) -> TaskPublic:
        return await tasks.set_completed(task_id, True)

    @router.post("/{task_id}/reopen")
    async def reopen_task(task_id: TaskId, tasks: TaskServiceDep) -> TaskPublic:
        return await tasks.set_completed(task_id, False)

    # Only under /api/{user_id}: the toggle that Better Auth + Next.js todo frontends call.
    toggle = APIRouter(prefix="/tasks", tags=["tasks"])

    @toggle.patch("/{task_id}/complete")
    async def toggle_task(task_id: TaskId, tasks: TaskServiceDep) -> TaskPublic:
        return await tasks.set_completed(task_id, None)

    return router, toggle
