"""Event streams at scale on PostgreSQL, and what the NOTIFY costs the writes.

    uv run python -m bench.streams                  # writes bench/streams.md
    uv run python -m bench.streams --streams 500 --output /tmp/streams.md

One `todo-chat serve` process; the streams are raw sockets from this process. Measured:
- database transactions a second while the streams are open and nothing happens, against the
  same server with no stream open (the reference, measured in the same run);
- how long a change takes to reach every open stream of its user (50th/95th percentile);
- the server's memory per open stream (its RSS before and after opening them);
- task writes a second with the NOTIFY trigger on and off (the same server, the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from bench.cluster import TODO_CHAT, free_port
from bench.load import request_bytes, run
from server.auth import issue_token

SECRET = "bench-secret-" + "s" * 40
DATABASE = "todo_chat_bench_streams"


def _dsn(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _transactions(admin: asyncpg.Connection) -> int:
    row = await admin.fetchrow(
        "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1",
        DATABASE,
    )
    assert row is not None
    return int(row["n"])


async def _rate(admin: asyncpg.Connection, seconds: float) -> float:
    """Transactions a second in the bench database. An idle backend reports its counts up to
    10 s late (PostgreSQL 15): the window starts after a longer pause."""
    await asyncio.sleep(11)
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    before = await _transactions(admin)
    await asyncio.sleep(seconds)
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    return (await _transactions(admin) - before) / seconds


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _server_pid(port: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in cmdline and str(port).encode() in cmdline and b"uv" not in cmdline[0]:
                return int(entry.name)
    raise RuntimeError("no server process")


class Stream:
    """One open GET /api/events on a raw socket; `arrived` maps task ids to arrival times."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.arrived: dict[int, float] = {}

    async def open(self, port: int, token: str) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write(request_bytes("GET", "/api/events", token))
        await self.reader.readuntil(b"\r\n\r\n")
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            line = await self.reader.readline()
            if not line:
                return
            text = line.decode(errors="replace")
            start = text.find("data: ")
            if start >= 0 and '"task.created"' in text:
                event = json.loads(text[start + 6 :])
                self.arrived[event["task"]["id"]] = time.perf_counter()

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


async def measure(args: argparse.Namespace) -> str:
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    url = _dsn(args.database_url, DATABASE)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BETTER_AUTH_SECRET": SECRET,
        "RATE_LIMIT_ENABLED": "false",
        "BACKGROUND_JOBS": "false",
        "LOG_LEVEL": "warning",
        "DATA_DIR": "/tmp/todo-chat-bench-streams",
    }
    server = subprocess.Popen(  # noqa: ASYNC220 (starting it does not wait)
        [TODO_CHAT, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL
    )
    lines: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for _ in range(600):
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            pid = _server_pid(port)
            users = [f"user{n}" for n in range(args.users)]
            tokens = {u: issue_token(SECRET, u, ttl=timedelta(hours=1)) for u in users}

            idle_reference = await _rate(admin, args.seconds)
            rss_before = _rss_kib(pid)
            streams = [Stream(users[n % len(users)]) for n in range(args.streams)]
            for batch in range(0, len(streams), 200):
                await asyncio.gather(
                    *(s.open(port, tokens[s.user]) for s in streams[batch : batch + 200])
                )
            await asyncio.sleep(2)
            rss_after = _rss_kib(pid)
            idle_open = await _rate(admin, args.seconds)

            # One change at a time, for a user picked in turn: when did each of their streams
            # have it?
            latencies: list[float] = []
            for n in range(args.changes):
                user = users[n % len(users)]
                started = time.perf_counter()
                made = await http.post(
                    "/api/tasks",
                    json={"title": f"change {n}"},
                    headers={"Authorization": f"Bearer {tokens[user]}"},
                )
                task_id = made.json()["id"]
                mine = [s for s in streams if s.user == user]
                deadline = started + 5
                while time.perf_counter() < deadline and not all(  # noqa: ASYNC110
                    task_id in s.arrived for s in mine
                ):
                    await asyncio.sleep(0.002)
                latencies += [s.arrived.get(task_id, deadline) - started for s in mine]
                await asyncio.sleep(0.05)
            for stream in streams:
                stream.close()

            # Task writes a second, the NOTIFY trigger on and then off.
            token = tokens[users[0]]
            body = json.dumps({"title": "write"}).encode()

            def make(_: int) -> bytes:
                return request_bytes("POST", "/api/tasks", token, body)

            bench_db = await asyncpg.connect(url)
            writes: dict[str, list[float]] = {}
            for state in ("ENABLE", "DISABLE", "ENABLE"):
                await bench_db.execute(f"ALTER TABLE events {state} TRIGGER events_notify")
                result = await run(port, make, args.concurrency, args.seconds)
                writes.setdefault(state, []).append(result.rps)
            await bench_db.close()
    finally:
        server.terminate()
        server.wait(30)
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.close()

    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000

    with_notify = statistics.mean(writes["ENABLE"])
    without = writes["DISABLE"][0]
    lines += [
        f"# Event streams ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`uv run python -m bench.streams --streams {args.streams} --users {args.users}`, "
        f"one server process on PostgreSQL, {os.cpu_count()} cores, {platform.python_version()}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| transactions/s, no stream open (reference) | {idle_reference:.2f} |",
        f"| transactions/s, {args.streams} idle streams open | {idle_open:.2f} |",
        f"| change to every stream of its user, p50 | {pct(50):.1f} ms |",
        f"| change to every stream of its user, p95 | {pct(95):.1f} ms |",
        f"| change to every stream of its user, max | {pct(100):.1f} ms |",
        f"| memory per open stream (RSS) | {(rss_after - rss_before) / args.streams:.1f} KiB |",
        f"| task writes/s with NOTIFY (mean of 2 runs) | {with_notify:.0f} |",
        f"| task writes/s without NOTIFY | {without:.0f} |",
        f"| writes with NOTIFY / without | {with_notify / without:.2f} |",
        "",
        f"{len(latencies)} deliveries ({args.changes} changes, each to the "
        f"{args.streams // args.users} streams of its user); writes at {args.concurrency} "
        f"connections for {args.seconds:.0f} s each.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "streams.md")
    args = parser.parse_args()
    report = asyncio.run(measure(args))
    args.output.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
