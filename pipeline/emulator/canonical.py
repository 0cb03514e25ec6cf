"""Canonical JSON of the parts of a request that the emulator reads more than once.

A structured-output schema is serialised to count its tokens (validation's context check, then
caching), to key its prompt-cache prefix, and to recognise a schema already checked: once per
request is enough. The memo lives as long as one request (`request_scope()`, entered by the
Messages and count_tokens handlers, each an asyncio task with its own context): it holds each object
with its text, so an id is never taken for another object's, nothing outlives the request, and a
body changed between requests can never be read stale. Outside a scope every call serialises afresh.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["canonical_json", "request_scope"]

_MEMO: ContextVar[dict[int, tuple[Any, str]] | None] = ContextVar("docpipe_emulator_canonical", default=None)


@contextmanager
def request_scope() -> Iterator[None]:
    """Remember canonical texts for the rest of this request (this task's context) only."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def canonical_json(value: Any) -> str:
    """`json.dumps(value, sort_keys=True, default=str)`, computed once per object within a request scope."""
    memo = _MEMO.get()
    if memo is None:
        return json.dumps(value, sort_keys=True, default=str)
    remembered = memo.get(id(value))
    if remembered is not None and remembered[0] is value:
        return remembered[1]
    text = json.dumps(value, sort_keys=True, default=str)
    memo[id(value)] = (value, text)
    return text
