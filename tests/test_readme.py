"""The README's first session, REST and streaming examples, run in order as a newcomer would
paste them, against a real `todo-chat serve` (on a free port instead of 8000)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.live import free_port

ROOT = Path(__file__).resolve().parents[1]
TODO_CHAT = str(Path(sys.executable).parent / "todo-chat")


def bash_blocks(section: str) -> list[str]:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"\n## {section}\n")
    end = readme.find("\n## ", start + 1)
    return re.findall(r"```bash\n(.*?)```", readme[start:end], re.DOTALL)


def test_the_readme_examples_run_top_to_bottom(tmp_path: Path) -> None:
    port = free_port()
    first_session, rest, chat = (
        bash_blocks("A first session")[0],
        bash_blocks("REST API")[0],
        next(block for block in bash_blocks("Chat") if "text/event-stream" in block),
    )
    script = "\n".join([first_session, rest, chat])
    assert "uv run todo-chat serve &" in script
    script = script.replace(
        "uv run todo-chat serve &",
        f'"$TODO_CHAT" serve --port {port} &\n'
        "trap 'kill %1' EXIT\n"
        f"until curl -s 127.0.0.1:{port}/healthz >/dev/null; do sleep 0.2; done",
    )
    script = script.replace("uv run todo-chat", '"$TODO_CHAT"').replace(
        "localhost:8000", f"127.0.0.1:{port}"
    )
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={
            **os.environ,
            "TODO_CHAT": TODO_CHAT,
            "DATA_DIR": str(tmp_path),
            "OPENAI_API_KEY": "",
            "OPENAI_BASE_URL": "",
            "DATABASE_URL": "",
            "BETTER_AUTH_SECRET": "",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'Added \\"Call mom\\" (task #1)' in out
    assert 'Marked \\"Call mom\\" (task #1) as done.' in out
    assert '"title":"Buy milk"' in out and '"count":1' in out
    assert '"completed":true' in out and "204" in out
    assert "event: conversation" in out and "event: done" in out
