"""The `agents` name belongs to the openai-agents SDK; our agent lives in `todo_agent`."""

from pathlib import Path


def test_import_agents_is_the_openai_agents_sdk() -> None:
    import agents

    assert hasattr(agents, "Agent") and hasattr(agents, "Runner")
    assert "site-packages" in str(Path(agents.__file__))


def test_local_agents_folder_is_not_a_package() -> None:
    root = Path(__file__).resolve().parents[1]
    assert not (root / "agents" / "__init__.py").exists()
