"""REST endpoints for tasks. Thin: parsing and status codes here, rules in the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import AwareDatetime

from server.deps import TaskServiceDep
from server.models import Priority, TaskCreate, TaskPublic, TaskReplace, TasksPublic, TaskUpdate
from server.services.tasks import MAX_PAGE, SORTS, Status, TaskQuery

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_task(body: TaskCreate, tasks: TaskServiceDep) -> TaskPublic:
    return await tasks.create(body)


@router.get("")
async def list_tasks(
    tasks: TaskServiceDep,
    status: Status = "all",
    q: Annotated[
        str | None, Query(max_length=200, description="Text in title or description")
    ] = None,
    priority: Priority | None = None,
    tag: Annotated[str | None, Query(max_length=40)] = None,
    due_before: AwareDatetime | None = None,
    due_after: AwareDatetime | None = None,
    sort: Annotated[str, Query(description=f"One of {', '.join(SORTS)}")] = "-created",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> TasksPublic:
    query = TaskQuery(
        status=status,
        q=q,
        priority=priority,
        tag=tag,
        due_before=due_before,
        due_after=due_after,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    return await tasks.find(query)


@router.get("/{task_id}")
async def get_task(task_id: int, tasks: TaskServiceDep) -> TaskPublic:
    return await tasks.get(task_id)


@router.patch("/{task_id}")
async def update_task(task_id: int, body: TaskUpdate, tasks: TaskServiceDep) -> TaskPublic:
    return await tasks.update(task_id, body)


@router.put("/{task_id}")
async def replace_task(task_id: int, body: TaskReplace, tasks: TaskServiceDep) -> TaskPublic:
    return await tasks.replace(task_id, body)


@router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_task(task_id: int, tasks: TaskServiceDep) -> Response:
    await tasks.delete(task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{task_id}/complete")
async def complete_task(task_id: int, tasks: TaskServiceDep) -> TaskPublic:
    return await tasks.set_completed(task_id, True)


@router.post("/{task_id}/reopen")
async def reopen_task(task_id: int, tasks: TaskServiceDep) -> TaskPublic:
    return await tasks.set_completed(task_id, False)


# Only under /api/{user_id}: the toggle that Better Auth + Next.js todo frontends call.
toggle_router = APIRouter(prefix="/tasks", tags=["tasks"])


@toggle_router.patch("/{task_id}/complete")
async def toggle_task(task_id: int, tasks: TaskServiceDep) -> TaskPublic:
    return await tasks.set_completed(task_id, None)
