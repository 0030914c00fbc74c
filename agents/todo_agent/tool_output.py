"""Reading message content and tool output as the agents SDK hands them around."""

from __future__ import annotations

import json
from typing import Any


def content_text(output: Any) -> str:
    """The text of message content or tool output: a string, or a list of parts with `text`."""
    if isinstance(output, str):
        return output
    parts = output if isinstance(output, list) else [output]
    return "".join(
        str((part if isinstance(part, dict) else part.model_dump()).get("text", ""))
        for part in parts
    )


def parse_tool_output(output: Any) -> dict[str, Any]:
    """The tool's JSON result, or {"error": message} when the tool refused."""
    text = content_text(output)
    try:
        value = json.loads(text)
    except ValueError:
        return {"error": text.removeprefix("Error executing tool ").split(": ", 1)[-1]}
    return value if isinstance(value, dict) else {"result": value}
