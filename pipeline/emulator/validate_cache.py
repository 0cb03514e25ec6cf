"""Checks on prompt-caching markers: their shape, where they may go, how many, and in what TTL order.

Rules (docs: https://platform.claude.com/docs/en/build-with-claude/prompt-caching):
- a marker is `{"type": "ephemeral", "ttl"?: "5m" | "1h"}` (SDK `types/cache_control_ephemeral_param.py`);
- thinking and redacted_thinking blocks cannot carry one ("Thinking blocks cannot be cached directly
  with cache_control"; their SDK param types have no `cache_control` field);
- at most 4 breakpoints, and a top-level (automatic) `cache_control` takes one of the 4 slots;
- "Cache entries with longer TTL must appear before shorter TTLs": in render order (tools, system,
  messages) no 1-hour breakpoint may follow a 5-minute one; the automatic breakpoint sits on the
  last block, so it counts as the last entry;
- automatic caching whose TTL differs from an explicit marker on the block it lands on is a 400.
Pure functions; every failure raises `invalid(...)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from .api_errors import invalid, refuse_extra

__all__ = ["MAX_CACHE_BREAKPOINTS", "check_cache_markers"]

MAX_CACHE_BREAKPOINTS = 4
UNCACHEABLE_BLOCKS = ("thinking", "redacted_thinking")


class _Marker(NamedTuple):
    field: str  # the path of the `cache_control` field
    where: str  # where it sits: the block's path, or "the request" for automatic caching
    ttl: str


def _blocks_in_render_order(body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(path, block) for every block of the prompt, in render order: tools, system, message blocks.

    A string `system` or message `content` is one block that cannot carry a marker.
    """
    tools = body.get("tools")
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            yield f"tools.{index}", tool
    system = body.get("system")
    if isinstance(system, list):
        for index, block in enumerate(system):
            yield f"system.{index}", block
    elif isinstance(system, str):
        yield "system", system
    messages = body.get("messages")
    if isinstance(messages, list):
        for index, message in enumerate(messages):
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                for position, block in enumerate(content):
                    yield f"messages.{index}.content.{position}", block
            elif isinstance(content, str):
                yield f"messages.{index}.content", content  # one text block, which cannot carry a marker


def _marker_ttl(control: Any, where: str) -> str:
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise invalid(f"{where}.type: Input should be 'ephemeral'")
    refuse_extra(control, ("type", "ttl"), f"{where}.")
    ttl = control.get("ttl", "5m")
    if ttl not in ("5m", "1h"):
        raise invalid(f"{where}.ttl: Input should be '5m' or '1h'")
    return str(ttl)


def _explicit_markers(body: dict[str, Any]) -> list[_Marker]:
    markers: list[_Marker] = []
    for where, block in _blocks_in_render_order(body):
        if not isinstance(block, dict) or block.get("cache_control") is None:
            continue
        if block.get("type") in UNCACHEABLE_BLOCKS:
            raise invalid(
                f"{where}.cache_control: Extra inputs are not permitted; "
                f"{block['type']} blocks cannot be cached directly with cache_control"
            )
        field = f"{where}.cache_control"
        markers.append(_Marker(field, where, _marker_ttl(block["cache_control"], field)))
    return markers


def _automatic_target(body: dict[str, Any]) -> tuple[str, Any] | None:
    """The block automatic caching lands on: the last block that may carry a marker."""
    target = None
    for where, block in _blocks_in_render_order(body):
        if not (isinstance(block, dict) and block.get("type") in UNCACHEABLE_BLOCKS):
            target = (where, block)
    return target


def check_cache_markers(body: dict[str, Any]) -> None:
    """Every caching rule above, for a Messages or count_tokens body."""
    markers = _explicit_markers(body)
    if body.get("cache_control") is not None:
        ttl = _marker_ttl(body["cache_control"], "cache_control")
        _check_automatic_target(body, ttl)
        markers.append(_Marker("cache_control", "the request", ttl))
    if len(markers) > MAX_CACHE_BREAKPOINTS:
        raise invalid(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {len(markers)}."
        )
    first_5m = next((marker for marker in markers if marker.ttl == "5m"), None)
    if first_5m is None:
        return
    for marker in markers[markers.index(first_5m) :]:
        if marker.ttl == "1h":
            raise invalid(
                f"{marker.field}.ttl: a 1h cache_control cannot come after the 5m one on {first_5m.where}; "
                "cache entries with longer TTL must appear before shorter TTLs (order: tools, system, messages)"
            )


def _check_automatic_target(body: dict[str, Any], ttl: str) -> None:
    target = _automatic_target(body)
    if target is None:
        return
    where, block = target
    control = block.get("cache_control") if isinstance(block, dict) else None
    if control is not None and isinstance(control, dict) and control.get("ttl", "5m") != ttl:
        raise invalid(
            f"cache_control.ttl: automatic caching uses ttl '{ttl}' but the last block ({where}) "
            f"has an explicit cache_control with ttl '{control.get('ttl', '5m')}'"
        )
