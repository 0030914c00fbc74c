"""ChatKit's `Store` over todo-chat's conversations: a thread IS a conversation, and its items
are read from the conversation's messages. Nothing of ChatKit's is stored beside them, so
`/api/chat`, the REST API and `/chatkit` see one history that cannot drift.

A thread's id is the conversation's id. Its items:
- a user message is a user message item, `msg_<id>`;
- an answer to the user message `<U>` is up to three items: its tool calls as a workflow
  (`wf_<U>`), its text (`ans_<U>`), and, when it listed tasks and changed none, a widget with
  those tasks as they are now (`wdg_<U>`).

The turn itself is stored by the chat service (the user's message before the run, the answer
after it), so the SDK's calls to add or save an item store nothing more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from chatkit.store import NotFoundError, Store, StoreItemType, default_generate_id
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    Attachment,
    CustomTask,
    InferenceOptions,
    Page,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
    WidgetItem,
    Workflow,
    WorkflowItem,
)

from server.database import Database
from server.errors import InvalidInput, NotFound
from server.services.conversations import ConversationService
from server.tasks import MAX_PAGE, TaskService
from todo_agent.chat import PreparedTurn
from todo_agent.task_widget import listed_task_ids, task_widget
from todo_agent.tool_output import describe_call

_ITEM_ID = re.compile(r"^(msg|ans|wf|wdg)_([0-9]{1,10})$")
_THREAD_ID = re.compile(r"^[0-9]{1,10}$")
TITLE_MAX = 200


@dataclass
class KitContext:
    """One ChatKit request: the verified user, their timezone, and the turn it answers."""

    user_id: str
    timezone: str
    turn: PreparedTurn | None = None
    workflows: int = 0  # workflow items started in this request (the first is `wf_<U>`)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def conversation_of(thread_id: str) -> int:
    if not _THREAD_ID.match(thread_id):
        raise NotFound(f"Thread {thread_id!r} not found")
    return int(thread_id)


def item_parts(item_id: str) -> tuple[str, int]:
    match = _ITEM_ID.match(item_id)
    if match is None:
        raise NotFound(f"Item {item_id!r} not found")
    return match[1], int(match[2])


def check_title(title: str) -> str:
    title = " ".join(title.split())
    if not title or len(title) > TITLE_MAX or not title.isprintable():
        raise InvalidInput(f"a thread title is 1 to {TITLE_MAX} printable characters")
    return title


class ConversationStore(Store[KitContext]):
    def __init__(self, db: Database) -> None:
        self.db = db

    def _conversations(self, context: KitContext) -> ConversationService:
        return ConversationService(self.db, context.user_id)

    # ------------------------------------------------------------ ids

    def generate_thread_id(self, context: KitContext) -> str:
        # The conversation was created when the request's turn was opened.
        assert context.turn is not None
        return str(context.turn.conversation_id)

    def generate_item_id(
        self, item_type: StoreItemType, thread: ThreadMetadata, context: KitContext
    ) -> str:
        if context.turn is None:
            return default_generate_id(item_type)
        asked = context.turn.turn.message_id
        if item_type == "message":
            return f"msg_{asked}"
        if item_type == "workflow":
            context.workflows += 1
            return f"wf_{asked}" if context.workflows == 1 else f"wf_{asked}_{context.workflows}"
        return default_generate_id(item_type)

    # ------------------------------------------------------------ threads

    async def load_thread(self, thread_id: str, context: KitContext) -> ThreadMetadata:
        conversation = await self._conversations(context).get(conversation_of(thread_id))
        return ThreadMetadata(
            id=thread_id, title=conversation.title, created_at=conversation.created_at
        )

    async def save_thread(self, thread: ThreadMetadata, context: KitContext) -> None:
        conversations = self._conversations(context)
        conversation = await conversations.get(conversation_of(thread.id))
        if thread.title is not None and thread.title != conversation.title:
            await conversations.rename(conversation.id, check_title(thread.title))

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: KitContext
    ) -> Page[ThreadMetadata]:
        _check_limit(limit)
        page = await self._conversations(context).page(limit, after, oldest_first=order == "asc")
        threads = [
            ThreadMetadata(id=str(c.id), title=c.title, created_at=c.created_at) for c in page.data
        ]
        return Page(data=threads, has_more=page.next_cursor is not None, after=page.next_cursor)

    async def delete_thread(self, thread_id: str, context: KitContext) -> None:
        await self._conversations(context).delete(conversation_of(thread_id))

    # ------------------------------------------------------------ items

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: KitContext
    ) -> Page[ThreadItem]:
        _check_limit(limit)
        conversation_id = conversation_of(thread_id)
        conversations = self._conversations(context)
        await conversations.get(conversation_id)  # another user's thread is not found
        after_row = None if after is None else await self._row_of(conversation_id, after, context)
        newest_first = order == "desc"
        # A message gives one to three items (an answer: its tool calls, its text, a task list).
        # Read from the message of `after` itself, so that a page may end, and the next begin,
        # inside an answer; `limit` + 2 messages give more than `limit` items after it.
        start = None
        if after_row is not None:
            start = after_row["id"] + (1 if newest_first else -1)
        rows = await conversations.rows(conversation_id, start, limit + 2, newest_first)
        items = await self._items(thread_id, rows[::-1] if newest_first else rows, context)
        if newest_first:
            items.reverse()
        ids = [item.id for item in items]
        if after is not None and after in ids:
            items = items[ids.index(after) + 1 :]
        page, has_more = items[:limit], len(items) > limit
        return Page(data=page, has_more=has_more, after=page[-1].id if has_more else None)

    async def load_item(self, thread_id: str, item_id: str, context: KitContext) -> ThreadItem:
        row = await self._row_of(conversation_of(thread_id), item_id, context)
        for item in await self._items(thread_id, [row], context):
            if item.id == item_id:
                return item
        raise NotFound(f"Item {item_id!r} not found")

    async def delete_thread_item(self, thread_id: str, item_id: str, context: KitContext) -> None:
        kind, _ = item_parts(item_id)
        if kind in ("msg", "ans"):  # workflows and widgets go with their answer
            try:
                row = await self._row_of(conversation_of(thread_id), item_id, context)
            except NotFound:
                return
            await self._conversations(context).delete_message(row["conversation_id"], row["id"])

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: KitContext) -> None:
        """Nothing to do: the chat service stores the turn's messages."""

    async def save_item(self, thread_id: str, item: ThreadItem, context: KitContext) -> None:
        """Nothing to do: items are read from messages, widgets from the tasks as they are."""

    # ------------------------------------------------------------ attachments: not supported

    async def save_attachment(self, attachment: Attachment, context: KitContext) -> None:
        raise InvalidInput("attachments are not supported")

    async def load_attachment(self, attachment_id: str, context: KitContext) -> Attachment:
        raise NotFoundError(f"attachment {attachment_id} not found")

    async def delete_attachment(self, attachment_id: str, context: KitContext) -> None:
        raise InvalidInput("attachments are not supported")

    # ------------------------------------------------------------ messages to items

    async def _row_of(self, conversation_id: int, item_id: str, context: KitContext) -> Any:
        kind, number = item_parts(item_id)
        conversations = self._conversations(context)
        if kind == "msg":
            row = await conversations.row(conversation_id, number)
        else:
            row = await conversations.answer(conversation_id, number)
        if row is None:
            raise NotFound(f"Item {item_id!r} not found")
        return {**row, "conversation_id": conversation_id}

    async def _items(
        self, thread_id: str, rows: list[dict[str, Any]], context: KitContext
    ) -> list[ThreadItem]:
        listed = {row["id"]: listed_task_ids(row["tool_calls"]) for row in rows}
        wanted = [task_id for ids in listed.values() for task_id in ids]
        tasks = {
            t.id: t
            for t in await TaskService(self.db, context.user_id, context.timezone).many(wanted)
        }
        items: list[ThreadItem] = []
        for row in rows:
            at: dict[str, Any] = {"thread_id": thread_id, "created_at": row["created_at"]}
            if row["role"] == "user":
                items.append(
                    UserMessageItem(
                        id=f"msg_{row['id']}",
                        content=[UserMessageTextContent(text=row["content"])],
                        inference_options=InferenceOptions(),
                        **at,
                    )
                )
                continue
            # An answer from before answers were linked to their message goes by its own id.
            asked = row["reply_to"] if row["reply_to"] is not None else row["id"]
            if row["tool_calls"]:
                calls = [
                    CustomTask(
                        title=describe_call(call["name"], call["arguments"], call["result"]),
                        status_indicator="complete",
                    )
                    for call in row["tool_calls"]
                ]
                workflow = Workflow(type="custom", tasks=list(calls), expanded=False)
                items.append(WorkflowItem(id=f"wf_{asked}", workflow=workflow, **at))
            items.append(
                AssistantMessageItem(
                    id=f"ans_{asked}", content=[AssistantMessageContent(text=row["content"])], **at
                )
            )
            if listed[row["id"]]:
                shown = [tasks[task_id] for task_id in listed[row["id"]] if task_id in tasks]
                widget = task_widget(shown, context.zone)
                items.append(WidgetItem(id=f"wdg_{asked}", widget=widget, **at))
        return items


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
