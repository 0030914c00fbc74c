"""The task core: every rule about tasks, below every adapter (REST, MCP, chat, ChatKit).

- `service`: the API the adapters call; it checks ids and picks the writer once.
- `rules`: what a change means (completion, repetition, reminders), without a database.
- `listing`: the listing query and its keyset pages.
- `statements`: the owner-scoped statements both databases run.
- `locking`: the portable writer, a transaction per change; `postgres`: the one-statement
  paths that PostgreSQL allows.

Nothing here imports an adapter.
"""

from server.tasks.listing import MAX_PAGE, TaskQuery
from server.tasks.service import TaskService

__all__ = ["MAX_PAGE", "TaskQuery", "TaskService"]
