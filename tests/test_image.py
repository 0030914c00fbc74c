"""The container image, built from the unchanged Dockerfile and run against PostgreSQL.

Needs buildah and a local `debian:bookworm-slim` (`.ci/run` makes both available and sets
TEST_IMAGE=1; elsewhere the test is skipped). Build with the chroot isolation and run on the
host's network: there is no container daemon on these machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET, TEST_DATABASE_URL, _fresh_postgres_database, make_token
from tests.live import free_port

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/todo-chat:test"

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_IMAGE") or not shutil.which("buildah"),
    reason="set TEST_IMAGE=1 with buildah installed (.ci/run does)",
)


def buildah(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        ["buildah", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def image() -> str:
    # --format docker keeps the HEALTHCHECK (OCI images have no such field).
    buildah(
        "bud", "--isolation", "chroot", "--format", "docker", "-t", IMAGE, str(ROOT), timeout=900
    )
    return IMAGE


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = buildah("from", image).strip()
    yield name
    buildah("rm", name)


def run_in(container: str, env: dict[str, str], *command: str) -> subprocess.Popen[str]:
    options = [f"--env={key}={value}" for key, value in env.items()]
    return subprocess.Popen(
        ["buildah", "run", "--isolation", "chroot", *options, container, "--", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_image_is_what_a_deployment_expects(image: str) -> None:
    config = json.loads(buildah("inspect", "--type", "image", image))["Docker"]["config"]
    assert config["User"] == "10001"
    assert config["Cmd"] == ["todo-chat", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    assert "8000/tcp" in config["ExposedPorts"]


def _process_serving(port: int, command: str = "serve") -> tuple[int, int]:
    """The pid and user id of the process whose command line says it serves on `port`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        named = command.encode() in cmdline and str(port).encode() in cmdline
        if named and b"buildah" not in cmdline[0]:
            uid = next(line for line in status.splitlines() if line.startswith("Uid:"))
            return int(entry.name), int(uid.split()[1])
    raise AssertionError(f"no process serves on {port}")


def _stop(process: subprocess.Popen[str], port: int, command: str) -> None:
    """After a failure: `buildah run` does not pass its signals on, so the process inside
    is stopped by its pid, then buildah."""
    if process.poll() is None:
        with contextlib.suppress(AssertionError, ProcessLookupError):
            os.kill(_process_serving(port, command)[0], signal.SIGKILL)
        process.kill()
        process.wait(30)


async def _answers(http: httpx.AsyncClient, path: str, process: subprocess.Popen[str]) -> None:
    """Until `path` answers 200 (within 30 s), while the container's process runs."""
    for _ in range(300):
        assert process.poll() is None, process.communicate()[0]
        try:
            if (await http.get(path)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never answered")


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL")
async def test_the_image_migrates_serves_and_round_trips_on_postgres(container: str) -> None:
    async with _fresh_postgres_database(TEST_DATABASE_URL) as url:
        env = {"DATABASE_URL": url, "BETTER_AUTH_SECRET": SECRET}
        migrate = run_in(container, env, "todo-chat", "migrate")
        output = migrate.communicate(timeout=120)[0]
        assert migrate.returncode == 0, output
        assert "already current" in output or "revision" in output

        port = free_port()
        server = run_in(
            container, env, "todo-chat", "serve", "--host", "0.0.0.0", "--port", str(port)
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=5) as http:
                await _answers(http, "/readyz", server)
                alice = {"Authorization": f"Bearer {make_token('alice')}"}
                made = await http.post(
                    "/api/tasks", json={"title": "From the image"}, headers=alice
                )
                assert made.status_code == 201, made.text
                listed = await http.get("/api/tasks", headers=alice)
                assert [t["title"] for t in listed.json()["data"]] == ["From the image"]
                assert "todochat_http_requests_total" in (await http.get("/metrics")).text
            pid, uid = _process_serving(port)
            assert uid == 10001, "the server does not run as root"
            os.kill(pid, signal.SIGTERM)  # as a container runtime stops it
            output = server.communicate(timeout=60)[0]
        finally:
            _stop(server, port, "serve")
        assert server.returncode == 0, output
        # JSON logs are the image's default.
        assert any(line.startswith('{"time"') for line in output.splitlines()), output[-1000:]

        # The worker, from the same image: its health and metrics, and a clean stop.
        port = free_port()
        worker = run_in(container, env, "todo-chat", "worker", "--port", str(port))
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                await _answers(http, "/healthz", worker)
                assert "todochat_reminders_sent_total" in (await http.get("/metrics")).text
            pid, uid = _process_serving(port, "worker")
            assert uid == 10001
            os.kill(pid, signal.SIGTERM)
            assert worker.wait(60) == 0, worker.communicate()[0]
        finally:
            _stop(worker, port, "worker")
