"""A local deployment: `todo-chat serve` replicas and a worker behind Debian's nginx, on one
PostgreSQL and one Redis, restarted one at a time under steady load.

Used by tests/test_rolling_restart.py (short) and `python -m bench.restart` (longer).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from server.auth import issue_token

TODO_CHAT = str(Path(sys.executable).parent / "todo-chat")
SECRET = "cluster-secret-" + "x" * 40
NGINX = """
worker_processes 1;
error_log {dir}/nginx-error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    upstream todo_chat {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://todo_chat;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Request-ID $http_x_request_id;
            proxy_buffering off;
            proxy_read_timeout 1h;
{next_upstream}
        }}
    }}
}}
"""
# As deploy/nginx.conf: a connection refused or reset before any answer (a replica that
# stops listening) goes to the next replica, POSTs too: such a request never reached the app.
NEXT_UPSTREAM = """            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries 3;"""


@functools.cache
def _token(user: str) -> str:
    return issue_token(SECRET, user, ttl=timedelta(hours=2))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    args: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [TODO_CHAT, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    async def ready(self, path: str = "/readyz", seconds: float = 60) -> None:
        assert self.port is not None and self.popen is not None
        async with httpx.AsyncClient(timeout=2) as http:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if self.popen.poll() is not None:
                    raise RuntimeError(f"{self.args} exited: {self.log.read_text()[-2000:]}")
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}{path}")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.args} never became ready")

    async def stop(self, seconds: float = 60) -> int:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        status = await asyncio.to_thread(self.popen.wait, seconds)
        self.exits.append(status)
        return status


@dataclass
class Cluster:
    url: str  # nginx
    replicas: list[Process]
    worker: Process
    folder: Path

    async def restart(self, replica: Process) -> float:
        """SIGTERM, wait for the exit, start again, wait until ready; seconds taken."""
        started = time.monotonic()
        await replica.stop()
        replica.start()
        await replica.ready()
        return time.monotonic() - started


@asynccontextmanager
async def cluster(database_url: str, redis_url: str, replicas: int = 2) -> AsyncIterator[Cluster]:
    if not shutil.which("nginx"):
        raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
    folder = Path(tempfile.mkdtemp(prefix="todo-chat-cluster-"))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BETTER_AUTH_SECRET": SECRET,
        "RATE_LIMIT_STORAGE_URI": redis_url,
        "RATE_LIMIT_ENABLED": "false",
        "BACKGROUND_JOBS": "false",
        "SHUTDOWN_GRACE_SECONDS": "20",
        "LOG_LEVEL": "warning",
        "DATA_DIR": str(folder),
    }
    serving = []
    for n in range(replicas):
        port = free_port()
        serving.append(
            Process(["serve", "--port", str(port)], env, folder / f"replica{n}.log", port)
        )
    worker_port = free_port()
    worker = Process(
        ["worker", "--port", str(worker_port)],
        {**env, "EVENTS_POLL_SECONDS": "0.5"},
        folder / "worker.log",
        worker_port,
    )
    nginx_port = free_port()
    servers = "\n".join(
        f"        server 127.0.0.1:{p.port} max_fails=0;" for p in serving
    )  # max_fails=0: a refused connection does not take a replica out for a while
    (folder / "nginx.conf").write_text(
        NGINX.format(dir=folder, servers=servers, port=nginx_port, next_upstream=NEXT_UPSTREAM)
    )
    # One migration before the replicas start (as the compose file and the Job do).
    await asyncio.to_thread(
        subprocess.run, [TODO_CHAT, "migrate"], env=env, check=True, capture_output=True
    )
    nginx = subprocess.Popen(  # noqa: ASYNC220 (starting it does not wait for it)
        ["nginx", "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for process in [*serving, worker]:
            process.start()
        await asyncio.gather(*(p.ready() for p in serving), worker.ready("/healthz"))
        yield Cluster(f"http://127.0.0.1:{nginx_port}", serving, worker, folder)
    finally:
        for process in [*serving, worker]:
            if process.popen is not None and process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in [*serving, worker]:
            if process.popen is not None:
                try:
                    process.popen.wait(30)
                except subprocess.TimeoutExpired:
                    process.popen.kill()
        nginx.terminate()
        nginx.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Load:
    """Steady traffic through the balancer: writes, reads, chat turns, and an event stream
    per user that reconnects (with Last-Event-ID) whenever it ends."""

    url: str
    users: int = 4
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    acknowledged: dict[str, list[int]] = field(default_factory=dict)  # user -> created ids
    streamed: dict[str, set[int]] = field(default_factory=dict)  # user -> ids seen created
    reconnects: int = 0
    mcp_calls: int = 0

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {_token(user)}"}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The load runs inside the block. On leaving it the requests stop, and the streams
        get up to 15 s to show every task that was acknowledged."""
        stop = asyncio.Event()
        users = [f"user{n}" for n in range(self.users)]
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            requests = [
                *(self._writer(http, user, stop) for user in users),
                *(self._reader(http, user, stop) for user in users),
                self._chatter(http, users[0], stop),
                self._mcp(users[-1], stop),
            ]
            steady = asyncio.gather(*requests)
            streams = [asyncio.create_task(self._stream(http, user)) for user in users]
            try:
                yield
            finally:
                stop.set()
                await steady
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and not all(map(self.caught_up, users)):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                for stream in streams:
                    stream.cancel()
                await asyncio.gather(*streams, return_exceptions=True)

    def caught_up(self, user: str) -> bool:
        return set(self.acknowledged.get(user, [])) <= self.streamed.get(user, set())

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def _count(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            request = response.request
            self.failures.append(
                f"{request.method} {request.url.path}: {response.status_code} "
                f"{response.text[:200] if not response.is_stream_consumed else ''}"
            )

    async def _call(
        self, http: httpx.AsyncClient, method: str, path: str, **options: Any
    ) -> httpx.Response | None:
        try:
            response = await http.request(method, path, **options)
        except httpx.HTTPError as exc:
            self.failures.append(f"{method} {path}: {exc!r}")
            return None
        self._count(response)
        return response

    async def _writer(self, http: httpx.AsyncClient, user: str, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            body = {"title": f"{user} {n}"}
            made = await self._call(
                http, "POST", "/api/tasks", json=body, headers=self.headers(user)
            )
            if made is not None and made.status_code == 201:
                self.acknowledged.setdefault(user, []).append(made.json()["id"])
            await asyncio.sleep(0.02)

    async def _reader(self, http: httpx.AsyncClient, user: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._call(http, "GET", "/api/tasks", headers=self.headers(user))
            await asyncio.sleep(0.02)

    async def _chatter(self, http: httpx.AsyncClient, user: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            body = {"message": "what's pending?"}
            await self._call(http, "POST", "/api/chat", json=body, headers=self.headers(user))
            await asyncio.sleep(0.2)

    async def _mcp(self, user: str, stop: asyncio.Event) -> None:
        """An MCP client through the balancer: one session, whose requests land on either
        replica (the server is stateless, so nothing needs to stick)."""
        while not stop.is_set():
            try:
                async with (
                    httpx2.AsyncClient(headers=self.headers(user), timeout=30) as http,
                    Client(streamable_http_client(f"{self.url}/mcp", http_client=http)) as mcp,
                ):
                    while not stop.is_set():
                        added = await mcp.call_tool("add_task", {"title": "via MCP"})
                        listed = await mcp.call_tool("list_tasks", {"limit": 5})
                        if added.is_error or listed.is_error:
                            self.failures.append(f"MCP: {added.content} {listed.content}")
                        else:
                            self.mcp_calls += 2
                        await asyncio.sleep(0.05)
            except Exception as exc:  # a failed MCP request is a failure of the run
                self.failures.append(f"MCP session of {user}: {exc!r}")
                await asyncio.sleep(0.2)

    async def _stream(self, http: httpx.AsyncClient, user: str) -> None:
        last = 0  # from the first event: every acknowledged task must show up
        seen = self.streamed.setdefault(user, set())
        while True:
            headers = {**self.headers(user), "Last-Event-ID": str(last)}
            try:
                async with http.stream("GET", "/api/events", headers=headers) as response:
                    self._count(response)
                    event_id = None
                    async for line in response.aiter_lines():
                        if line.startswith("id: "):
                            event_id = int(line.removeprefix("id: "))
                        elif line.startswith("data: ") and event_id is not None:
                            event = json.loads(line.removeprefix("data: "))
                            if event["type"] == "task.created":
                                seen.add(event["task"]["id"])
                            last = max(last, event_id)
            except httpx.HTTPError as exc:
                self.failures.append(f"stream of {user}: {exc!r}")
            self.reconnects += 1
            await asyncio.sleep(0.2)
