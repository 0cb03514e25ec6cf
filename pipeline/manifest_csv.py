"""CSV manifests: a header naming the columns, then one row per document; every value is a string.

The csv module's field size limit is process-wide; it is raised only while docpipe's reader reads a
row, and put back at once, so that no other reader in the process sees it change.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .errors import ManifestError
from .refs import RESERVED_COLUMNS, DocumentRef, ManifestRows, open_binary, open_text

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

__all__ = ["CSV_FIELD_LIMIT", "csv_header", "csv_metadata_columns", "read_csv"]

UTF8_CHECK_CHUNK_BYTES = 1 << 20
CSV_DELIMITERS = (",", ";", "\t")
CSV_FIELD_LIMIT = 2**31 - 1  # the largest a C long holds on every platform


def check_utf8(path: Path) -> None:
    """Raise ManifestError naming the first line of a CSV manifest that is not UTF-8.

    A CSV manifest is read through a text decoder that works in chunks: left to it, a bad byte
    would stop the run midway, after documents were sent, and be blamed on the line where its
    chunk began. One streamed pass finds it first, before any document, on its own line.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    with open_binary(path) as handle:
        while True:
            chunk = handle.read(UTF8_CHECK_CHUNK_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:  # exc.object: this chunk after the few bytes the decoder held back
                line = lines_before + exc.object.count(b"\n", 0, exc.start) + 1
                raise ManifestError("not UTF-8 text; save the manifest as UTF-8", path=path, line=line) from None
            if not chunk:
                return
            lines_before += chunk.count(b"\n")


def csv_header(path: Path, handle: IO[str]) -> tuple[CsvReader, list[str], int]:
    """(reader positioned after the header, header names, the header's last line number)."""
    check_utf8(path)
    try:
        first_line = handle.readline()
        handle.seek(0)
    except UnicodeDecodeError:
        raise ManifestError("not UTF-8 text; save the manifest as UTF-8", path=path, line=1) from None
    delimiter = max(CSV_DELIMITERS, key=lambda candidate: (first_line.count(candidate), candidate == ","))
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = _next_row(reader)
        while header is not None and not header:
            header = _next_row(reader)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read the header: {exc}", path=path, line=1) from None
    if header is None:
        raise ManifestError("empty manifest: no header and no rows", path=path)
    names = [name.strip() for name in header]
    if "id" not in names:
        raise ManifestError(
            f"no 'id' column in the header (columns: {', '.join(names)})", path=path, line=reader.line_num
        )
    if "" in names:
        column = names.index("") + 1
        raise ManifestError(f"column {column} of the header has no name", path=path, line=reader.line_num)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ManifestError(f"column {duplicates[0]!r} appears twice in the header", path=path, line=reader.line_num)
    return reader, names, reader.line_num


def read_csv(path: Path) -> Iterator[DocumentRef]:
    with open_text(path) as handle:
        reader, header, last_line = csv_header(path, handle)
        rows = ManifestRows(path, "line")
        id_index = header.index("id")
        metadata_names = [name for name in header if name not in RESERVED_COLUMNS]
        any_rows = False
        while True:
            number = last_line + 1  # a quoted field can span lines: a row is named by its first line
            malformed: str | None = None
            try:
                row = _next_row(reader)
            except csv.Error as exc:
                row, malformed = [], f"malformed CSV row: {exc}"
            except UnicodeDecodeError:
                raise ManifestError("not UTF-8 text; save the manifest as UTF-8", path=path, line=number) from None
            if row is None:
                break
            last_line = reader.line_num
            if malformed is not None:
                any_rows = True
                yield rows.failed(number, malformed)
            elif not row:
                continue
            elif len(row) != len(header):
                any_rows = True
                known_id = row[id_index].strip() if id_index < len(row) else ""
                reason = f"has {len(row)} fields, the header has {len(header)}"
                yield rows.failed(
                    number, f"{reason} (id {known_id!r})" if known_id else reason, doc_id=known_id or None
                )
            else:
                any_rows = True
                fields = {name: (value if value != "" else None) for name, value in zip(header, row, strict=True)}
                yield rows.ref(number, fields, {name: fields[name] for name in metadata_names}, None)
        if not any_rows:
            raise ManifestError("empty manifest: a header but no rows", path=path)


def csv_metadata_columns(path: Path) -> dict[str, str]:
    """Every column but id, path and text, as strings: CSV has no other type."""
    with open_text(path) as handle:
        _, header, _ = csv_header(path, handle)
    return {name: "string" for name in header if name not in RESERVED_COLUMNS}


def _next_row(reader: CsvReader) -> list[str] | None:
    """The next row, read under docpipe's field size limit; the process's limit is put back at once.

    The csv module refuses fields over 128 KiB by default, and an inline document may be longer: its
    length is the job's business (too_long), not a malformed row.
    """
    previous = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        return next(reader, None)
    finally:
        csv.field_size_limit(previous)
