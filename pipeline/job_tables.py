"""Reading a job file's TOML tables: a key of the expected type, within its range, or a JobError naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import JobError

__all__ = ["check_keys", "choice", "expect", "positive_int", "seconds", "subtable"]


def expect(
    table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, path: Path | None, what: str
) -> Any:
    """`table[key]` when it is of `kind` (a bool is no number here), else a JobError saying `what` was expected."""
    if key not in table:
        raise JobError(f"missing: expected {what}", path=path, key=f"{where}{key}")
    value = table[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise JobError(f"expected {what}, got {value!r}", path=path, key=f"{where}{key}")
    if not isinstance(value, kind):
        raise JobError(f"expected {what}, got {type(value).__name__} {value!r}", path=path, key=f"{where}{key}")
    return value


def check_keys(table: dict[str, Any], allowed: frozenset[str], where: str, path: Path | None) -> None:
    """A JobError for the first key of `table` that is not `allowed`, listing those that are."""
    for key in table:
        if key not in allowed:
            raise JobError(
                f"unknown key; expected one of: {', '.join(sorted(allowed))}", path=path, key=f"{where}{key}"
            )


def positive_int(table: dict[str, Any], key: str, where: str, path: Path | None) -> int | None:
    """An integer above 0 at `key`, or None when the key is absent."""
    if key not in table:
        return None
    value = expect(table, key, int, where, path, "a positive integer")
    if value <= 0:
        raise JobError(f"expected a positive integer, got {value}", path=path, key=f"{where}{key}")
    return int(value)


def seconds(table: dict[str, Any], key: str, default: float, where: str, path: Path | None) -> float:
    """A number of seconds, 0 or more, at `key`; `default` when the key is absent."""
    if key not in table:
        return default
    value = float(expect(table, key, (int, float), where, path, "a number of seconds >= 0"))
    if value < 0:
        raise JobError(f"expected a number of seconds >= 0, got {value:g}", path=path, key=f"{where}{key}")
    return value


def choice(
    table: dict[str, Any], key: str, choices: tuple[str, ...], default: str, where: str, path: Path | None
) -> str:
    """One of `choices` at `key`; `default` when the key is absent."""
    if key not in table:
        return default
    value = table[key]
    if value not in choices:
        raise JobError(
            f"expected one of {', '.join(map(repr, choices))}, got {value!r}", path=path, key=f"{where}{key}"
        )
    return str(value)


def subtable(data: dict[str, Any], name: str, allowed: frozenset[str], path: Path | None) -> dict[str, Any]:
    """An optional table (`[retry]`, `[limits]`), empty when absent, its keys checked."""
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise JobError(f"expected a [{name}] table", path=path, key=name)
    check_keys(table, allowed, f"{name}.", path)
    return table
