"""Canonical JSON of the parts of a request that the emulator reads more than once.

A structured-output schema is serialised to count its tokens (validation's context check, then
caching), to key its prompt-cache prefix, and to recognise a schema already checked: once per
request is enough. The memo holds the object with its text, so an id is never taken for another
object's while it is remembered. Request bodies are parsed per request and never changed after
validation, which is what makes a text computed once stay right.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

__all__ = ["canonical_json"]

MEMO_SIZE = 256
_MEMO: OrderedDict[int, tuple[Any, str]] = OrderedDict()


def canonical_json(value: Any) -> str:
    """`json.dumps(value, sort_keys=True, default=str)`, computed once per object while it is remembered."""
    key = id(value)
    remembered = _MEMO.get(key)
    if remembered is not None and remembered[0] is value:
        return remembered[1]
    text = json.dumps(value, sort_keys=True, default=str)
    _MEMO[key] = (value, text)
    if len(_MEMO) > MEMO_SIZE:
        _MEMO.popitem(last=False)
    return text
