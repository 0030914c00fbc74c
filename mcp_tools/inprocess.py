"""An in-process MCP client whose lifetime is not tied to the task that opened it.

anyio requires a client's context to be entered and exited in the same task, but an app's
lifespan (or a pytest fixture) starts and stops in different ones. An owner task holds the
client open until `close()`; any task may call through it meanwhile.
"""

from __future__ import annotations

import asyncio

from mcp import Client
from mcp.server.mcpserver import MCPServer


class InProcessClient:
    def __init__(self, server: MCPServer) -> None:
        self._server = server
        self._ready: asyncio.Future[Client] | None = None
        self._stop = asyncio.Event()
        self._owner: asyncio.Task[None] | None = None

    async def open(self) -> Client:
        self._ready = asyncio.get_running_loop().create_future()
        self._owner = asyncio.create_task(self._hold(self._ready), name="mcp-in-process-client")
        return await self._ready

    async def _hold(self, ready: asyncio.Future[Client]) -> None:
        try:
            async with Client(self._server) as client:
                ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    async def close(self) -> None:
        self._stop.set()
        if self._owner is not None:
            await self._owner
