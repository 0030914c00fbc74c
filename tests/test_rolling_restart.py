"""Two replicas and a worker behind nginx, on PostgreSQL and Redis, restarted one at a time
under steady load: no 5xx, no acknowledged write lost, every stream sees every change, and
each process exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import shutil

import asyncpg
import pytest

from bench.cluster import Load, cluster
from tests.conftest import TEST_DATABASE_URL, _fresh_postgres_database

REDIS = os.environ.get("TEST_REDIS_URL", "")

pytestmark = pytest.mark.skipif(
    not (TEST_DATABASE_URL and REDIS and shutil.which("nginx")),
    reason="needs TEST_DATABASE_URL, TEST_REDIS_URL and nginx (.ci/run provides them)",
)


async def test_restarting_replicas_one_at_a_time_under_load_loses_nothing() -> None:
    async with _fresh_postgres_database(TEST_DATABASE_URL) as url, cluster(url, REDIS) as site:
        load = Load(site.url, users=3)
        async with load.running():
            await asyncio.sleep(1.5)
            for replica in site.replicas:
                await site.restart(replica)
                await asyncio.sleep(1.5)
        assert [p.exits for p in site.replicas] == [[0], [0]], "each replica exited 0 on SIGTERM"
        assert load.failures == [], load.failures[:5]
        assert load.requests > 100 and not [s for s in load.statuses if s >= 500], load.statuses
        assert load.reconnects >= 1, "streams on a stopping replica were told to reconnect"
        assert load.mcp_calls > 10, "an MCP client went on through the restarts"

        connection = await asyncpg.connect(url)
        try:
            stored = {row["id"] for row in await connection.fetch("SELECT id FROM tasks")}
        finally:
            await connection.close()
        for user, ids in load.acknowledged.items():
            assert set(ids) <= stored, f"acknowledged tasks of {user} are missing"
            assert set(ids) <= load.streamed[user], f"{user}'s stream missed some of its tasks"
        assert await site.worker.stop() == 0
