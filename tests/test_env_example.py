"""`.env.example` documents every setting, and nothing that is not one."""

import re
from pathlib import Path

from server.settings import Settings


def test_env_example_lists_every_setting_with_a_comment() -> None:
    lines = (Path(__file__).resolve().parents[1] / ".env.example").read_text().splitlines()
    names = []
    for index, line in enumerate(lines):
        match = re.match(r"^([A-Z_]+)=", line)
        if match:
            names.append(match[1].lower())
            assert lines[index - 1].startswith("#"), f"{match[1]} has no comment above it"
    assert sorted(names) == sorted(Settings.model_fields)
