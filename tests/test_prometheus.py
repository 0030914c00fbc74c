"""A real Prometheus (Debian's) scrapes /metrics with the bearer token, and reads the families
the dashboards are written against."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.live import free_port, served

H = dict[str, str]
TOKEN = "scrape-" + "t" * 32
pytestmark = pytest.mark.skipif(not shutil.which("prometheus"), reason="needs prometheus")


async def test_prometheus_scrapes_the_metrics(
    make_settings: Callable[..., Settings], clean_database: None, alice: H, tmp_path: Path
) -> None:
    settings = make_settings(metrics_token=TOKEN)
    async with served(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, headers=alice) as http:
            await http.post("/api/tasks", json={"title": "Scraped"})
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: todo-chat\n"
            f"    static_configs: [{{targets: ['{url.removeprefix('http://')}']}}]\n"
            f"    authorization: {{credentials: {TOKEN}}}\n"
        )
        prometheus = subprocess.Popen(  # noqa: ASYNC220 (starting it does not wait)
            [
                "prometheus",
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            created = await _query(
                port, 'todochat_http_requests_total{route="/api/tasks",status="201"}'
            )
            up = await _query(port, 'up{job="todo-chat"}')
        finally:
            prometheus.terminate()
            await asyncio.to_thread(prometheus.wait, 10)
    # The counters are the process's (earlier tests counted too): at least this test's create.
    assert float(created) >= 1 and up == "1"


async def _query(port: int, query: str) -> str:
    """The value of an instant query, once Prometheus has it (within 30 s)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        for _ in range(150):
            try:
                answer = await http.get("/api/v1/query", params={"query": query})
                result = answer.json()["data"]["result"]
                if result:
                    return str(result[0]["value"][1])
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"Prometheus never had {query}")
