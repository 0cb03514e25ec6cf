"""Documents in: a folder walked lazily, a manifest (JSONL, CSV, Parquet) streamed row by row, or one document.

Design. Inputs can be far larger than memory, so nothing here builds a list of documents: a folder
is walked one directory listing at a time, a manifest is read a block of lines (or one Parquet batch)
at a time, and the only state that grows with the input is one 8-byte digest per manifest id, kept
to catch duplicates. This module is the entry (`open_source`, `read_manifest`); the walk is in
`folders.py`, each manifest format in `manifest_jsonl.py` (with `manifest_jsonl_blocks.py`, which
reads it a block at a time), `manifest_csv.py` and `manifest_parquet.py`, the rules a manifest row
must meet to become a ref in `refs.py`, and the batches the preparation takes in `batches.py`.
A single document file given as the input (`report.docx`, any supported document type but `.csv`,
which names a manifest) is read as a walk of its folder would read it were it alone there: one
ref, its id and source the file's name.
Nothing here changes process-wide state: the csv module's field size limit is raised only while
docpipe's reader reads a row (`manifest_csv.py`).

Problems come in two sizes:

- the whole input is unusable (missing, unreadable, no `id` column, empty): `ManifestError`, or
  `ConfigError` for a missing folder, raised when iteration starts, before any document;
- one document is unusable (a malformed line, a duplicate id, a missing file, a symlink leaving the
  input folder, a value Python or the output cannot hold): a `DocumentRef` whose `error` is set.
  The runner records an error row for it and goes on; such a ref never has a `path` or `text`.

Row problems are `DocumentError`s naming the manifest and its line (`manifest.jsonl line 4: ...`);
problems reaching a file (not found, escaping the folder, broken symlink) are `ExtractionError`s. An
error ref's `doc_id` is the row's id when it is valid and seen for the first time, otherwise
`<manifest name>:<line>`, so an error row never shadows another row's id.

Manifest metadata (every column but `id`, `path` and `text`) is typed so the Parquet writer can fix
its schema before the first row: Parquet keeps its own types, CSV is all strings, and in JSONL each
column's type is set by its first non-null value (see `manifest_metadata_columns`).

Text that UTF-8 cannot encode. Every string a ref carries (id, source, text, metadata) can be sent
to the API and written to the journal and to Parquet: no lone surrogate (`pipeline.surrogates`).
Such strings reach docpipe as JSON `\ud800` escapes (JSONL), as Parquet strings whose bytes are
not UTF-8, and as file names whose bytes are not UTF-8 (CSV manifests are decoded strictly, and a
non-UTF-8 line is a `ManifestError`). The rule, field by field:

- a manifest `id` that is not valid text, or longer than `MAX_ID_CHARS`, is refused: an error ref
  under `<manifest name>:<line>`. Repairing it could make it collide with another id, or change
  between releases, and the id is what makes a document done;
- inline `text` and metadata values that are not valid text make the row an error ref under its
  id (a bad metadata value is left out of the row); a JSONL first row whose column name is not
  valid text is a `ManifestError`, as it would be an output column;
- a file name (a folder walk, or a manifest `path`) with bytes that are not UTF-8 is read under its
  real name and shown, in `doc_id` and `source`, with each such byte escaped: `caf\xe9.txt`.
  Should the escaped form name another file too, a short hash of the real name is appended. A
  manifest `path` holding any other surrogate names no file: an error ref;
- error messages show any surrogate escaped (`DocumentError`).
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from .batches import DocumentBatch, DocumentStream
from .errors import ConfigError, ManifestError, PipelineError
from .extract import SUPPORTED_SUFFIXES
from .folders import walk_folder
from .manifest_csv import csv_metadata_columns, read_csv
from .manifest_jsonl import jsonl_metadata_columns
from .manifest_parquet import parquet_file, parquet_metadata_columns, read_parquet
from .refs import MAX_ID_CHARS, DocumentRef
from .surrogates import escape_surrogates

__all__ = [
    "DOCUMENT_SUFFIXES",
    "MANIFEST_SUFFIXES",
    "MAX_ID_CHARS",
    "DocumentRef",
    "count_documents",
    "manifest_metadata_columns",
    "open_source",
    "read_manifest",
    "walk_folder",
]

MANIFEST_SUFFIXES: frozenset[str] = frozenset({".jsonl", ".ndjson", ".csv", ".parquet"})
DOCUMENT_SUFFIXES: frozenset[str] = SUPPORTED_SUFFIXES - MANIFEST_SUFFIXES  # an input file read as one document
COUNT_CHUNK_BYTES = 8 << 20
_SPACE_BYTES = b" \t\n\r\x0b\x0c"  # what bytes.isspace() takes for space


def open_source(
    input_path: Path,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skipped: Counter[str] | None = None,
) -> Iterator[DocumentRef]:
    """The documents of an input: a folder is walked, a document file is one document, anything else a manifest.

    `skipped` counts, by extension, the files of a folder that are not a supported document type.
    """
    if input_path.is_dir():
        return walk_folder(input_path, include=include, exclude=exclude, skipped=skipped)
    if include or exclude:
        raise ConfigError(f"--include and --exclude apply to a folder input, and {input_path} is not a folder")
    if is_document_file(input_path):
        return iter([single_document(input_path)])
    return read_manifest(input_path)


def is_document_file(path: Path) -> bool:
    """Whether an input names one document (by its suffix) rather than a folder or a manifest."""
    return path.suffix.lower() in DOCUMENT_SUFFIXES and not path.is_dir()


def single_document(path: Path) -> DocumentRef:
    """The ref of one document given as the input: its id and source are its file name.

    A file that cannot be read (missing, a FIFO, unreadable) is reported by its extraction, as an
    error row, as a walked file's would be.
    """
    shown = escape_surrogates(path.name)
    return DocumentRef(doc_id=shown, source=shown, path=Path(os.path.abspath(path)), text=None, metadata={})


def count_documents(input_path: Path, *, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> int | None:
    """How many refs `open_source` will yield, quickly, for a progress bar's total (None when unknown).

    A folder is walked and a Parquet manifest's metadata read, exactly. JSONL and CSV manifests are
    counted by their non-blank lines, without parsing (that would cost as much as a run over done
    documents): a CSV cell holding a line break makes the count a little high.
    """
    if is_document_file(input_path):
        return 1
    try:
        suffix = None if input_path.is_dir() else _manifest_suffix(input_path)
        if suffix == ".parquet":
            return int(parquet_file(input_path).metadata.num_rows)
        if suffix in (".jsonl", ".ndjson", ".csv"):
            with open(input_path, "rb") as handle:
                lines = count_non_blank_lines(handle)
            return max(0, lines - (1 if suffix == ".csv" else 0))
        return sum(1 for _ in open_source(input_path, include=include, exclude=exclude))
    except (OSError, PipelineError):
        return None


def count_non_blank_lines(handle: BinaryIO, chunk_bytes: int = COUNT_CHUNK_BYTES) -> int:
    """The lines of a file that hold more than whitespace, as `sum(not line.isspace() ...)` counts them.

    Read in chunks, with the line ends found by numpy: a blank line is empty or starts with a space
    byte, so only lines that start with one are looked at in Python (none, in a usual manifest). A
    million-line manifest is counted in a fraction of a second, not a second and more.
    """
    import numpy as np

    spaces = np.zeros(256, dtype=bool)
    spaces[list(_SPACE_BYTES)] = True
    lines = 0
    pending_blank = True  # whether the line begun in an earlier chunk is whitespace so far
    while chunk := handle.read(chunk_bytes):
        data = np.frombuffer(chunk, dtype=np.uint8)
        ends = np.flatnonzero(data == 0x0A)
        if not len(ends):
            pending_blank = pending_blank and chunk.isspace()
            continue
        lines += not (pending_blank and _blank(chunk[: ends[0]]))  # the line the chunk ends
        starts = ends[:-1] + 1  # the lines begun and ended within the chunk
        lines += len(starts)
        for index in np.flatnonzero(spaces[data[starts]]).tolist():
            lines -= _blank(chunk[starts[index] : ends[index + 1]])
        pending_blank = _blank(chunk[ends[-1] + 1 :])
    return lines + (not pending_blank)  # a last line without its line break


def _blank(line: bytes) -> bool:
    return not line or line.isspace()


def read_manifest(path: Path) -> DocumentStream:
    """The documents listed in a JSONL/NDJSON, CSV or Parquet manifest, one ref per row, streamed.

    Each row has an `id` and exactly one of `path` (relative to the manifest's folder, and inside
    it) or inline `text`; every other column is metadata. A whole-manifest problem raises
    `ManifestError` when iteration starts; a row's problem becomes that row's error ref. The
    stream's `pieces()` keep a JSONL manifest's blocks as batches (`manifest_jsonl_blocks.py`).
    """
    return DocumentStream(_manifest_pieces(path))


def _manifest_pieces(path: Path) -> Iterator[DocumentRef | DocumentBatch]:
    suffix = _manifest_suffix(path)
    if suffix == ".csv":
        yield from read_csv(path)
    elif suffix == ".parquet":
        yield from read_parquet(path)
    else:
        from .manifest_jsonl_blocks import read_jsonl_blocks  # pyarrow: paid when a JSONL manifest is read

        yield from read_jsonl_blocks(path)


def manifest_metadata_columns(path: Path) -> dict[str, str]:
    """Metadata column name -> "string" | "int64" | "float64" | "bool"; `{}` for a folder or one document.

    Parquet and CSV need only the schema or header. A JSONL column takes the type of its first
    non-null value, exactly as `read_manifest` checks it; when the first row holds a null, the
    following lines are read (streamed) until a value appears, and a column that is null
    throughout is "string".
    """
    if path.is_dir() or is_document_file(path):
        return {}
    suffix = _manifest_suffix(path)
    if suffix == ".csv":
        return csv_metadata_columns(path)
    if suffix == ".parquet":
        return parquet_metadata_columns(path)
    return jsonl_metadata_columns(path)


def _manifest_suffix(path: Path) -> str:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ManifestError(
            "not found; give a folder of documents, a manifest (.csv, .jsonl, .ndjson, .parquet) or one document",
            path=path,
        ) from None
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise ManifestError("is a folder, not a manifest; walk it as a folder input instead", path=path)
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(
            f"unsupported manifest type {suffix or '(no suffix)'!r}; use .csv, .jsonl, .ndjson or .parquet, "
            f"give a folder of documents, or one document ({', '.join(sorted(DOCUMENT_SUFFIXES))})",
            path=path,
        )
    return suffix
