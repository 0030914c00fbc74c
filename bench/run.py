"""Throughput and latency of POST /api/chat (offline model) and GET /api/tasks on PostgreSQL.

    uv run python -m bench.run                  # writes bench/results.md
    uv run python -m bench.run --seconds 10 --database-url postgresql://postgres@127.0.0.1/postgres

Each server is one uvicorn process; the load generator runs in this process. A bare FastAPI +
asyncpg endpoint is measured in the same run as the reference, because the machine is shared
and absolute numbers drift from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from bench.load import Result, request_bytes, run
from server.auth import issue_token
from server.database import create_engine
from server.migrate import upgrade
from server.services import cursors

SECRET = "bench-secret-" + "x" * 40
DATABASE = "todo_chat_bench"
USER = "bench-0"  # 1,000 tasks, ids 1 to 1,000
BIG_USER = "bench-big"
# Creates (REST and chat) go to another user, so that the listed user keeps 1,000 tasks.
WRITER = "bench-writer"
TASK_COLUMNS = [
    "owner_id",
    "title",
    "description",
    "completed",
    "completed_at",
    "priority",
    "due",
    "tags",
    "created_at",
    "updated_at",
]
ROOT = Path(__file__).resolve().parents[1]


def _dsn(url: str, database: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


@dataclass
class Seed:
    dsn: str
    conversations: list[int]  # one per client, each with 10 messages
    writer_conversations: list[int]  # the same, for the user whose tasks the writes add
    short: int  # a conversation of 10 messages
    long: int  # a conversation of 1,000 messages
    deep_cursor: str  # the heavy user's listing, 40,000 tasks down


async def prepare_database(admin_url: str, connections: int) -> Seed:
    admin = await asyncpg.connect(_dsn(admin_url, make_url(admin_url).database or "postgres"))
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {DATABASE}")
    await admin.close()
    dsn = _dsn(admin_url, DATABASE)
    engine = create_engine(dsn)
    await upgrade(engine)
    await engine.dispose()

    db = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    rng = random.Random(7)
    # 100,000 tasks: 1,000 for the benchmark user, the rest spread over 990 others.
    rows = []
    for i in range(100_000):
        owner = USER if i < 1_000 else f"user-{i % 990}"
        created = now - timedelta(seconds=100_000 - i)
        due = now + timedelta(days=rng.randint(-5, 30)) if i % 3 == 0 else None
        rows.append(
            (owner, f"task {i}", None, i % 7 == 0, None, i % 4, due, "[]", created, created)
        )
    await db.copy_records_to_table("tasks", records=rows, columns=TASK_COLUMNS)

    async def conversation(messages: int, owner: str = USER) -> int:
        conversation_id: int = await db.fetchval(
            "INSERT INTO conversations (owner_id, title, created_at, updated_at) "
            "VALUES ($1, 'bench', $2, $2) RETURNING id",
            owner,
            now,
        )
        await db.copy_records_to_table(
            "messages",
            records=[
                (
                    conversation_id,
                    owner,
                    "user" if m % 2 == 0 else "assistant",
                    f"message {m}",
                    "[]",
                    now,
                )
                for m in range(messages)
            ],
            columns=["conversation_id", "owner_id", "role", "content", "tool_calls", "created_at"],
        )
        return conversation_id

    # A heavy user: 50,000 tasks, some with words and tags to search for.
    big = [
        (
            BIG_USER,
            f"buy milk {i}" if i % 100 == 0 else f"big task {i}",
            "from the corner shop" if i % 50 == 0 else None,
            i % 5 == 0,
            None,
            i % 4,
            now + timedelta(days=rng.randint(-5, 300)) if i % 2 == 0 else None,
            '["home"]' if i % 10 == 0 else '["work"]',
            now - timedelta(seconds=60_000 - i),
            now,
        )
        for i in range(50_000)
    ]
    await db.copy_records_to_table("tasks", records=big, columns=TASK_COLUMNS)
    middle = await db.fetchrow(
        "SELECT id, created_at FROM tasks WHERE owner_id = $1 ORDER BY created_at DESC, id DESC "
        "OFFSET 40000 LIMIT 1",
        BIG_USER,
    )
    deep_cursor = cursors.encode("-created", middle["created_at"], middle["id"])

    per_connection = [await conversation(10) for _ in range(connections)]
    writer_conversations = [await conversation(10, WRITER) for _ in range(connections)]
    short, long = await conversation(10), await conversation(1_000)
    await db.execute("VACUUM ANALYZE")
    await db.close()
    return Seed(dsn, per_connection, writer_conversations, short, long, deep_cursor)


@contextmanager
def server(command: list[str], port: int, env: dict[str, str], health: str) -> Iterator[None]:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}{health}", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


def row(name: str, result: Result, share: float | None = None) -> str:
    # One decimal: the chat turn's share is a few percent, where rounding would hide a third.
    ratio = f"{share:.1%}" if share is not None else ""
    return (
        f"| {name} | {result.concurrency} | {result.rps:,.0f} | {ratio} | "
        f"{result.percentile(50):.1f} | {result.percentile(95):.1f} | "
        f"{result.percentile(99):.1f} | {result.errors} |"
    )


def pooled(results: Iterable[Result]) -> Result:
    """Several runs of one case as one: all their requests, seconds and latencies."""
    runs = list(results)
    return Result(
        runs[0].concurrency,
        sum(r.requests for r in runs),
        sum(r.errors for r in runs),
        sum(r.seconds for r in runs),
        [latency for r in runs for latency in r.latencies],
    )


Maker = Callable[[int], bytes]


def cycling(make: Callable[[int], bytes]) -> Maker:
    """A request maker that walks through the bench user's 1,000 task ids."""
    counter = iter(range(10**9))
    return lambda _: make(1 + next(counter) % 1_000)


def renames(path: str, token: str) -> Maker:
    """Each request gives one of the bench user's tasks a title it has not had before: every
    PATCH is a real change (with its event), as the reference's UPDATE is."""
    counter = iter(range(10**9))

    def make(_: int) -> bytes:
        n = next(counter)
        body = json.dumps({"title": f"renamed {n}"}).encode()
        return request_bytes("PATCH", f"{path}/{1 + n % 1_000}", token, body)

    return make


async def measure(args: argparse.Namespace) -> str:
    top = max(args.concurrency)
    seed = await prepare_database(args.database_url, top)
    token = issue_token(SECRET, USER, ttl=timedelta(hours=2))
    big_token = issue_token(SECRET, BIG_USER, ttl=timedelta(hours=2))
    writer_token = issue_token(SECRET, WRITER, ttl=timedelta(hours=2))
    env = {
        "DATABASE_URL": seed.dsn,
        "BETTER_AUTH_SECRET": SECRET,
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "warning",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "DB_POOL_SIZE": "10",
        "DATA_DIR": str(ROOT / ".todo-chat" / "bench"),
    }
    app_port, reference_port = 8711, 8712

    def get(path: str, who: str = token) -> Maker:
        request = request_bytes("GET", path, who)
        return lambda _: request

    def send(method: str, path: str, body: dict[str, object], who: str = token) -> bytes:
        return request_bytes(method, path, who, json.dumps(body).encode())

    def chat(message: str, writes: bool = False) -> Maker:
        conversations = seed.writer_conversations if writes else seed.conversations

        def make(index: int) -> bytes:
            body = {"message": message, "conversation_id": conversations[index]}
            return send("POST", "/api/chat", body, writer_token if writes else token)

        return make

    reference_list = get("/tasks")
    # (name, the app's request, the reference's request doing the same statement)
    cases: list[tuple[str, Maker, Maker]] = [
        ("GET /api/tasks (20 of 1,000)", get("/api/tasks"), reference_list),
        (
            "GET /api/tasks/{id}",
            cycling(lambda i: request_bytes("GET", f"/api/tasks/{i}", token)),
            cycling(lambda i: request_bytes("GET", f"/tasks/{i}", token)),
        ),
        (
            "POST /api/tasks",
            lambda _: send("POST", "/api/tasks", {"title": "bench task"}, writer_token),
            lambda _: send("POST", "/tasks", {"title": "bench task"}, writer_token),
        ),
        ("PATCH /api/tasks/{id}", renames("/api/tasks", token), renames("/tasks", token)),
        (
            "POST /api/chat: add a task (offline)",
            chat("add water the plants", True),
            reference_list,
        ),
        ("POST /api/chat: what's pending? (offline)", chat("what's pending?"), reference_list),
    ]

    lines = [
        "| endpoint | clients | req/s | of reference | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    serve = [sys.executable, "-m", "server.cli", "serve", "--port", str(app_port)]
    reference = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.reference:app",
        "--port",
        str(reference_port),
        "--log-level",
        "warning",
    ]
    with (
        server(serve, app_port, env, "/readyz"),
        server(reference, reference_port, {"REFERENCE_DSN": seed.dsn}, "/tasks"),
    ):
        # A fresh server's first seconds are slow (connections opening, caches filling): warm
        # both up unmeasured, or the first reference row comes out low.
        for port, make in ((reference_port, reference_list), (app_port, get("/api/tasks"))):
            await run(port, make, 10, 2)
        for clients in args.concurrency:
            for name, make, make_reference in cases:
                # Reference and app back to back, so both see the same machine; a few such
                # pairs, and the median of their ratios, so one noisy moment does not decide.
                pairs = [
                    (
                        await run(reference_port, make_reference, clients, args.seconds),
                        await run(app_port, make, clients, args.seconds),
                    )
                    for _ in range(args.rounds)
                ]
                share = statistics.median(app.rps / base.rps for base, app in pairs)
                lines.append(row("reference, same statement", pooled(base for base, _ in pairs)))
                lines.append(row(name, pooled(app for _, app in pairs), share))
                print(lines[-2], lines[-1], sep="\n", flush=True)
        lines += [
            "",
            "A user with 50,000 tasks (10 clients):",
            "",
            "| listing | req/s | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        deep = seed.deep_cursor
        for label, path in [
            ("first page", "/api/tasks"),
            ("deep cursor page (40,000 down)", f"/api/tasks?cursor={deep}"),
            ("`q=milk`", "/api/tasks?q=milk"),
            ("`tag=home`", "/api/tasks?tag=home"),
            ("`sort=due`", "/api/tasks?sort=due"),
        ]:
            result = await run(app_port, get(path, big_token), 10, args.seconds)
            lines.append(row(label, result).replace(" | 10 | ", " | ", 1).replace(" |  | ", " | "))
            print(lines[-1], flush=True)
        lines += [
            "",
            "Chat latency by conversation length (1 client, history window 20 messages):",
            "",
            "| conversation | req/s | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, conversation_id in [("10 messages", seed.short), ("1,000 messages", seed.long)]:
            body = {"message": "what's pending?", "conversation_id": conversation_id}
            result = await run(
                app_port, lambda _, b=body: send("POST", "/api/chat", b), 1, args.seconds
            )  # type: ignore[misc]
            lines.append(row(label, result).replace(" | 1 | ", " | ", 1).replace(" |  | ", " | "))
            print(lines[-1], flush=True)
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"
    header = [
        "# Benchmark results",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `uv run python -m bench.run "
        f"--seconds {args.seconds:g} --rounds {args.rounds}`: {machine}; one uvicorn worker "
        "per server, PostgreSQL on the same machine, 150,000 tasks in the table. The load "
        "generator shares the cores. Each endpoint is measured in "
        f"{args.rounds} pairs of {args.seconds:g} s: the reference, then the app at once. "
        "`of reference` is the median of the pairs' throughput ratios; req/s and latencies "
        "pool all the pairs' requests.",
        "",
    ]
    return "\n".join(header + lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="reference/app pairs per endpoint and client count"
    )
    parser.add_argument(
        "--concurrency", type=lambda v: [int(x) for x in v.split(",")], default=[10, 100]
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.md")
    args = parser.parse_args()
    report = asyncio.run(measure(args))
    args.output.write_text(report)
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
