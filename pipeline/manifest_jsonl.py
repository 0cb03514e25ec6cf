"""JSONL manifests: one JSON object a line, streamed; the first row sets the columns, each column's
first non-null value its type."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import ManifestError
from .refs import INT64_MAX, INT64_MIN, KIND_NAMES, RESERVED_COLUMNS, DocumentRef, ManifestRows, open_binary, type_name
from .surrogates import is_utf8, utf8_problem

__all__ = [
    "JsonlReading",
    "JsonlSchema",
    "jsonl_first_row",
    "jsonl_lines",
    "jsonl_metadata_columns",
    "parse_line",
    "read_jsonl",
]


class JsonlSchema:
    """The metadata columns of a JSONL manifest (from its first row) and their types (first non-null value)."""

    def __init__(self, first_row: Mapping[str, Any]) -> None:
        self.established: dict[str, str | None] = {key: None for key in first_row if key not in RESERVED_COLUMNS}
        self.allowed = frozenset(self.established).union(RESERVED_COLUMNS)
        self.pending = len(self.established)
        self._settled_types: tuple[tuple[str, type], ...] | None = None

    @property
    def settled(self) -> bool:
        return self.pending == 0

    def kinds(self) -> dict[str, str]:
        return {name: kind or "string" for name, kind in self.established.items()}

    def check(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The row's metadata, converted to its column types, and the first problem found (or None)."""
        if self.pending == 0 and self.allowed.issuperset(row):
            metadata = self._plain(row)
            if metadata is not None:
                return metadata, None
        return self._check(row)

    def _plain(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """The metadata of a row whose every value is null or of its column's own type and fits it, else None.

        Only the common row: anything to convert, refuse or report goes through `_check`.
        """
        metadata: dict[str, Any] = {}
        for name, expected in self._types():
            value: Any = row.get(name)
            kind = type(value)
            if kind is not expected:
                if value is not None:
                    return None
            elif kind is str:
                if not value.isascii():
                    return None
            elif kind is int and not INT64_MIN <= value <= INT64_MAX:
                return None
            metadata[name] = value
        return metadata

    def _types(self) -> tuple[tuple[str, type], ...]:
        if self._settled_types is None:
            self._settled_types = tuple((name, _PY_TYPES[kind or "string"]) for name, kind in self.established.items())
        return self._settled_types

    def _check(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        problem: str | None = None
        for key in row:
            if key not in self.allowed:
                problem = f"column {key!r} is not in the manifest's first row"
                break
        metadata: dict[str, Any] = {}
        for name, established in self.established.items():
            value = row.get(name)
            kind = _JSON_KINDS.get(type(value), "nested")
            if kind == "nested":
                kind, value = "string", json.dumps(value, ensure_ascii=False, sort_keys=True)
            if type(value) is str and not value.isascii() and (text_problem := utf8_problem(value)) is not None:
                problem = problem or f"column {name!r} is not valid Unicode text: it holds {text_problem}"
                kind = value = None  # left out, as a null would be: it sets no type and breaks none
            if kind is None or kind == established:
                pass
            elif established is None:
                self.established[name] = kind
                self.pending -= 1
            elif kind == "int64" and established == "float64" and isinstance(value, int):
                whole: int = value
                try:
                    value = float(whole)
                except OverflowError:
                    bits = whole.bit_length()
                    problem = problem or f"column {name!r}: an integer of {bits} bits does not fit a float"
                    value = None
            else:
                problem = problem or (
                    f"column {name!r} should be {KIND_NAMES[established]} like earlier rows, got {KIND_NAMES[kind]}"
                )
                value = None
            if kind == "int64" and type(value) is int and not INT64_MIN <= value <= INT64_MAX:
                shown = str(value) if value.bit_length() <= 256 else f"an integer of {value.bit_length()} bits"
                problem = problem or f"column {name!r}: {shown} does not fit a 64-bit integer"
                value = None
            metadata[name] = value
        return metadata, problem


_JSON_DECODER = json.JSONDecoder()
_SCAN: Any = _JSON_DECODER.scan_once  # type: ignore[attr-defined]  # raw_decode()'s scanner, without its frame
_BLANK = object()
# The metadata kind of each JSON value type; objects and arrays are "nested" and stored as JSON text.
_JSON_KINDS: dict[type, str | None] = {type(None): None, bool: "bool", int: "int64", float: "float64", str: "string"}
_PY_TYPES: dict[str, type] = {"bool": bool, "int64": int, "float64": float, "string": str}


def jsonl_lines(handle: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value or _Malformed) for every non-blank line (see `parse_line`)."""
    for number, raw in enumerate(handle, start=1):
        parsed = parse_line(number, raw)
        if parsed is not _BLANK:
            yield number, parsed


def parse_line(number: int, raw: bytes) -> Any:
    """One line's value, `_Malformed` saying why there is none, or `_BLANK`.

    A line that parses as it stands (UTF-8, a value from its first character, nothing but
    whitespace after it) takes the scanner alone; any other goes through `_parse_line`, which
    says what is wrong with it (or that it is blank).
    """
    if number > 1:
        try:
            line = raw.decode()
            parsed, end = _SCAN(line, 0)
            if end == len(line) or line[end:].isspace():
                return parsed
        except Exception:
            pass
    return _parse_line(number, raw)


def _parse_line(number: int, raw: bytes) -> Any:
    """The value of one line, `_Malformed` saying why there is none, or `_BLANK`."""
    if raw.isspace():
        return _BLANK
    try:
        line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        if line[0].isspace():
            return _JSON_DECODER.decode(line)
        parsed, end = _JSON_DECODER.raw_decode(line)  # without decode()'s two whitespace scans
        if end != len(line) and not line[end:].isspace():
            raise json.JSONDecodeError("Extra data", line, end)
        return parsed
    except UnicodeDecodeError:
        return _Malformed("not valid UTF-8; save the manifest as UTF-8")
    except json.JSONDecodeError as exc:
        column = min(exc.pos, len(exc.doc.rstrip("\r\n"))) + 1
        return _Malformed(f"malformed JSON: {exc.msg} (column {column})")
    except ValueError:  # int() refuses a number longer than sys.get_int_max_str_digits()
        return _Malformed(f"a number has more than {sys.get_int_max_str_digits():,} digits")
    except RecursionError:
        return _Malformed("malformed JSON: nested too deeply")


@dataclass(frozen=True, slots=True)
class _Malformed:
    reason: str


def jsonl_first_row(path: Path, lines: Iterator[tuple[int, Any]]) -> tuple[int, JsonlSchema, dict[str, Any]]:
    first = next(lines, None)
    if first is None:
        raise ManifestError("empty manifest: no rows", path=path)
    number, row = first
    if isinstance(row, _Malformed):
        raise ManifestError(
            f"the first row sets the manifest's columns but is unreadable: {row.reason}", path=path, line=number
        )
    if not isinstance(row, dict):
        raise ManifestError(f"the first row must be a JSON object, got {type_name(row)}", path=path, line=number)
    if "id" not in row:
        raise ManifestError("the first row has no 'id' field; every row needs an id", path=path, line=number)
    for key in row:
        if not is_utf8(key):
            raise ManifestError(
                f"column name {key!r} is not valid Unicode text: it holds {utf8_problem(key)}; the first row "
                "sets the output's columns",
                path=path,
                line=number,
            )
    return number, JsonlSchema(row), row


class JsonlReading:
    """One pass over the rows of a JSONL manifest after its first, a line at a time."""

    def __init__(self, path: Path, schema: JsonlSchema) -> None:
        self.schema = schema
        self.rows = ManifestRows(path, "line")

    def line_ref(self, number: int, raw: bytes) -> DocumentRef | None:
        """The ref of one line (with its newline, if it has one); None for a blank line."""
        row = parse_line(number, raw)
        if type(row) is dict:
            metadata, problem = self.schema.check(row)
            return self.rows.ref(number, row, metadata, problem)
        if row is _BLANK:
            return None
        if isinstance(row, _Malformed):
            return self.rows.failed(number, row.reason)
        return self.rows.failed(number, f"not a JSON object (got {type_name(row)})")


def read_jsonl(path: Path) -> Iterator[DocumentRef]:
    """A JSONL manifest's refs, read line by line (`manifest_jsonl_blocks.py` reads it in blocks, to the same refs)."""
    with open_binary(path) as handle:
        lines = jsonl_lines(handle)
        first_number, schema, first_row = jsonl_first_row(path, lines)
        reading = JsonlReading(path, schema)
        metadata, problem = schema.check(first_row)
        yield reading.rows.ref(first_number, first_row, metadata, problem)
        for number, raw in enumerate(handle, start=first_number + 1):
            ref = reading.line_ref(number, raw)
            if ref is not None:
                yield ref


def jsonl_metadata_columns(path: Path) -> dict[str, str]:
    """Each metadata column's type: its first non-null value's, read (streamed) until every column has one."""
    with open_binary(path) as handle:
        lines = jsonl_lines(handle)
        _, schema, first_row = jsonl_first_row(path, lines)
        schema.check(first_row)
        for _, parsed in lines:
            if not schema.settled and isinstance(parsed, dict):
                schema.check(parsed)
            if schema.settled:
                break
    return schema.kinds()
