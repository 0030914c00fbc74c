"""Rolling restarts under load: two `serve` replicas and a worker behind nginx, on PostgreSQL
and Redis, each replica restarted in turn, several rounds, while writes, reads, chat turns and
event streams go on.

    uv run python -m bench.restart                  # writes bench/restart.md
    uv run python -m bench.restart --rounds 1 --output /tmp/restart.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bench.cluster import Load, cluster

DATABASE = "todo_chat_bench_restart"


async def measure(args: argparse.Namespace) -> str:
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    url = make_url(args.database_url).set(database=DATABASE).render_as_string(False)
    restarts: list[float] = []
    try:
        async with cluster(url, args.redis_url) as site:
            load = Load(site.url, users=args.users)
            async with load.running():
                await asyncio.sleep(args.pause)
                for _ in range(args.rounds):
                    for replica in site.replicas:
                        restarts.append(await site.restart(replica))
                        await asyncio.sleep(args.pause)
            exits = [status for replica in site.replicas for status in replica.exits]
            stored = await asyncpg.connect(url)
            ids = {row["id"] for row in await stored.fetch("SELECT id FROM tasks")}
            await stored.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.close()
    acknowledged = {i for user_ids in load.acknowledged.values() for i in user_ids}
    missed = sum(len(set(v) - load.streamed.get(u, set())) for u, v in load.acknowledged.items())
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(load.statuses.items()))
    errors = sum(n for code, n in load.statuses.items() if code >= 500)
    return (
        "\n".join(
            [
                f"# Rolling restarts ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
                "",
                f"`uv run python -m bench.restart --rounds {args.rounds}`: 2 replicas and a worker "
                f"behind nginx, PostgreSQL and Redis, {os.cpu_count()} cores.",
                "",
                "| measure | value |",
                "|---|---|",
                f"| replica restarts (SIGTERM to ready) | {len(restarts)}, "
                f"{min(restarts):.1f}-{max(restarts):.1f} s each |",
                f"| exit statuses | {sorted(set(exits))} |",
                f"| requests | {load.requests} ({statuses}) |",
                f"| 5xx answers, failed requests | {errors}, {len(load.failures)} |",
                f"| acknowledged task writes / found in the database | {len(acknowledged)} / "
                f"{len(acknowledged & ids)} |",
                f"| acknowledged tasks missing from their user's stream | {missed} |",
                f"| stream reconnects | {load.reconnects} |",
                f"| MCP tool calls through the balancer (one session) | {load.mcp_calls} |",
            ]
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--pause", type=float, default=3.0)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "restart.md")
    args = parser.parse_args()
    report = asyncio.run(measure(args))
    args.output.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
