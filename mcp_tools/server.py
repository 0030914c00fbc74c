"""The task tools, served over MCP: streamable HTTP, stdio, and in-process for the chat agent.

The tools are defined once. What differs between transports is only how a call finds its
user (see `mcp_tools.identity`): never from an argument, so no tool has a user parameter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mcp_tools.dates import parse_due
from mcp_tools.identity import TIMEZONE_META_KEY, UserResolver
from server.errors import AppError
from server.models import TITLE_MAX, Priority, TaskCreate, TaskPublic, TaskUpdate
from server.services.tasks import TaskQuery, TaskService
from server.settings import Settings

INSTRUCTIONS = """\
Manages the signed-in user's todo list. Every tool acts on that user's tasks only.

- Find tasks with list_tasks (pending tasks by default; filter by text, priority, tag or due
  date). Each task has a numeric id; the other tools take that id.
- When the user names a task by its title ("the milk task"), call list_tasks with `query`
  first. If several tasks match, ask which one before you change or delete anything.
- add_task creates a task; complete_task / reopen_task mark it done or not done;
  update_task changes fields; delete_task removes it for good; get_task shows one in full.
- Due dates accept ISO timestamps or phrases such as "tomorrow 5pm", "next friday",
  "in 3 days", read in the user's timezone.
"""

TaskId = Annotated[int, Field(description="The task's numeric id, as shown by list_tasks", ge=1)]
Timezone = Annotated[
    str | None,
    Field(
        description="IANA timezone for reading due phrases, e.g. Europe/Paris. Default: the user's"
    ),
]
DueText = Annotated[
    str | None,
    Field(
        description="When it is due: ISO date/time or a phrase like 'tomorrow 5pm', "
        "'next friday', 'in 3 days'",
        max_length=100,
    ),
]
TagList = Annotated[
    list[str] | None, Field(description="Short labels such as 'home' or 'work'", max_length=20)
]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CHANGE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


class TaskItem(BaseModel):
    """A task as listed: enough to name it and decide what to do next."""

    id: int
    title: str
    completed: bool
    priority: Priority
    due: datetime | None
    tags: list[str]


class TaskList(BaseModel):
    tasks: list[TaskItem]
    count: int = Field(description="How many tasks match, over all pages")
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page")


class TaskChange(BaseModel):
    task_id: int
    status: Literal["created", "completed", "reopened", "updated", "deleted"]
    title: str
    task: TaskPublic | None = Field(description="The task as it is now; null once deleted")


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "input"
        parts.append(f"{field}: {error['msg']}")
    return "invalid input: " + "; ".join(parts)


def build_mcp_server(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    resolve_user: UserResolver,
    **server_options: Any,
) -> MCPServer:
    server = MCPServer(
        "todo-chat",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        log_level="WARNING",
        **server_options,
    )

    @asynccontextmanager
    async def tasks_for(ctx: Context) -> AsyncIterator[TaskService]:
        """A task service for the caller, with errors turned into messages the model can act on."""
        user_id = resolve_user(ctx)
        try:
            async with sessionmaker() as session:
                yield TaskService(session, user_id)
        except AppError as exc:
            raise ToolError(exc.detail) from exc
        except ValidationError as exc:
            raise ToolError(_validation_message(exc)) from exc

    def due_from(text: str | None, timezone: str | None, ctx: Context) -> datetime | None:
        if text is None or not text.strip():
            return None
        meta_tz = (ctx.request_context.meta or {}).get(TIMEZONE_META_KEY)
        tz = timezone or (meta_tz if isinstance(meta_tz, str) else settings.default_timezone)
        try:
            return parse_due(text, tz)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
    async def add_task(
        title: Annotated[str, Field(description="What to do, short", max_length=TITLE_MAX)],
        ctx: Context,
        description: Annotated[str | None, Field(description="Details, optional")] = None,
        priority: Priority = Priority.none,
        due: DueText = None,
        tags: TagList = None,
        timezone: Timezone = None,
    ) -> TaskChange:
        """Add a task to the user's todo list and return it with its new id."""
        due_at = due_from(due, timezone, ctx)
        async with tasks_for(ctx) as tasks:
            data = TaskCreate(
                title=title, description=description, priority=priority, due=due_at, tags=tags or []
            )
            task = await tasks.create(data)
        return TaskChange(task_id=task.id, status="created", title=task.title, task=task)

    @server.tool(annotations=READ_ONLY)
    async def list_tasks(
        ctx: Context,
        status: Literal["pending", "completed", "all"] = "pending",
        query: Annotated[
            str | None, Field(description="Text to find in title or description", max_length=200)
        ] = None,
        priority: Priority | None = None,
        tag: Annotated[str | None, Field(max_length=40)] = None,
        due_before: DueText = None,
        due_after: DueText = None,
        limit: Annotated[int, Field(ge=1, le=50, description="Tasks per page")] = 10,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
        timezone: Timezone = None,
    ) -> TaskList:
        """List the user's tasks, newest first: pending ones unless `status` says otherwise.

        Use `query` to find a task the user names by its title. `count` is the number of
        matching tasks over all pages; pass `next_cursor` back as `cursor` for more.
        """
        before = due_from(due_before, timezone, ctx)
        after = due_from(due_after, timezone, ctx)
        async with tasks_for(ctx) as tasks:
            page = await tasks.find(
                TaskQuery(
                    status=status,
                    q=query,
                    priority=priority,
                    tag=tag,
                    due_before=before,
                    due_after=after,
                    limit=limit,
                    cursor=cursor,
                )
            )
        items = [TaskItem.model_validate(task, from_attributes=True) for task in page.data]
        return TaskList(tasks=items, count=page.count, next_cursor=page.next_cursor)

    @server.tool(annotations=READ_ONLY)
    async def get_task(task_id: TaskId, ctx: Context) -> TaskPublic:
        """Show one task in full, with its description and timestamps."""
        async with tasks_for(ctx) as tasks:
            return await tasks.get(task_id)

    @server.tool(annotations=CHANGE)
    async def complete_task(task_id: TaskId, ctx: Context) -> TaskChange:
        """Mark a task as done."""
        async with tasks_for(ctx) as tasks:
            task = await tasks.set_completed(task_id, True)
        return TaskChange(task_id=task.id, status="completed", title=task.title, task=task)

    @server.tool(annotations=CHANGE)
    async def reopen_task(task_id: TaskId, ctx: Context) -> TaskChange:
        """Mark a done task as not done again."""
        async with tasks_for(ctx) as tasks:
            task = await tasks.set_completed(task_id, False)
        return TaskChange(task_id=task.id, status="reopened", title=task.title, task=task)

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=False))
    async def delete_task(task_id: TaskId, ctx: Context) -> TaskChange:
        """Delete a task for good. If the user named it by title, make sure it is the only match."""
        async with tasks_for(ctx) as tasks:
            task = await tasks.delete(task_id)
        return TaskChange(task_id=task.id, status="deleted", title=task.title, task=None)

    @server.tool(annotations=CHANGE)
    async def update_task(
        task_id: TaskId,
        ctx: Context,
        title: Annotated[str | None, Field(max_length=TITLE_MAX)] = None,
        description: Annotated[
            str | None, Field(description="New details; an empty string removes them")
        ] = None,
        priority: Priority | None = None,
        due: Annotated[
            str | None,
            Field(
                description="New due date (ISO or a phrase like 'friday 5pm'); 'none' removes it",
                max_length=100,
            ),
        ] = None,
        tags: Annotated[
            list[str] | None, Field(description="Replaces all tags; [] removes them", max_length=20)
        ] = None,
        timezone: Timezone = None,
    ) -> TaskChange:
        """Change a task's title, description, priority, due date or tags. Omitted fields stay."""
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = title
        if description is not None:
            changes["description"] = description or None
        if priority is not None:
            changes["priority"] = priority
        if due is not None:
            clear = due.strip().lower() in ("", "none", "null", "no due date")
            changes["due"] = None if clear else due_from(due, timezone, ctx)
        if tags is not None:
            changes["tags"] = tags
        if not changes:
            raise ToolError(
                "nothing to update: give at least one of title, description, priority, due or tags"
            )
        async with tasks_for(ctx) as tasks:
            task = await tasks.update(task_id, TaskUpdate(**changes))
        return TaskChange(task_id=task.id, status="updated", title=task.title, task=task)

    return server
