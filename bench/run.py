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
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from bench.load import Result, request_bytes, run
from server.auth import issue_token
from server.database import create_engine
from server.migrate import upgrade

SECRET = "bench-secret-" + "x" * 40
DATABASE = "todo_chat_bench"
USER = "bench-0"
ROOT = Path(__file__).resolve().parents[1]


def _dsn(url: str, database: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


async def prepare_database(admin_url: str, connections: int) -> tuple[str, list[int], int, int]:
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
    await db.copy_records_to_table(
        "tasks",
        records=rows,
        columns=[
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
        ],
    )

    async def conversation(messages: int) -> int:
        conversation_id: int = await db.fetchval(
            "INSERT INTO conversations (owner_id, title, created_at, updated_at) "
            "VALUES ($1, 'bench', $2, $2) RETURNING id",
            USER,
            now,
        )
        await db.copy_records_to_table(
            "messages",
            records=[
                (
                    conversation_id,
                    USER,
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

    per_connection = [await conversation(10) for _ in range(connections)]
    short, long = await conversation(10), await conversation(1_000)
    await db.execute("ANALYZE")
    await db.close()
    return dsn, per_connection, short, long


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


def row(name: str, result: Result) -> str:
    return (
        f"| {name} | {result.concurrency} | {result.rps:,.0f} | {result.percentile(50):.1f} | "
        f"{result.percentile(95):.1f} | {result.percentile(99):.1f} | {result.errors} |"
    )


async def measure(args: argparse.Namespace) -> str:
    top = max(args.concurrency)
    dsn, conversations, short, long = await prepare_database(args.database_url, top)
    token = issue_token(SECRET, USER, ttl=timedelta(hours=2))
    env = {
        "DATABASE_URL": dsn,
        "BETTER_AUTH_SECRET": SECRET,
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "warning",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "DB_POOL_SIZE": "10",
        "DATA_DIR": str(ROOT / ".todo-chat" / "bench"),
    }
    app_port, reference_port = 8711, 8712
    list_request = request_bytes("GET", "/api/tasks", token)
    reference_request = request_bytes("GET", "/tasks", token)

    def chat_to(conversation: Callable[[int], int]) -> Callable[[int], bytes]:
        def make(index: int) -> bytes:
            body = json.dumps(
                {"message": "what's pending?", "conversation_id": conversation(index)}
            )
            return request_bytes("POST", "/api/chat", token, body.encode())

        return make

    lines = [
        "| endpoint | clients | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
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
        server(reference, reference_port, {"REFERENCE_DSN": dsn}, "/tasks"),
    ):
        for clients in args.concurrency:
            for name, port, make in [
                (
                    "reference: FastAPI + asyncpg, 20 rows",
                    reference_port,
                    lambda i: reference_request,
                ),
                ("GET /api/tasks (20 of 1,000)", app_port, lambda i: list_request),
                ("POST /api/chat, offline model", app_port, chat_to(lambda i: conversations[i])),
            ]:
                result = await run(port, make, clients, args.seconds)
                lines.append(row(name, result))
                print(lines[-1], flush=True)
        lines += [
            "",
            "Chat latency by conversation length (1 client, history window 20 messages):",
            "",
            "| conversation | req/s | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, conversation_id in [("10 messages", short), ("1,000 messages", long)]:
            result = await run(app_port, chat_to(lambda i, c=conversation_id: c), 1, args.seconds)  # type: ignore[misc]
            lines.append(row(label, result).replace(" | 1 | ", " | ", 1))
            print(lines[-1], flush=True)
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"
    header = [
        "# Benchmark results",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `uv run python -m bench.run "
        f"--seconds {args.seconds:g}`: {machine}; one uvicorn worker per server, PostgreSQL on "
        "the same machine, 100,000 tasks in the table. The load generator shares the cores.",
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
        "--concurrency", type=lambda v: [int(x) for x in v.split(",")], default=[1, 10, 100]
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.md")
    args = parser.parse_args()
    report = asyncio.run(measure(args))
    args.output.write_text(report)
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
