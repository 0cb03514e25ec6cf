"""Document details in a job's instructions: `{customer}` names a manifest column, `{file_name}` a file's.

A job's instructions may name, in braces, a detail of each document: a manifest column (`{customer}`,
`{priority}`), or one of `BUILT_IN` (`{doc_id}`, `{file_name}`, `{file_size}`, `{modified}`). The
instructions are not filled in: they stay one text, the cached prefix every request shares. Each
request carries its document's values instead, in a `<document_details>` block before the document,
and the system prompt says where to find them (`requests.py`). Only `{identifier}` is a detail:
other braces (a JSON example in the instructions) are text.

A detail the input cannot give (a column the manifest lacks, a manifest column named in a folder run)
is refused before anything is sent (`check`), naming it and what the input has.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import ConfigError

__all__ = ["BUILT_IN", "check", "details", "placeholders"]

PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
BUILT_IN = {
    "doc_id": "the document's id",
    "file_name": "the file's name (or the manifest row's source)",
    "file_size": "the file's size in bytes",
    "modified": "the file's modification date (YYYY-MM-DD)",
}
MAX_VALUE_CHARS = 500  # a detail is a short value; a long text belongs in the document


def placeholders(instructions: str) -> list[str]:
    """The details the instructions name, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(instructions)))


def check(instructions: str, columns: Collection[str], *, input_name: str) -> None:
    """Refuse a detail the input cannot give: `ConfigError` naming it, and what the input has."""
    missing = [name for name in placeholders(instructions) if name not in BUILT_IN and name not in columns]
    if missing:
        available = ", ".join([*sorted(columns), *BUILT_IN]) or "none"
        raise ConfigError(
            f"the job's instructions name {', '.join('{' + name + '}' for name in missing)}, which {input_name} "
            f"does not have: no such manifest column; what it has: {available}. To write braces as text, "
            f"double them: {{{{{missing[0]}}}}}"
        )


def details(
    names: list[str], *, doc_id: str, source: str, metadata: Mapping[str, Any], size: int | None,
    mtime_ns: int | None,
) -> list[tuple[str, str]]:
    """The values of `names` for one document, as text (an unknown value is said to be so)."""
    built_in: dict[str, Any] = {
        "doc_id": doc_id,
        "file_name": source.rsplit("/", 1)[-1],
        "file_size": size,
        "modified": datetime.fromtimestamp(mtime_ns / 1e9, tz=UTC).date().isoformat() if mtime_ns else None,
    }
    values = []
    for name in names:
        value = metadata[name] if name in metadata else built_in.get(name)
        text = "(not given)" if value is None else str(value)
        values.append((name, text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."))
    return values
