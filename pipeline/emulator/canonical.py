"""Canonical JSON (and other per-request results) of the parts of a request read more than once.

A structured-output schema is serialised to count its tokens (validation's context check, then
caching), to key its prompt-cache prefix, and to recognise a schema already checked; the rendered
prompt is read by validation's token count and by prompt caching: once per request is enough. The
memo lives as long as one request (`request_scope()`, entered by the Messages and count_tokens
handlers, each an asyncio task with its own context). It holds each object with its result, so an
id is never taken for another object's, nothing outlives the request, and a body changed between
requests can never be read stale. Outside a scope every call computes afresh.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

__all__ = ["canonical_json", "remembered", "request_scope"]

T = TypeVar("T")
_MEMO: ContextVar[dict[tuple[str, int], tuple[Any, Any]] | None] = ContextVar(
    "docpipe_emulator_canonical", default=None
)


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
    return remembered("json", value, _dumps)


def remembered(kind: str, value: Any, compute: Callable[[Any], T]) -> T:
    """`compute(value)`, once per object and kind within a request scope (afresh outside one).

    What is remembered is shared: a caller must not change it."""
    memo = _MEMO.get()
    if memo is None:
        return compute(value)
    key = (kind, id(value))
    found = memo.get(key)
    if found is not None and found[0] is value:
        return cast(T, found[1])
    result = compute(value)
    memo[key] = (value, result)
    return result


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
