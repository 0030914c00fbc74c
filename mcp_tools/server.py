"""The task tools, served over MCP: streamable HTTP, stdio, and in-process for the chat agent.

The tools are defined once. What differs between transports is only how a call finds its
user (see `mcp_tools.identity`): never from an argument, so no tool has a user parameter.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from mcp_tools.dates import parse_due
from mcp_tools.identity import TIMEZONE_META_KEY, TurnResolver, UserResolver, no_turn
from server.database import Database
from server.errors import DATABASE_UNAVAILABLE, AppError, database_unavailable
from server.metrics import MCP_TOOL_CALLS
from server.models import (
    CONTROL_CHARACTERS,
    ID_MAX,
    Description,
    Priority,
    SearchText,
    Tag,
    TaskCreate,
    TaskPublic,
    TaskUpdate,
    Title,
)
from server.services import cursors
from server.services.conversations import TurnRecord
from server.settings import Settings
from server.tasks import TaskQuery, TaskService
from server.timezones import ZoneArgument

log = logging.getLogger("todo_chat.mcp")

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
- A task may repeat (`recurrence`: "every monday", "every weekday", "monthly on the 15th", or
  an RRULE; it needs a due date, the first occurrence): completing it makes the next one.
  update_task with recurrence "none" stops it. A task may carry a reminder: `remind_before`
  minutes before its due time, or `remind_at` a time.
"""

# Strict: a JSON number only, never `true` or "1" taken for an id.
TaskId = Annotated[
    int,
    Field(
        description="The task's numeric id, as shown by list_tasks", ge=1, le=ID_MAX, strict=True
    ),
]
Timezone = Annotated[
    ZoneArgument | None,
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
RecurrenceArgument = Annotated[
    str | None,
    Field(
        description="How it repeats: 'daily', 'every monday', 'every weekday', 'every 2 weeks', "
        "'monthly on the 15th', or an RRULE such as FREQ=WEEKLY;BYDAY=MO",
        max_length=200,
    ),
]
RemindBefore = Annotated[
    int | None,
    Field(ge=0, le=525_600, description="Remind this many minutes before the due time"),
]
TagList = Annotated[
    list[Tag] | None, Field(description="Short labels such as 'home' or 'work'", max_length=20)
]

# The priorities spelled out in each tool's input schema rather than a shared `$ref`: the
# Agents SDK's conversion to OpenAI strict mode gives up on an optional `$ref`, and the tool
# silently stays non-strict.
PriorityName = Literal["none", "low", "medium", "high"]
assert set(get_args(PriorityName)) == {priority.value for priority in Priority}
PriorityArgument = Annotated[
    PriorityName, Field(description="How important: none, low, medium or high")
]
PriorityFilter = Annotated[PriorityName | None, Field(description="Only tasks of this priority")]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CHANGE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
ADD = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
DELETE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
)


class TaskItem(BaseModel):
    """A task as listed: enough to name it and decide what to do next."""

    id: int
    title: str
    completed: bool
    priority: Priority
    due: datetime | None
    tags: list[str]
    repeats: str | None = Field(default=None, description="How it repeats, if it does")


class TaskList(BaseModel):
    tasks: list[TaskItem]
    count: int | None = Field(
        description="On the first page: how many tasks match over all pages (counted up to "
        "10,000); null on later pages"
    )
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page")


Change = Literal["created", "completed", "reopened", "updated", "deleted"]


class TaskChange(BaseModel):
    task_id: int
    status: Change
    title: str
    task: TaskPublic | None = Field(description="The task as it is now; null once deleted")

    @classmethod
    def of(cls, status: Change, task: TaskPublic) -> TaskChange:
        shown = None if status == "deleted" else task
        return cls(task_id=task.id, status=status, title=task.title, task=shown)


def _control_character_in(value: Any, path: str = "") -> str | None:
    """The first argument (as `tags.0`) whose text holds a control character, if any. Every
    text argument follows the rule of the task fields, whether or not the tool keeps it: a
    date phrase with a NUL would otherwise be read with the NUL quietly dropped."""
    if isinstance(value, str):
        return path or "input" if CONTROL_CHARACTERS.search(value) else None
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        found = _control_character_in(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def validation_message(exc: ValidationError) -> str:
    """Pydantic's errors as one line naming each argument, without its URLs or input echo."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "input"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        elif message.startswith("Input should be"):
            message = "should be" + message.removeprefix("Input should be")
        else:
            message = message[:1].lower() + message[1:]
        parts.append(f"argument {field!r} {message}")
    return "; ".join(parts)


class TaskToolServer(MCPServer):
    """The SDK's server, with every tool failure told to the caller as one sentence it can act
    on: unknown arguments are refused, argument errors name the argument, a database outage
    says to retry, and a crash says no more than that (its details go to the log)."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        # Counted by tool; a name that is no tool is one label, whatever a client sends.
        label = name if self._tool_manager.get_tool(name) is not None else "unknown"
        try:
            result = await self._checked_call(name, arguments, context)
        except ToolError:
            MCP_TOOL_CALLS.labels(label, "error").inc()
            raise
        MCP_TOOL_CALLS.labels(label, "ok").inc()
        return result

    async def _checked_call(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None
    ) -> Any:
        tool = self._tool_manager.get_tool(name)
        if tool is not None:
            known = tool.parameters.get("properties", {})
            unknown = sorted(set(arguments) - set(known))
            if unknown:
                raise ToolError(
                    f"Error executing tool {name}: unknown argument {unknown[0]!r}; "
                    f"it takes {', '.join(known) or 'no arguments'}"
                )
        refused = _control_character_in(arguments)
        if refused is not None:
            raise ToolError(
                f"Error executing tool {name}: argument {refused!r} must not contain control "
                "characters such as NUL"
            )
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            if exc.__cause__ is not None and database_unavailable(exc.__cause__):
                raise ToolError(f"Error executing tool {name}: {DATABASE_UNAVAILABLE}") from exc
            log.exception("tool %s failed unexpectedly", name)
            raise ToolError(
                f"Error executing tool {name}: an unexpected error occurred on the server; "
                "nothing was changed by this call, try again later"
            ) from exc
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                message = validation_message(exc.__cause__)
                raise ToolError(f"Error executing tool {name}: {message}") from exc.__cause__
            raise


def build_mcp_server(
    db: Database,
    settings: Settings,
    resolve_user: UserResolver,
    resolve_turn: TurnResolver = no_turn,
    **server_options: Any,
) -> MCPServer:
    server = TaskToolServer(
        "todo-chat",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        log_level="WARNING",
        **server_options,
    )

    def zone_of(timezone: str | None, ctx: Context) -> str:
        """The zone a call names, else the chat's (from the run), else the server's."""
        meta_tz = (ctx.request_context.meta or {}).get(TIMEZONE_META_KEY)
        return timezone or (meta_tz if isinstance(meta_tz, str) else settings.default_timezone)

    @asynccontextmanager
    async def tasks_for(
        ctx: Context, timezone: str | None = None, *, change: Change | None = None
    ) -> AsyncIterator[TaskService]:
        """A task service for the caller, with errors turned into messages the model can act on.
        A `change` made for a chat turn is recorded with it (see `TurnRecord`)."""
        user_id = resolve_user(ctx)
        turn = resolve_turn(ctx) if change is not None else None
        effect = None
        if turn is not None and change is not None:
            effect = TurnRecord(
                turn.message_id,
                user_id,
                turn.name,
                turn.arguments,
                lambda task: TaskChange.of(change, task).model_dump(mode="json"),
            )
        try:
            yield TaskService(
                db,
                user_id,
                zone_of(timezone, ctx),
                effect=effect,
                max_tasks=settings.max_tasks_per_user,
            )
        except AppError as exc:
            raise ToolError(exc.detail) from exc
        except ValidationError as exc:
            raise ToolError(validation_message(exc)) from exc

    def due_from(text: str | None, timezone: str | None, ctx: Context) -> datetime | None:
        if text is None or not text.strip():
            return None
        try:
            return parse_due(text, zone_of(timezone, ctx))
        except ValueError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool(annotations=ADD)
    async def add_task(
        title: Annotated[Title, Field(description="What to do, short")],
        ctx: Context,
        description: Annotated[Description | None, Field(description="Details, optional")] = None,
        priority: PriorityArgument = "none",
        due: DueText = None,
        tags: TagList = None,
        recurrence: RecurrenceArgument = None,
        remind_before: RemindBefore = None,
        remind_at: Annotated[DueText, Field(description="Remind at this time")] = None,
        timezone: Timezone = None,
    ) -> TaskChange:
        """Add a task to the user's todo list and return it with its new id."""
        due_at = due_from(due, timezone, ctx)
        async with tasks_for(ctx, timezone, change="created") as tasks:
            data = TaskCreate(
                title=title,
                description=description,
                priority=priority,
                due=due_at,
                tags=tags or [],
                recurrence=recurrence,
                remind_before=remind_before,
                remind_at=due_from(remind_at, timezone, ctx),
            )
            task = await tasks.create(data)
        return TaskChange.of("created", task)

    @server.tool(annotations=READ_ONLY)
    async def list_tasks(
        ctx: Context,
        status: Annotated[
            Literal["pending", "completed", "all"],
            Field(description="Which tasks: pending (not done), completed, or all"),
        ] = "pending",
        query: Annotated[
            SearchText | None, Field(description="Text to find in title or description")
        ] = None,
        priority: PriorityFilter = None,
        tag: Annotated[Tag | None, Field(description="Only tasks with this tag")] = None,
        due_before: DueText = None,
        due_after: DueText = None,
        limit: Annotated[int, Field(ge=1, le=50, description="Tasks per page")] = 10,
        cursor: Annotated[
            cursors.Cursor | None, Field(description="next_cursor of the previous page")
        ] = None,
        repeating: Annotated[
            bool | None, Field(description="true: only repeating tasks; false: only one-off ones")
        ] = None,
        timezone: Timezone = None,
    ) -> TaskList:
        """List the user's tasks, newest first: pending ones unless `status` says otherwise.

        Use `query` to find a task the user names by its title. On the first page `count` is
        the number of matching tasks over all pages; pass `next_cursor` back as `cursor` for
        more.
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
                    count=True,
                    repeating=repeating,
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
        async with tasks_for(ctx, change="completed") as tasks:
            task = await tasks.set_completed(task_id, True)
        return TaskChange.of("completed", task)

    @server.tool(annotations=CHANGE)
    async def reopen_task(task_id: TaskId, ctx: Context) -> TaskChange:
        """Mark a done task as not done again."""
        async with tasks_for(ctx, change="reopened") as tasks:
            task = await tasks.set_completed(task_id, False)
        return TaskChange.of("reopened", task)

    @server.tool(annotations=DELETE)
    async def delete_task(
        task_id: TaskId,
        ctx: Context,
        whole_series: Annotated[
            bool,
            Field(
                description="For a repeating task: delete every occurrence. Otherwise only this "
                "one goes and the next occurrence is made."
            ),
        ] = False,
    ) -> TaskChange:
        """Delete a task for good. If the user named it by title, make sure it is the only match."""
        async with tasks_for(ctx, change="deleted") as tasks:
            task = await tasks.delete(task_id, whole_series=whole_series)
        return TaskChange.of("deleted", task)

    @server.tool(annotations=CHANGE)
    async def update_task(
        task_id: TaskId,
        ctx: Context,
        title: Annotated[Title | None, Field(description="New title")] = None,
        description: Annotated[
            Description | None, Field(description="New details; an empty string removes them")
        ] = None,
        priority: Annotated[PriorityName | None, Field(description="New priority")] = None,
        due: Annotated[
            str | None,
            Field(
                description="New due date (ISO or a phrase like 'friday 5pm'); 'none' removes it",
                max_length=100,
            ),
        ] = None,
        tags: Annotated[
            list[Tag] | None, Field(description="Replaces all tags; [] removes them", max_length=20)
        ] = None,
        recurrence: Annotated[
            str | None,
            Field(
                description="How it repeats from now on (as in add_task); 'none' stops it",
                max_length=200,
            ),
        ] = None,
        remind_before: Annotated[
            int | None,
            Field(ge=-1, le=525_600, description="Minutes before the due time to remind; -1: none"),
        ] = None,
        remind_at: Annotated[
            str | None,
            Field(description="When to remind (ISO or a phrase); 'none' removes the reminder"),
        ] = None,
        timezone: Timezone = None,
    ) -> TaskChange:
        """Change a task's title, description, priority, due date, tags, repetition or reminder.
        Omitted fields stay."""
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
        if recurrence is not None:
            stop = recurrence.strip().lower() in ("", "none", "null", "never", "stop")
            changes["recurrence"] = None if stop else recurrence
        if remind_before is not None:
            changes["remind_before"] = None if remind_before < 0 else remind_before
        if remind_at is not None:
            clear = remind_at.strip().lower() in ("", "none", "null")
            changes["remind_at"] = None if clear else due_from(remind_at, timezone, ctx)
        if not changes:
            raise ToolError(
                "nothing to update: give at least one of title, description, priority, due, "
                "tags, recurrence or a reminder"
            )
        async with tasks_for(ctx, timezone, change="updated") as tasks:
            task = await tasks.update(task_id, TaskUpdate(**changes))
        return TaskChange.of("updated", task)

    # A docstring's indentation is noise in the text the model reads.
    for tool in server._tool_manager.list_tools():
        tool.description = inspect.cleandoc(tool.description or "")
    return server
