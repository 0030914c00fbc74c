"""The ChatKit server protocol (`POST /chatkit`) on the official SDK: `ChatKitServer` answers
with the same agent, tools and conversation storage as `/api/chat`.

A request that sends a message (a new thread, a message in a thread, a retry) opens its chat
turn before the SDK sees it: the user's message is stored, its thread and item ids are the
conversation's and the message's, and an unknown or other user's thread is a 404 before any
event is streamed. The answer streams through the SDK's `stream_agent_response`; each tool
call shows as a workflow task while it runs; a list of tasks also comes as a widget whose
buttons complete or reopen them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from chatkit.actions import Action
from chatkit.agents import AgentContext, stream_agent_response
from chatkit.errors import CustomStreamError
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.types import (
    AssistantMessageItem,
    ChatKitReq,
    CustomTask,
    FeedbackKind,
    ItemsFeedbackReq,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    ThreadStreamEvent,
    UserMessageInput,
    UserMessageItem,
    WidgetItem,
)
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from server.errors import (
    AppError,
    InvalidInput,
    NotFound,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from server.models import ChatRequest
from server.tasks import TaskService
from todo_agent.chat import ChatService
from todo_agent.chatkit_store import ConversationStore, KitContext, conversation_of, item_parts
from todo_agent.mcp_bridge import current_progress
from todo_agent.task_widget import COMPLETE, REOPEN, listed_task_ids
from todo_agent.tool_output import describe_call

REQUEST: TypeAdapter[Any] = TypeAdapter(ChatKitReq)
# The request types that run the agent: they count against the chat rate limit.
AGENT_REQUESTS = {"threads.create", "threads.add_user_message", "threads.retry_after_item"}
SUPPORTED = AGENT_REQUESTS | {
    "threads.get_by_id",
    "threads.list",
    "threads.update",
    "threads.delete",
    "items.list",
    "items.feedback",
    "threads.custom_action",
}


class TaskActionPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    task_id: int


class WorkflowProgress:
    """Each tool call of the run as a task of the turn's workflow, loading then complete."""

    def __init__(self, context: AgentContext[KitContext]) -> None:
        self.context = context

    async def started(self, name: str, arguments: dict[str, Any]) -> int:
        task = CustomTask(title=describe_call(name, arguments, None), status_indicator="loading")
        await self.context.add_workflow_task(task)
        assert self.context.workflow_item is not None
        return len(self.context.workflow_item.workflow.tasks) - 1

    async def finished(
        self, token: int, name: str, arguments: dict[str, Any], result: dict[str, Any]
    ) -> None:
        workflow = self.context.workflow_item
        if workflow is None or token >= len(workflow.workflow.tasks):
            return  # the workflow was closed in between: the answer's items show the call
        done = CustomTask(title=describe_call(name, arguments, result), status_indicator="complete")
        await self.context.update_workflow_task(done, token)


class AnswerIds:
    """The model's message ids replaced by the turn's (`ans_<U>`), which are the ones its
    stored answer is read back with; Chat Completions streams give every message one fake id."""

    def __init__(self, asked: int) -> None:
        self.asked = asked
        self.names: dict[str, str] = {}

    def _name(self, model_id: str) -> str:
        if model_id not in self.names:
            n = len(self.names)
            self.names[model_id] = f"ans_{self.asked}" + (f"_{n + 1}" if n else "")
        return self.names[model_id]

    def __call__(self, event: ThreadStreamEvent) -> ThreadStreamEvent:
        if isinstance(event, ThreadItemAddedEvent | ThreadItemDoneEvent) and isinstance(
            event.item, AssistantMessageItem
        ):
            item = event.item.model_copy(update={"id": self._name(event.item.id)})
            return event.model_copy(update={"item": item})
        if isinstance(event, ThreadItemUpdatedEvent) and event.item_id in self.names:
            return event.model_copy(update={"item_id": self.names[event.item_id]})
        return event


def message_text(message: UserMessageInput) -> str:
    if message.attachments:
        raise InvalidInput("attachments are not supported")
    parts = [getattr(part, "text", "") for part in message.content]
    return " ".join(part for part in parts if part).strip()


class TodoChatKitServer(ChatKitServer[KitContext]):
    def __init__(self, store: ConversationStore, chat: ChatService) -> None:
        super().__init__(store)
        self.conversation_store = store
        self.chat = chat

    async def process(
        self, request: str | bytes | bytearray, context: KitContext
    ) -> StreamingResult | NonStreamingResult:
        """Check the request and open its chat turn, then let the SDK answer it."""
        try:
            parsed = REQUEST.validate_json(request)
        except ValidationError as exc:
            raise InvalidInput(f"not a ChatKit request: {exc.errors()[0]['msg']}") from exc
        if parsed.type not in SUPPORTED:
            raise InvalidInput(f"{parsed.type} is not supported")
        await self._open(parsed, context)
        return await super().process(request, context)

    async def _open(self, request: Any, context: KitContext) -> None:
        params = request.params
        thread_id: str | None = getattr(params, "thread_id", None)
        if thread_id is not None:
            # Another user's or an unknown thread (an empty id too): a 404 now, not a broken
            # stream later.
            await self.conversation_store.load_thread(thread_id, context)
        thread = thread_id or ""
        if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq):
            try:
                chat = ChatRequest(
                    message=message_text(params.input),
                    conversation_id=conversation_of(thread) if thread else None,
                    timezone=context.timezone,
                )
            except ValidationError as exc:
                raise InvalidInput(f"the message: {exc.errors()[0]['msg']}") from exc
            context.turn = await self.chat.prepare(context.user_id, chat)
        elif isinstance(request, ThreadsRetryAfterItemReq):
            kind, number = item_parts(params.item_id)
            if kind != "msg":
                raise NotFound(f"Item {params.item_id!r} is not a user message")
            context.turn = await self.chat.prepare_again(
                context.user_id, conversation_of(thread), number, context.timezone
            )
        elif isinstance(request, ThreadsCustomActionReq) and params.item_id is not None:
            await self.conversation_store.load_item(thread, params.item_id, context)
        elif isinstance(request, ItemsFeedbackReq):
            for item_id in params.item_ids:
                await self.conversation_store.load_item(thread, item_id, context)

    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: KitContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        turn = context.turn
        if turn is None:
            raise CustomStreamError("There is no message to answer.", allow_retry=False)
        agent_context: AgentContext[KitContext] = AgentContext(
            thread=thread, store=self.store, request_context=context
        )
        rename = AnswerIds(turn.turn.message_id)
        # Set before the run starts, so that its tool calls report to this turn's workflow.
        progress = current_progress.set(WorkflowProgress(agent_context))
        try:
            async with self.chat.running(turn) as run:
                async for event in stream_agent_response(agent_context, run.result):
                    yield rename(event)
        except (UpstreamError, UpstreamTimeout, Unavailable) as failure:
            raise CustomStreamError(failure.detail, allow_retry=True) from failure
        finally:
            current_progress.reset(progress)
        assert run.answer is not None
        if listed_task_ids([call.model_dump() for call in run.answer.tool_calls]):
            widget = await self.store.load_item(thread.id, f"wdg_{turn.turn.message_id}", context)
            yield ThreadItemDoneEvent(item=widget)

    async def action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: KitContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        """A click in a task widget: complete or reopen one of the tasks it shows, then show
        the widget again as the tasks now are."""
        if action.type not in (COMPLETE, REOPEN) or sender is None:
            raise CustomStreamError(f"Unknown action {action.type!r}.", allow_retry=False)
        try:
            task_id = TaskActionPayload.model_validate(action.payload).task_id
        except ValidationError as exc:
            raise CustomStreamError("The action needs a task_id.", allow_retry=False) from exc
        shown = {int(row.key.removeprefix("task-")) for row in _rows(sender) if row.key}
        try:
            if task_id not in shown:
                raise NotFound(f"Task {task_id} not found")
            await TaskService(
                self.conversation_store.db, context.user_id, context.timezone
            ).set_completed(task_id, action.type == COMPLETE)
        except AppError as error:
            raise CustomStreamError(error.detail, allow_retry=False) from error
        updated = await self.store.load_item(thread.id, sender.id, context)
        yield ThreadItemReplacedEvent(item=updated)

    async def add_feedback(
        self, thread_id: str, item_ids: list[str], feedback: FeedbackKind, context: KitContext
    ) -> None:
        """Accepted and not kept: there is nothing here that learns from it yet."""

    async def handle_stream_cancelled(
        self, thread: ThreadMetadata, pending_items: list[ThreadItem], context: KitContext
    ) -> None:
        """The chat service has already marked the turn as failed; its message is kept for a
        retry, as on /api/chat."""


def _rows(widget: WidgetItem) -> list[Any]:
    children = getattr(widget.widget, "children", None) or []
    return list(children) if isinstance(children, list) else [children]
