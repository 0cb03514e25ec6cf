"""Checks on `tools` and `tool_choice`.

Custom tools (no `type`, or `type: "custom"`) need a `name` matching `^[a-zA-Z0-9_-]{1,128}$` and an
`input_schema` object (SDK `types/tool_param.py`; docs: agents-and-tools/tool-use/define-tools).
Names are unique. `tool_choice` is one of the four SDK variants (`types/tool_choice_*_param.py`); a
forced choice needs tools, and `tool` must name one of them. Messages follow the real API's wording.
Pure functions; every failure raises `invalid(...)`.
"""

from __future__ import annotations

import re
from typing import Any

from .api_errors import invalid, refuse_extra

__all__ = ["check_tool_choice", "check_tools"]

TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
TOOL_CHOICE_FIELDS = {
    "auto": {"type", "disable_parallel_tool_use"},
    "any": {"type", "disable_parallel_tool_use"},
    "tool": {"type", "name", "disable_parallel_tool_use"},
    "none": {"type"},
}


def check_tools(tools: Any) -> list[str]:
    """Check the tool definitions; return their names, in order."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid("tools: Input should be a valid array")
    names: list[str] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise invalid(f"tools.{index}: Input should be an object")
        if tool.get("type") in (None, "custom"):
            _check_custom_tool(tool, f"tools.{index}.custom")
        elif not isinstance(tool.get("name"), str):
            raise invalid(f"tools.{index}.name: Field required")
        names.append(tool["name"])
    if len(set(names)) != len(names):
        raise invalid("tools: Tool names must be unique.")
    return names


def _check_custom_tool(tool: dict[str, Any], where: str) -> None:
    name = tool.get("name")
    if name is None:
        raise invalid(f"{where}.name: Field required")
    if not isinstance(name, str):
        raise invalid(f"{where}.name: Input should be a valid string")
    if not TOOL_NAME_RE.match(name):
        raise invalid(f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
    schema = tool.get("input_schema")
    if schema is None:
        raise invalid(f"{where}.input_schema: Field required")
    if not isinstance(schema, dict):
        raise invalid(f"{where}.input_schema: Input should be a valid dictionary")
    if schema.get("type") != "object":
        raise invalid(f"{where}.input_schema.type: Input should be 'object'")


def check_tool_choice(tool_choice: Any, tool_names: list[str]) -> None:
    """A known variant with only its own fields, consistent with the tools given (what a model refuses:
    `model_rules.py`)."""
    if tool_choice is None:
        return
    kind = tool_choice.get("type") if isinstance(tool_choice, dict) else None
    if not isinstance(tool_choice, dict) or kind not in TOOL_CHOICE_FIELDS:
        raise invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    refuse_extra(tool_choice, TOOL_CHOICE_FIELDS[kind], f"tool_choice.{kind}.")
    if "disable_parallel_tool_use" in tool_choice and not isinstance(tool_choice["disable_parallel_tool_use"], bool):
        raise invalid(f"tool_choice.{kind}.disable_parallel_tool_use: Input should be a valid boolean")
    if kind == "tool":
        name = tool_choice.get("name")
        if not isinstance(name, str):
            raise invalid("tool_choice.tool.name: Field required")
        if name not in tool_names:
            raise invalid(f"Tool '{name}' not found in provided tools")
    if kind == "any" and not tool_names:
        raise invalid("tool_choice.any may only be specified while providing tools")
