"""JSONL manifests read in blocks that pyarrow parses, to the refs a line-by-line reading gives.

Read line by line with Python's json, a million-row manifest costs about 15 s of CPU before the
first document is sent, and again on every rerun over it. So after the first row (which sets the
columns, `manifest_jsonl.py`), lines are read in blocks (64 KiB at first, doubling to 1 MiB, so that
the first documents start at once) that pyarrow's JSON reader parses on two threads of their own, under
an explicit schema: the first row's columns at their types, a column with no value yet as null.
That reader is stricter than the rules here, never looser: a block holding anything the two could
read differently (a line that is not UTF-8 or does not open an object, a lone surrogate, a value of
another type than its column's, a column the first row lacks, a key given twice, two objects on
one line, a number out of range) fails it, and the block is read line by line
(`manifest_jsonl.JsonlReading`). In a block that parses, a row is *inline* when its columns show it
makes a valid ref: an id of 1 to MAX_ID_CHARS characters, not all white space, seen for the first
time; inline text that is not all white space and holds no carriage return; no path; no float of
-0 or infinity (where the two readers part). Its id and the hash of its text come from those
columns, and its ref is built from them only when asked for (`batches.DocumentBatch`). Every other
row of the block is read line by line, in order. Tests hold both readings to the same refs.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from .batches import DocumentBatch
from .manifest_jsonl import JsonlReading, JsonlSchema, jsonl_first_row, jsonl_lines
from .refs import MAX_ID_CHARS, RESERVED_COLUMNS, DocumentRef, open_binary

__all__ = ["PYTHON_WHITESPACE", "read_jsonl_blocks"]

FIRST_BLOCK_BYTES = 64 << 10
MAX_BLOCK_BYTES = 1 << 20
BLOCKS_AHEAD = 2  # blocks parsed ahead of the one in use
# Parsing a block (about 3 us a document) is slower than preparing it (hashing and asking the ledger,
# about 2 us): one parser thread held a rerun over a million documents to its pace. Two parse the
# blocks ahead side by side and the preparation thread becomes the slower; more would add nothing.
PARSER_THREADS = 2
# Every character str.isspace() holds to be white space; the tests check the list against Python's.
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# A value holding a character that is not white space (an RE2 class, for pyarrow.compute).
_NOT_ALL_SPACE = "[^" + "".join(f"\\x{{{ord(char):x}}}" for char in PYTHON_WHITESPACE) + "]"
_EMPTY_SHA256 = hashlib.sha256()
_ARROW_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    None: pa.null(),
}


def read_jsonl_blocks(path: Path) -> Iterator[DocumentRef | DocumentBatch]:
    """A JSONL manifest's refs: its first row's, then a batch (or, where pyarrow refused it, a ref a line) a block."""
    with open_binary(path) as handle:
        first_line, schema, first_row = jsonl_first_row(path, jsonl_lines(handle))
        reading = JsonlReading(path, schema)
        metadata, problem = schema.check(first_row)
        yield reading.rows.ref(first_line, first_row, metadata, problem)
        for number, block, parsed in _parsed_blocks(handle, first_line, schema):
            if parsed is not None:
                yield _InlineBlock(block, number, parsed, reading)
            else:
                yield from _line_refs(reading, number, block)
            del block, parsed  # not held while the next one is read


def _line_refs(reading: JsonlReading, first_line: int, block: bytes) -> Iterator[DocumentRef]:
    starts = _line_starts(block).tolist()
    for index in range(len(starts) - 1):
        ref = reading.line_ref(first_line + index, block[starts[index] : starts[index + 1]])
        if ref is not None:
            yield ref


def _arrow_schema(schema: JsonlSchema) -> pa.Schema:
    """The columns as pyarrow's JSON reader should find them: the reserved ones, then each at its type."""
    fields = [pa.field(name, pa.string()) for name in RESERVED_COLUMNS]
    return pa.schema(fields + [pa.field(name, _ARROW_TYPES[kind]) for name, kind in schema.established.items()])


def _blocks(handle: IO[bytes], after_line: int) -> Iterator[tuple[int, bytes]]:
    """(number of its first line, whole lines) for the rest of the file, in blocks that grow to MAX_BLOCK_BYTES."""
    number, size = after_line + 1, FIRST_BLOCK_BYTES
    while block := handle.read(size):
        if not block.endswith(b"\n"):
            block += handle.readline()  # the rest of its last line (none at the end of a file without one)
        lines = block.count(b"\n")
        yield number, block
        number += lines
        size = min(size * 2, MAX_BLOCK_BYTES)
        del block  # not held while the next one is read


def _parsed_blocks(
    handle: IO[bytes], after_line: int, schema: JsonlSchema
) -> Iterator[tuple[int, bytes, _Parsed | None]]:
    """The blocks, each with pyarrow's parse of it (or None); the next blocks are parsed on threads meanwhile.

    pyarrow parses without the GIL, so a rerun hashes and checks one block while the next ones are parsed.
    A block parsed under a schema that has since settled a column is still right: that column was
    null throughout it.
    """
    with ThreadPoolExecutor(max_workers=PARSER_THREADS, thread_name_prefix="docpipe-jsonl") as parser:
        ahead: deque[tuple[int, bytes, Future[_Parsed | None]]] = deque()
        for number, block in _blocks(handle, after_line):
            ahead.append((number, block, parser.submit(_arrow_rows, block, _arrow_schema(schema))))
            del block
            if len(ahead) > BLOCKS_AHEAD:
                number, block, parsed = ahead.popleft()
                yield number, block, parsed.result()
        while ahead:
            number, block, parsed = ahead.popleft()
            yield number, block, parsed.result()


def _line_starts(block: bytes) -> np.ndarray:
    """Where each line of a block starts, and (last) where the block ends."""
    newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n")) + 1
    if len(newlines) and newlines[-1] == len(block):
        return np.concatenate(([0], newlines))
    return np.concatenate(([0], newlines, [len(block)]))


def _every_line_opens_an_object(block: bytes) -> int | None:
    """How many lines the block holds when every one of them starts with `{`, else None.

    Array operations that run without the GIL (the preparation thread hashes meanwhile); where each
    line starts is only worked out when a line must be read on its own (`_line_starts`).
    """
    data = np.frombuffer(block, dtype=np.uint8)
    opened = data[1:][data[:-1] == ord("\n")]  # the first byte of every line but the first
    if data[0] != ord("{") or not (opened == ord("{")).all():
        return None
    return len(opened) + 1


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A block as pyarrow read it: a row per line, and which rows are inline."""

    table: pa.Table
    inline: np.ndarray


def _arrow_rows(block: bytes, schema: pa.Schema) -> _Parsed | None:
    """The block parsed by pyarrow under the manifest's schema, or None when it must be read line by line.

    Only blocks whose every line opens an object go to pyarrow: it reads a line `null` as a row of
    nulls (and, alone in a block, crashes on it), where Python's json finds no object; a blank line
    is skipped by both readers but numbered by this one.
    """
    if not block.isascii() and not _is_utf8(block):
        return None  # pyarrow does not check UTF-8; each line here decides for itself
    lines = _every_line_opens_an_object(block)
    if lines is None:
        return None
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    try:  # one chunk, on this thread: the parser threads are what run beside the preparation
        read_options = pj.ReadOptions(use_threads=False, block_size=len(block) + 1)
        table = pj.read_json(pa.BufferReader(block), read_options=read_options, parse_options=options)
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != lines:  # two objects on one line
        return None
    table = table.combine_chunks()
    return _Parsed(table, _inline_rows(table))


def _is_utf8(block: bytes) -> bool:
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _any_byte(strings: pa.ChunkedArray, byte: int) -> bool:
    """Whether any of the strings holds this byte (a scan of their data, faster than a search per string)."""
    return any(
        chunk.buffers()[2] is not None and bool((np.frombuffer(chunk.buffers()[2], dtype=np.uint8) == byte).any())
        for chunk in strings.chunks
    )


def _inline_rows(table: pa.Table) -> np.ndarray:
    """Which rows make a valid ref by their columns alone (see the module docstring)."""
    doc_ids, texts, paths = table.column("id"), table.column("text"), table.column("path")
    inline = pc.match_substring_regex(doc_ids, _NOT_ALL_SPACE)
    inline = pc.and_(inline, pc.match_substring_regex(texts, _NOT_ALL_SPACE))
    if _any_byte(texts, ord("\r")):
        inline = pc.and_(inline, pc.invert(pc.match_substring(texts, "\r")))
    inline = pc.and_(inline, pc.equal(pc.fill_null(paths, ""), ""))
    rows = np.asarray(pc.fill_null(inline, False).to_numpy(), dtype=bool)
    rows &= pc.utf8_length(doc_ids).to_numpy(zero_copy_only=False) <= MAX_ID_CHARS  # NaN for a null id
    for column in table.columns:
        if pa.types.is_floating(column.type):
            values = column.to_numpy()
            rows &= ~(np.signbit(values) & (values == 0))  # JSON's -0 is Python's int 0, hence 0.0; pyarrow's -0.0
            rows &= ~np.isinf(values)  # `Infinity`, or an integer too large for a float, which Python refuses
    return rows


class _InlineBlock(DocumentBatch):
    """A block of lines parsed by pyarrow; an inline row's ref is built from the columns when asked for.

    Columns and Python's json agree on every value of an inline row: pyarrow refused any value Python
    would read as another type, and a row with a float of -0 or an infinity is no inline row. The tests
    hold both ways of reading to the same refs.
    """

    def __init__(self, block: bytes, first_line: int, parsed: _Parsed, reader: JsonlReading) -> None:
        self._first_line, self._reader, self._table = first_line, reader, parsed.table
        self._doc_ids: list[str | None] = parsed.table.column("id").to_pylist()
        self._values: dict[str, list[Any]] | None = None  # the columns as Python values, once a ref is built
        refs = self._classify(parsed.inline, block)
        self._inline = [index for index, ref in enumerate(refs) if ref is None]
        super().__init__(refs)

    def _classify(self, inline: np.ndarray, block: bytes) -> list[DocumentRef | None]:
        """In order: runs of inline rows registered at once; any other row (or a repeated id) read as a line."""
        refs: list[DocumentRef | None] = [None] * len(inline)
        starts: list[int] = []  # where each line starts, worked out for the first line read on its own

        def line_ref(index: int) -> DocumentRef:
            if not starts:
                starts.extend(_line_starts(block).tolist())
            ref = self._reader.line_ref(self._first_line + index, block[starts[index] : starts[index + 1]])
            assert ref is not None  # no line of a parsed block is blank
            return ref

        start = 0
        for end in [*np.flatnonzero(~inline).tolist(), len(inline)]:
            if end > start:
                new = self._reader.rows.first_seen(self._doc_ids[start:end])  # type: ignore[arg-type]
                for offset in np.flatnonzero(~np.asarray(new, dtype=bool)).tolist():
                    refs[start + offset] = line_ref(start + offset)
            if end < len(inline):
                refs[end] = line_ref(end)
            start = end + 1
        return refs

    def inline_rows(self) -> list[int]:
        return self._inline

    def inline_ids(self, indexes: Sequence[int]) -> list[str]:
        doc_ids = self._doc_ids
        if len(indexes) == len(doc_ids):  # every row: the ids as they are
            return list(doc_ids)  # type: ignore[arg-type]  # an inline row's id is never None
        return [doc_ids[i] for i in indexes]  # type: ignore[misc]

    def inline_sha256(self, indexes: Sequence[int]) -> list[bytes]:
        texts = self._table.column("text").chunk(0)
        offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32)[texts.offset : texts.offset + len(texts) + 1]
        data, starts, empty = memoryview(texts.buffers()[2]), offsets.tolist(), _EMPTY_SHA256
        digests = []
        for i in indexes:  # a copy of an empty hash skips OpenSSL's look-up of the algorithm
            sha256 = empty.copy()
            sha256.update(data[starts[i] : starts[i + 1]])
            digests.append(sha256.digest())
        return digests

    def inline_ref(self, index: int) -> DocumentRef:
        if self._values is None:
            self._values = {name: self._table.column(name).to_pylist() for name in self._table.column_names}
        values = self._values
        metadata = {name: values[name][index] for name in self._reader.schema.established}
        doc_id: str = self._doc_ids[index]  # type: ignore[assignment]  # an inline row's id is never None
        fields = {"id": doc_id, "text": values["text"][index], "path": values["path"][index]}
        return self._reader.rows.registered_ref(self._first_line + index, fields, metadata, None, doc_id)
