"""The command line: tokens, stdio hygiene, and migrations that match the models."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from server.cli import main, parse_ttl, served_at
from server.database import create_engine
from server.migrate import include_object
from server.settings import Settings
from tests.conftest import SECRET
from tests.live import free_port

TODO_CHAT = str(Path(sys.executable).parent / "todo-chat")


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TODO_CHAT, *args],
        cwd=tmp_path,
        env={**os.environ, "DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_token_is_signed_with_the_configured_secret(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "token", "alice", "--ttl", "30m", BETTER_AUTH_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert 29 * 60 <= claims["exp"] - time.time() <= 30 * 60


def test_token_uses_the_persistent_dev_secret(tmp_path: Path) -> None:
    first = run_cli(tmp_path, "token", "alice").stdout.strip()
    secret = (tmp_path / "dev-secret").read_text().strip()
    assert jwt.decode(first, secret, algorithms=["HS256"])["sub"] == "alice"


@pytest.mark.parametrize("args", [["token", ""], ["token", "a\x00b"], ["token", "x" * 300]])
def test_a_user_id_the_server_would_refuse_is_refused_at_once(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2 and "user id" in capsys.readouterr().err


def test_token_carries_the_configured_issuer_and_audience_and_a_sane_lifetime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "BETTER_AUTH_SECRET": SECRET,
        "JWT_ISSUER": "https://auth.example",
        "JWT_AUDIENCE": "todo-chat",
        "DATA_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    main(["token", "alice"])
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], issuer="https://auth.example", audience="todo-chat"
    )
    assert claims["sub"] == "alice"
    with pytest.raises(SystemExit, match="a year at most"):
        main(["token", "alice", "--ttl", "400d"])


def test_serve_advertises_where_it_listens_unless_a_public_url_is_set() -> None:
    plain = Settings(_env_file=None)  # type: ignore[call-arg]
    assert served_at(plain, "127.0.0.1", 18306).public_url == "http://127.0.0.1:18306"
    assert served_at(plain, "0.0.0.0", 8080).public_url == "http://127.0.0.1:8080"
    public = Settings(_env_file=None, public_url="https://todo.example.com")  # type: ignore[call-arg]
    assert served_at(public, "0.0.0.0", 8080).public_url == "https://todo.example.com"


async def test_serve_prints_a_signed_in_link_to_the_page_in_development() -> None:
    from server.auth import TokenVerifier
    from server.cli import _page_line

    dev = Settings(_env_file=None, better_auth_secret="s" * 40, public_url="http://h:1")  # type: ignore[call-arg]
    line = _page_line(dev)
    assert line.startswith("  chat page: http://h:1/#token=")
    verifier = TokenVerifier(dev)
    claims = await verifier.verify(line.split("#token=")[1].strip())
    await verifier.aclose()
    assert claims["sub"] == "local"
    production = dev.model_copy(update={"environment": "production"})
    assert _page_line(production) == ""
    enabled = production.model_copy(update={"web_ui": True})
    assert _page_line(enabled) == "  chat page: http://h:1/\n", "no token outside development"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ENVIRONMENT": "prod"}, "ENVIRONMENT: Input should be"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL: Input should be"),
        ({"DB_POOL_SIZE": "lots"}, "DB_POOL_SIZE"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL is not usable"),
        ({"EVENTS_WEBHOOK_URL": "ftp://example.com/hook"}, "EVENTS_WEBHOOK_URL"),
        ({"EVENTS_WEBHOOK_URL": "https://example.com/hook"}, "\n  EVENTS_WEBHOOK_URL needs"),
        ({"RATE_LIMIT_CHAT": "lots"}, "RATE_LIMIT_CHAT: Value error, 'lots' is not a rate limit"),
        ({"RATE_LIMIT_REST": "5 a minute"}, "RATE_LIMIT_REST"),
        ({"DEFAULT_TIMEZONE": "Mars/Base"}, "DEFAULT_TIMEZONE: Value error, unknown timezone"),
        (
            {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/todo_chat_no_such_db"},
            "cannot use the database at 127.0.0.1:5432/todo_chat_no_such_db",
        ),
        ({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x"}, "cannot use"),
    ],
)
def test_configuration_mistakes_are_one_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], says: str
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        main(["migrate"])
    message = str(exit_.value.code)
    assert says in message and "Traceback" not in message
    assert len(message.splitlines()) <= 2


def test_a_busy_port_is_said_before_anything_else(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(tmp_path, "serve", "--port", str(port))
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "listening" not in result.stderr and "Traceback" not in result.stderr


def test_migrate_says_what_it_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    main(["migrate"])
    assert "schema created (revision" in capsys.readouterr().err
    main(["migrate"])
    assert "schema already current (revision" in capsys.readouterr().err


def test_bad_ttl_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "token", "alice", "--ttl", "forever")
    assert result.returncode == 2 and "30m" in result.stderr
    assert parse_ttl("7d").days == 7


def test_production_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", ENVIRONMENT="production", BETTER_AUTH_SECRET="change-me")
    assert result.returncode != 0 and "BETTER_AUTH_SECRET" in result.stderr


def test_stdio_server_writes_only_json_rpc_to_stdout(tmp_path: Path) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    result = subprocess.run(
        [TODO_CHAT, "mcp", "--user", "alice"],
        input=json.dumps(initialize) + "\n",
        cwd=tmp_path,
        env={**os.environ, "DATA_DIR": str(tmp_path), "BETTER_AUTH_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, result.stderr
    messages = [json.loads(line) for line in lines]  # every line is JSON-RPC
    assert messages[0]["id"] == 1 and messages[0]["result"]["serverInfo"]["name"] == "todo-chat"


def test_mcp_without_a_user_says_how_to_give_one(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "mcp", BETTER_AUTH_SECRET=SECRET)
    assert (
        result.returncode != 0 and "--user" in result.stderr and "TODO_CHAT_TOKEN" in result.stderr
    )
    bad = run_cli(tmp_path, "mcp", BETTER_AUTH_SECRET=SECRET, TODO_CHAT_TOKEN="junk")
    assert bad.returncode != 0 and "not valid" in bad.stderr


@pytest.mark.usefixtures("clean_database")
async def test_migrations_match_the_models(settings: Settings) -> None:
    """A model change without its migration fails here, on both databases."""

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": include_object}
        )
        return list(compare_metadata(context, SQLModel.metadata))

    engine = create_engine(settings.database_url)
    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []
    await engine.dispose()
