"""Prompt caching, accounted as the real API does, fan-out included.

A block carrying `cache_control` (or the last block, with top-level automatic caching) closes a
cacheable prefix of the prompt in render order: tools, system, messages. The longest prefix that is
*readable* is read from the cache (`cache_read_input_tokens`); the rest of the prefix up to the last
breakpoint is written (`cache_creation_input_tokens`, split by TTL); the tokens after the last
breakpoint are plain `input_tokens`. Prefixes shorter than the model's minimum are never cached,
silently, as on the real API. Entries belong to one API key and one model, match on their exact
content, and are refreshed on every read.

An entry is readable only once the first response that writes it has started: "a cache entry only
becomes available after the first response begins"
(https://platform.claude.com/docs/en/build-with-claude/prompt-caching, concurrent requests).
So `account` does not write anything: it returns the request's usage and a `PendingWrite`, which
the Messages endpoint `publish`es when the response starts (after the latency model's time to first
token, or as `message_start` goes out on a stream). Requests accounted before that find nothing
readable and pay the write themselves; a request that fails or is abandoned before it starts never
publishes, and leaves no entry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..model_spec import ModelSpec
from .canonical import canonical_json
from .tokens import render_prefix_parts

__all__ = ["CacheUsage", "PendingWrite", "PromptCache"]

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True)
class CacheUsage:
    """How a request's prompt tokens split between the cache and plain input."""

    input_tokens: int
    cache_read_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int

    @property
    def cache_creation_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens


@dataclass(frozen=True)
class PendingWrite:
    """The entries an admitted request writes (or refreshes), readable once its response starts."""

    entries: tuple[tuple[tuple[str, str, str], float], ...] = ()  # ((key, model, digest), ttl_s)


@dataclass(frozen=True)
class _Breakpoint:
    digest: str
    prefix_tokens: int
    ttl: str


def _prefix_key(block: Any) -> bytes:
    """What a block adds to the prefix's identity: its content without its `cache_control` marker.

    A plain text block (the shared instructions, mostly) is its text, tagged and length-prefixed so
    that it can never read as another block's JSON nor as two blocks; anything else is its canonical
    JSON (self-delimiting).
    """
    if isinstance(block, dict):
        text = block.get("text")
        if block.get("type") == "text" and isinstance(text, str) and _PLAIN_TEXT_KEYS.issuperset(block):
            data = text.encode("utf-8", "surrogatepass")
            return b"\x00text" + len(data).to_bytes(8, "big") + data  # length-prefixed: parts never run together
        if "cache_control" in block:
            block = {k: v for k, v in block.items() if k != "cache_control"}
    return canonical_json(block).encode("utf-8")


_PLAIN_TEXT_KEYS = frozenset({"type", "text", "cache_control"})


class PromptCache:
    """Cache entries per (API key, model, prefix digest) with their expiry times."""

    def __init__(self) -> None:
        self._expiry: dict[tuple[str, str, str], float] = {}

    def clear(self) -> None:
        self._expiry.clear()

    def _breakpoints(self, body: dict[str, Any], min_tokens: int) -> tuple[list[_Breakpoint], int]:
        parts = render_prefix_parts(body)
        total = sum(part.tokens for part in parts)
        marks = [i for i, part in enumerate(parts) if part.cache_control]
        automatic = body.get("cache_control")
        if isinstance(automatic, dict) and len(parts) > 1:
            marks.append(len(parts) - 1)
        if not marks:
            return [], total
        hasher = hashlib.sha256()
        breakpoints: list[_Breakpoint] = []
        prefix_tokens = 0
        wanted = set(marks)
        for index, part in enumerate(parts):
            # The first part stands for the request's framing and names the model as the request spelled
            # it; entries are kept per model already, so the name an alias gave is left out of the prefix.
            hasher.update(_prefix_key(part.block if index else None))
            prefix_tokens += part.tokens
            if index in wanted:
                control = part.cache_control or automatic or {}
                ttl = str(control.get("ttl", "5m")) if isinstance(control, dict) else "5m"
                if prefix_tokens >= min_tokens:
                    breakpoints.append(_Breakpoint(hasher.hexdigest(), prefix_tokens, ttl))
            if index >= max(wanted):
                break
        return breakpoints, total

    def account(
        self, body: dict[str, Any], key_id: str, spec: ModelSpec, now: float
    ) -> tuple[CacheUsage, PendingWrite]:
        """Split the prompt's tokens against the entries readable at `now`; nothing is written yet.

        Entries belong to the model, not to the name the request gave it: an alias and its dated
        id share them.
        """
        model, min_tokens = spec.id, spec.cache_min_tokens
        breakpoints, total = self._breakpoints(body, min_tokens)
        read = 0
        for point in breakpoints:
            if self._expiry.get((key_id, model, point.digest), 0.0) > now:
                read = point.prefix_tokens
        written = {"5m": 0, "1h": 0}
        covered = read
        for point in breakpoints:
            if point.prefix_tokens > covered:
                written[point.ttl if point.ttl in written else "5m"] += point.prefix_tokens - covered
                covered = point.prefix_tokens
        usage = CacheUsage(total - covered, read, written["5m"], written["1h"])
        pending = tuple(((key_id, model, p.digest), TTL_SECONDS.get(p.ttl, 300.0)) for p in breakpoints)
        return usage, PendingWrite(pending)

    def publish(self, pending: PendingWrite, now: float) -> None:
        """Make a started response's entries readable (or refresh them) from `now` for their TTL."""
        for key, ttl_s in pending.entries:
            self._expiry[key] = max(now + ttl_s, self._expiry.get(key, 0.0))
