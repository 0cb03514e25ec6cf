"""Documents in: a folder walked lazily, or a manifest (JSONL, CSV, Parquet) streamed row by row.

Design. Inputs can be far larger than memory, so nothing here builds a list of documents: a folder
is walked one directory listing at a time, a manifest is read one line (or one Parquet batch) at a
time, and the only state that grows with the input is one 8-byte digest per manifest id, kept to
catch duplicates.

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

import codecs
import csv
import errno
import hashlib
import json
import os
import re
import stat
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from .errors import ConfigError, DocumentError, ExtractionError, ManifestError, PipelineError
from .extract import SUPPORTED_SUFFIXES
from .surrogates import escape_surrogates, is_utf8, utf8_problem

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

__all__ = [
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
PARQUET_BATCH_ROWS = 4096
UTF8_CHECK_CHUNK_BYTES = 1 << 20
_UTF8_CHECKED: set[tuple[str, int, int]] = set()  # CSV manifests found to be UTF-8: (real path, size, mtime)
# Ids already seen are kept as 64-bit hashes, not strings (a million-row manifest): `hash()` of a
# str is a keyed 64-bit SipHash on 64-bit builds, as collision-safe here as the 8-byte BLAKE2b
# digest it replaced at a tenth of the cost; elsewhere the digest stays.
_ID_HASH_IS_64_BIT = sys.hash_info.width >= 64
CSV_DELIMITERS = (",", ";", "\t")
SPECIAL_FILE = "(not a regular file)"  # how a folder walk counts FIFOs, sockets and devices it leaves out
CSV_FIELD_LIMIT = 2**31 - 1  # the largest a C long holds on every platform
RESERVED_COLUMNS = ("id", "path", "text")
# An id names a document; one longer than a path may be (PATH_MAX) is most likely a text column read
# as the id. The prompt shows long ids shortened in any case (`requests.fence_document`).
MAX_ID_CHARS = 4096
ID_SHOWN_CHARS = 60  # how much of a refused id an error message quotes
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_KIND_NAMES = {"string": "string", "int64": "integer", "float64": "float", "bool": "boolean"}
_NEWLINES = re.compile(r"\r\n?")


class DocumentRef(NamedTuple):
    """One document to process, or the reason it cannot be (`error`).

    A named tuple rather than a frozen dataclass: a rerun over a million-row manifest makes a
    million of them, and the frozen dataclass took 0.79 µs each to build against 0.24 µs.
    """

    doc_id: str
    source: str  # path relative to the input folder / manifest folder, or "<manifest name>:<line>" for inline text
    path: Path | None  # absolute path to read; None for inline text and for error refs
    text: str | None  # inline text from the manifest
    metadata: dict[str, Any]  # every other manifest column, passed through
    error: DocumentError | None = None  # a row-level problem: the runner records an error row for it


def open_source(
    input_path: Path,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skipped: Counter[str] | None = None,
) -> Iterator[DocumentRef]:
    """The documents of an input: a folder is walked, anything else is read as a manifest.

    `skipped` counts, by extension, the files of a folder that are not a supported document type.
    """
    if input_path.is_dir():
        return walk_folder(input_path, include=include, exclude=exclude, skipped=skipped)
    if include or exclude:
        raise ConfigError(f"--include and --exclude apply to a folder input, and {input_path} is not a folder")
    return read_manifest(input_path)


def count_documents(input_path: Path, *, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> int | None:
    """How many refs `open_source` will yield, quickly, for a progress bar's total (None when unknown).

    A folder is walked and a Parquet manifest's metadata read, exactly. JSONL and CSV manifests are
    counted by their non-blank lines, without parsing (that would cost as much as a run over done
    documents): a CSV cell holding a line break makes the count a little high.
    """
    try:
        suffix = None if input_path.is_dir() else _manifest_suffix(input_path)
        if suffix == ".parquet":
            return int(_parquet_file(input_path).metadata.num_rows)
        if suffix in (".jsonl", ".ndjson", ".csv"):
            with open(input_path, "rb") as handle:
                lines = sum(1 for line in handle if not line.isspace())
            return max(0, lines - (1 if suffix == ".csv" else 0))
        return sum(1 for _ in open_source(input_path, include=include, exclude=exclude))
    except (OSError, PipelineError):
        return None


# -- folders ---------------------------------------------------------------------------------------


def walk_folder(
    root: Path, *, include: Sequence[str] = (), exclude: Sequence[str] = (), skipped: Counter[str] | None = None
) -> Iterator[DocumentRef]:
    """Every regular, non-hidden file under `root`, depth first in sorted order, filtered by globs.

    `include` and `exclude` are glob patterns matched against a file's POSIX path relative to
    `root` and against its name: `*` stays within a folder, `**/` spans any number of folders
    (including none), so `*.pdf` and `**/*.pdf` both select PDFs at any depth. A folder matching
    an `exclude` pattern is not entered. Without `include`, only files of a supported type are taken
    (manifests, images, archives lying in the folder are not documents); a file an `include` pattern
    names is taken whatever its type, and an unsupported one then fails with a clear error row.
    Files left out for their type alone are counted by extension in `skipped`, when given, so a run
    can say what it did not read; FIFOs, sockets and devices are never read, and counted too.

    Symlinks are followed when they stay inside `root`: a linked file is yielded under the link's
    path, a linked folder is entered unless the walk reaches it anyway under its own name. Links
    that leave `root`, dangle or loop become error refs. No real folder is entered twice.
    """
    return _FolderWalk(root, include, exclude, skipped).refs()


class _FolderWalk:
    """One lazy walk: a stack of sorted directory listings, never the whole tree."""

    def __init__(
        self, root: Path, include: Sequence[str], exclude: Sequence[str], skipped: Counter[str] | None = None
    ) -> None:
        self.root = Path(os.path.abspath(root))
        self.skipped = skipped
        # A lone string is one pattern, not a sequence of one-character patterns.
        self.includes = [_glob_regex(pattern) for pattern in ((include,) if isinstance(include, str) else include)]
        self.excludes = [_glob_regex(pattern) for pattern in ((exclude,) if isinstance(exclude, str) else exclude)]
        self.real_root = ""
        self.followed: set[str] = set()  # real folders entered through a symlink

    def refs(self) -> Iterator[DocumentRef]:
        if not self.root.exists():
            raise ConfigError(f"input folder not found: {self.root}")
        if not self.root.is_dir():
            raise ConfigError(f"input is not a folder: {self.root}")
        self.real_root = os.path.realpath(self.root)
        stack: list[tuple[Iterator[os.DirEntry[str]], str]] = []
        listing = self._list(self.real_root, "")
        if isinstance(listing, DocumentRef):
            raise ConfigError(f"cannot read the input folder {self.root}: {listing.error}")
        stack.append((listing, ""))
        while stack:
            entries, prefix = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            if entry.name.startswith("."):
                continue
            rel = prefix + entry.name
            if entry.is_symlink():
                yield from self._symlink(entry, rel, stack)
            elif entry.is_dir(follow_symlinks=False):
                if not self._excluded_folder(rel, entry.name) and entry.path not in self.followed:
                    yield from self._enter(entry.path, rel, stack)
            elif entry.is_file(follow_symlinks=False):
                if self._selected(rel, entry.name):
                    shown = self._shown(rel)
                    yield DocumentRef(doc_id=shown, source=shown, path=Path(entry.path), text=None, metadata={})
                elif self.skipped is not None and self._left_for_its_type(rel, entry.name):
                    self.skipped[os.path.splitext(entry.name)[1].lower() or "(no extension)"] += 1
            elif self.skipped is not None and self._selected(rel, entry.name, any_type=True):
                self.skipped[SPECIAL_FILE] += 1  # a FIFO, socket or device: reading it could block the run

    def _enter(
        self, real_dir: str, rel: str, stack: list[tuple[Iterator[os.DirEntry[str]], str]]
    ) -> Iterator[DocumentRef]:
        listing = self._list(real_dir, rel)
        if isinstance(listing, DocumentRef):
            yield listing
        else:
            stack.append((listing, rel + "/"))

    def _list(self, real_dir: str, rel: str) -> Iterator[os.DirEntry[str]] | DocumentRef:
        try:
            with os.scandir(real_dir) as scan:
                return iter(sorted(scan, key=lambda entry: entry.name))
        except OSError as exc:
            reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
            return self._error(rel or ".", f"cannot read folder {rel or '.'}: {reason}", real_dir)

    def _symlink(
        self, entry: os.DirEntry[str], rel: str, stack: list[tuple[Iterator[os.DirEntry[str]], str]]
    ) -> Iterator[DocumentRef]:
        try:
            target = os.stat(entry.path)
        except OSError as exc:
            if not self._selected(rel, entry.name, any_type=True):
                return
            if exc.errno == errno.ELOOP:
                yield self._error(rel, f"symlink loop: {rel} leads back to itself", entry.path)
            elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
                yield self._error(
                    rel, f"broken symlink: {rel} points to {os.readlink(entry.path)}, which does not exist", entry.path
                )
            else:
                yield self._error(rel, f"cannot follow symlink {rel}: {exc.strerror or exc}", entry.path)
            return
        real = os.path.realpath(entry.path)
        is_folder = stat.S_ISDIR(target.st_mode)
        if is_folder and self._excluded_folder(rel, entry.name):
            return
        if not is_folder and not (stat.S_ISREG(target.st_mode) and self._selected(rel, entry.name, any_type=True)):
            return
        if (
            not is_folder
            and _inside(real, self.real_root)
            and not (self._selected(rel, entry.name) or self._selected(rel, os.path.basename(real)))
        ):
            return
        if not _inside(real, self.real_root):
            yield self._error(rel, f"symlink points outside the input folder: {rel} -> {real}", entry.path)
        elif not is_folder:
            shown = self._shown(rel)
            yield DocumentRef(doc_id=shown, source=shown, path=Path(real), text=None, metadata={})
        elif not self._walked_anyway(real):
            self.followed.add(real)
            yield from self._enter(real, rel, stack)

    def _walked_anyway(self, real_dir: str) -> bool:
        """True when the walk enters this folder under its own name, or already entered it via a link."""
        relative = PurePosixPath(Path(real_dir).relative_to(self.real_root).as_posix())
        if relative == PurePosixPath("."):
            return True
        ancestors = [self.real_root]
        prefix = ""
        normal = True
        for part in relative.parts:
            prefix = f"{prefix}/{part}" if prefix else part
            ancestors.append(os.path.join(ancestors[-1], part))
            if part.startswith(".") or self._excluded_folder(prefix, part):
                normal = False
        return normal or any(ancestor in self.followed for ancestor in ancestors)

    def _selected(self, rel: str, name: str, *, any_type: bool = False) -> bool:
        """Whether the globs select this file; without `include`, only supported types (unless `any_type`)."""
        if self.includes:
            if not _matches(self.includes, rel, name):
                return False
        elif not any_type and os.path.splitext(name)[1].lower() not in SUPPORTED_SUFFIXES:
            return False
        return not _matches(self.excludes, rel, name)

    def _left_for_its_type(self, rel: str, name: str) -> bool:
        """True when only its type kept this file out: no `include` given, no `exclude` matching."""
        return not self.includes and not _matches(self.excludes, rel, name)

    def _excluded_folder(self, rel: str, name: str) -> bool:
        return _matches(self.excludes, rel, name)

    def _error(self, rel: str, message: str, path: str) -> DocumentRef:
        shown = self._shown(rel)
        error = ExtractionError(message, document_id=shown, path=path)
        return DocumentRef(doc_id=shown, source=shown, path=None, text=None, metadata={}, error=error)

    def _shown(self, rel: str) -> str:
        """`rel` as a document id: each byte of a name that is not UTF-8 escaped (see the module docstring)."""
        if is_utf8(rel):
            return rel
        shown = escape_surrogates(rel)
        if os.path.lexists(os.path.join(self.root, shown)):  # a real file is named like the escape
            shown += "#" + hashlib.blake2b(rel.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
        return shown


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regex over POSIX paths: `*` and `?` stay within a folder, `**/` spans zero or more."""
    pattern = pattern.strip().removeprefix("./").lstrip("/")
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (close := pattern.find("]", index + 2)) != -1:
            body = pattern[index + 1 : close]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace(r"\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            index = close + 1
            continue
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out))


def _matches(patterns: Sequence[re.Pattern[str]], rel: str, name: str) -> bool:
    return any(pattern.fullmatch(rel) or pattern.fullmatch(name) for pattern in patterns)


def _inside(real: str, real_root: str) -> bool:
    return os.path.commonpath([real, real_root]) == real_root


# -- manifests -------------------------------------------------------------------------------------


def read_manifest(path: Path) -> Iterator[DocumentRef]:
    """The documents listed in a JSONL/NDJSON, CSV or Parquet manifest, one ref per row, streamed.

    Each row has an `id` and exactly one of `path` (relative to the manifest's folder, and inside
    it) or inline `text`; every other column is metadata. A whole-manifest problem raises
    `ManifestError` when iteration starts; a row's problem becomes that row's error ref.
    """
    suffix = _manifest_suffix(path)
    if suffix == ".csv":
        yield from _read_csv(path)
    elif suffix == ".parquet":
        yield from _read_parquet(path)
    else:
        yield from _read_jsonl(path)


def manifest_metadata_columns(path: Path) -> dict[str, str]:
    """Metadata column name -> "string" | "int64" | "float64" | "bool"; `{}` for a folder.

    Parquet and CSV need only the schema or header. A JSONL column takes the type of its first
    non-null value, exactly as `read_manifest` checks it; when the first row holds a null, the
    following lines are read (streamed) until a value appears, and a column that is null
    throughout is "string".
    """
    if path.is_dir():
        return {}
    suffix = _manifest_suffix(path)
    if suffix == ".csv":
        with _open_text(path) as handle:
            _, header, _ = _csv_header(path, handle)
        return {name: "string" for name in header if name not in RESERVED_COLUMNS}
    if suffix == ".parquet":
        parquet = _parquet_file(path)
        _parquet_check_schema(path, parquet)
        return {
            field.name: _arrow_kind(field.type) for field in parquet.schema_arrow if field.name not in RESERVED_COLUMNS
        }
    with _open_binary(path) as handle:
        lines = _jsonl_lines(handle)
        _, schema, first_row = _jsonl_first_row(path, lines)
        schema.check(first_row)
        for _, parsed in lines:
            if not schema.settled and isinstance(parsed, dict):
                schema.check(parsed)
            if schema.settled:
                break
    return schema.kinds()


def _manifest_suffix(path: Path) -> str:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ManifestError(
            "not found; give a folder of documents or a manifest (.csv, .jsonl, .ndjson, .parquet)", path=path
        ) from None
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise ManifestError("is a folder, not a manifest; walk it as a folder input instead", path=path)
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(
            f"unsupported manifest type {suffix or '(no suffix)'!r}; use .csv, .jsonl, .ndjson or .parquet, "
            "or give a folder of documents",
            path=path,
        )
    return suffix


def _open_binary(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except PermissionError:
        raise ManifestError("permission denied", path=path) from None
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror or exc}", path=path) from None


def _open_text(path: Path) -> IO[str]:
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except PermissionError:
        raise ManifestError("permission denied", path=path) from None
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror or exc}", path=path) from None


def _id_digest(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")


class _Rows:
    """Turns parsed manifest rows into refs: ids checked and deduplicated, paths kept in the manifest folder."""

    def __init__(self, manifest: Path, unit: str) -> None:
        self.manifest = Path(os.path.abspath(manifest))
        self.name = escape_surrogates(manifest.name)  # part of error refs' ids and of inline text's source
        self.unit = unit  # "line" or "row"
        self.folder = str(self.manifest.parent)
        self.real_folder = os.path.realpath(self.folder)
        self.seen_ids: set[int] = set()

    def failed(self, number: int, reason: str, *, doc_id: str | None = None) -> DocumentRef:
        """An error ref for a row whose fields cannot be trusted (malformed, wrong field count)."""
        return self._error(number, reason, doc_id, unique=False)

    def ref(self, number: int, fields: Mapping[str, Any], metadata: dict[str, Any], problem: str | None) -> DocumentRef:
        """The ref for one parsed row; `problem` is a metadata problem found by the format's reader."""
        raw_id = fields.get("id")
        doc_id: str | None
        if type(raw_id) is str and raw_id and raw_id.isascii() and len(raw_id) <= MAX_ID_CHARS and not raw_id.isspace():
            doc_id, id_problem = raw_id, None  # the common case, kept fast
        else:
            doc_id, id_problem = _check_id(raw_id)
        unique = False
        if doc_id is not None:
            digest = hash(doc_id) if _ID_HASH_IS_64_BIT else _id_digest(doc_id)
            if digest in self.seen_ids:
                id_problem = f"duplicate id {doc_id!r}: an earlier row has the same id"
            else:
                self.seen_ids.add(digest)
                unique = True
        problem = id_problem or problem
        if problem is not None:
            return self._error(number, problem, doc_id, unique=unique, metadata=metadata)
        assert doc_id is not None
        raw_path, text = fields.get("path"), fields.get("text")
        has_path, has_text = raw_path not in (None, ""), text not in (None, "")
        if has_path == has_text:
            which = "both path and text" if has_path else "neither path nor text"
            return self._error(number, f"has {which}; give exactly one", doc_id, unique=True, metadata=metadata)
        if has_text:
            if not isinstance(text, str):
                reason = f"text must be a string, got {_type_name(text)}"
                return self._error(number, reason, doc_id, unique=True, metadata=metadata)
            if not text.isascii() and (text_problem := utf8_problem(text)) is not None:
                reason = f"text is not valid Unicode text: it holds {text_problem}; fix the manifest"
                return self._error(number, reason, doc_id, unique=True, metadata=metadata)
            source = f"{self.name}:{number}"
            return DocumentRef(doc_id, source, None, _NEWLINES.sub("\n", text) if "\r" in text else text, metadata)
        if not isinstance(raw_path, str):
            reason = f"path must be a string, got {_type_name(raw_path)}"
            return self._error(number, reason, doc_id, unique=True, metadata=metadata)
        return self._file_ref(number, doc_id, raw_path, metadata)

    def _file_ref(self, number: int, doc_id: str, raw_path: str, metadata: dict[str, Any]) -> DocumentRef:
        if "\x00" in raw_path:
            return self._error(number, "path contains a NUL character", doc_id, unique=True, metadata=metadata)
        if not raw_path.isascii() and not _is_file_name(raw_path):
            reason = f"path is not a valid file name: it holds {utf8_problem(raw_path)}"
            return self._error(number, reason, doc_id, unique=True, metadata=metadata)
        joined = os.path.join(self.folder, raw_path)
        real = os.path.realpath(joined)
        if not _inside(real, self.real_folder):
            reason = f"path escapes the manifest folder: {raw_path}"
            return self._error(number, reason, doc_id, unique=True, metadata=metadata, path=joined, source=raw_path)
        if not os.path.exists(real):
            reason = _missing_reason(joined, raw_path)
            return self._error(number, reason, doc_id, unique=True, metadata=metadata, path=joined, source=raw_path)
        if os.path.isabs(raw_path):
            source = Path(os.path.relpath(real, self.real_folder)).as_posix()
        else:
            source = Path(os.path.normpath(raw_path)).as_posix()
        return DocumentRef(doc_id, escape_surrogates(source), path=Path(real), text=None, metadata=metadata)

    def _error(
        self,
        number: int,
        reason: str,
        doc_id: str | None,
        *,
        unique: bool,
        metadata: dict[str, Any] | None = None,
        path: str | None = None,
        source: str | None = None,
    ) -> DocumentRef:
        """An error ref; `path` (the file the row names) makes it an ExtractionError."""
        message = f"{self.name} {self.unit} {number}: {reason}"
        if path is None:
            error: DocumentError = DocumentError(message, document_id=doc_id, path=self.manifest)
        else:
            error = ExtractionError(message, document_id=doc_id, path=path)
        location = f"{self.name}:{number}"
        ref_id = doc_id if unique and doc_id is not None else location
        source = escape_surrogates(source) if source else location
        return DocumentRef(ref_id, source, path=None, text=None, metadata=metadata or {}, error=error)


def _missing_reason(joined: str, raw_path: str) -> str:
    """Why a manifest path leads to no file: it is missing, or it is a symlink that loops or dangles."""
    try:
        os.stat(joined)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"symlink loop: {raw_path} leads back to itself"
        if exc.errno == errno.EACCES:
            return f"permission denied on the way to {raw_path}"
        if exc.errno == errno.ENOTDIR:
            return f"not found: a part of {raw_path} is a file, not a folder"
        try:
            if os.path.islink(joined):
                return f"broken symlink: {raw_path} points to {os.readlink(joined)}, which does not exist"
        except OSError:
            pass  # changed under us: plainly missing
    return f"file not found: {raw_path}"


def _check_id(value: Any) -> tuple[str | None, str | None]:
    """(the id as a string, None) or (None, what is wrong with it)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, "missing id"
    if isinstance(value, str):
        if len(value) > MAX_ID_CHARS:
            return None, (
                f"id {_quoted(value)} is {len(value):,} characters long, over the {MAX_ID_CHARS:,} allowed; "
                "is the document's text in the id column?"
            )
        problem = utf8_problem(value)
        if problem is not None:
            return None, f"id {_quoted(value)} is not valid Unicode text: it holds {problem}; fix the manifest"
        return value, None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), None
    return None, f"id must be a string, got {_type_name(value)}"


def _quoted(value: str) -> str:
    """A refused value for a message: quoted, escaped, and cut short."""
    if len(value) <= ID_SHOWN_CHARS:
        return repr(value)
    return f"{value[:ID_SHOWN_CHARS]!r}..."


def _is_file_name(path: str) -> bool:
    """Whether `path` can name a file: UTF-8, or bytes that are not UTF-8 decoded as surrogates."""
    try:
        os.fsencode(path)
    except UnicodeEncodeError:
        return False
    return True


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


# -- JSONL -----------------------------------------------------------------------------------------


class _JsonlSchema:
    """The metadata columns of a JSONL manifest (from its first row) and their types (first non-null value)."""

    def __init__(self, first_row: Mapping[str, Any]) -> None:
        self.established: dict[str, str | None] = {key: None for key in first_row if key not in RESERVED_COLUMNS}
        self.allowed = frozenset(self.established).union(RESERVED_COLUMNS)
        self.pending = len(self.established)

    @property
    def settled(self) -> bool:
        return self.pending == 0

    def kinds(self) -> dict[str, str]:
        return {name: kind or "string" for name, kind in self.established.items()}

    def check(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The row's metadata, converted to its column types, and the first problem found (or None)."""
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
                    f"column {name!r} should be {_KIND_NAMES[established]} like earlier rows, got {_KIND_NAMES[kind]}"
                )
                value = None
            if kind == "int64" and type(value) is int and not INT64_MIN <= value <= INT64_MAX:
                shown = str(value) if value.bit_length() <= 256 else f"an integer of {value.bit_length()} bits"
                problem = problem or f"column {name!r}: {shown} does not fit a 64-bit integer"
                value = None
            metadata[name] = value
        return metadata, problem


_JSON_DECODER = json.JSONDecoder()
# The metadata kind of each JSON value type; objects and arrays are "nested" and stored as JSON text.
_JSON_KINDS: dict[type, str | None] = {type(None): None, bool: "bool", int: "int64", float: "float64", str: "string"}


def _jsonl_lines(handle: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value or _Malformed) for every non-blank line."""
    for number, raw in enumerate(handle, start=1):
        if raw.isspace():
            continue
        parsed: Any
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            if line[0].isspace():
                parsed = _JSON_DECODER.decode(line)
            else:  # the common case, without decode()'s two whitespace scans per line
                parsed, end = _JSON_DECODER.raw_decode(line)
                if end != len(line) and not line[end:].isspace():
                    raise json.JSONDecodeError("Extra data", line, end)
        except UnicodeDecodeError:
            parsed = _Malformed("not valid UTF-8; save the manifest as UTF-8")
        except json.JSONDecodeError as exc:
            column = min(exc.pos, len(exc.doc.rstrip("\r\n"))) + 1
            parsed = _Malformed(f"malformed JSON: {exc.msg} (column {column})")
        except ValueError:  # int() refuses a number longer than sys.get_int_max_str_digits()
            parsed = _Malformed(f"a number has more than {sys.get_int_max_str_digits():,} digits")
        except RecursionError:
            parsed = _Malformed("malformed JSON: nested too deeply")
        yield number, parsed


@dataclass(frozen=True, slots=True)
class _Malformed:
    reason: str


def _jsonl_first_row(path: Path, lines: Iterator[tuple[int, Any]]) -> tuple[int, _JsonlSchema, dict[str, Any]]:
    first = next(lines, None)
    if first is None:
        raise ManifestError("empty manifest: no rows", path=path)
    number, row = first
    if isinstance(row, _Malformed):
        raise ManifestError(
            f"the first row sets the manifest's columns but is unreadable: {row.reason}", path=path, line=number
        )
    if not isinstance(row, dict):
        raise ManifestError(f"the first row must be a JSON object, got {_type_name(row)}", path=path, line=number)
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
    return number, _JsonlSchema(row), row


def _read_jsonl(path: Path) -> Iterator[DocumentRef]:
    with _open_binary(path) as handle:
        lines = _jsonl_lines(handle)
        first_number, schema, first_row = _jsonl_first_row(path, lines)
        rows = _Rows(path, "line")
        metadata, problem = schema.check(first_row)
        yield rows.ref(first_number, first_row, metadata, problem)
        for number, row in lines:
            if isinstance(row, _Malformed):
                yield rows.failed(number, row.reason)
            elif not isinstance(row, dict):
                yield rows.failed(number, f"not a JSON object (got {_type_name(row)})")
            else:
                metadata, problem = schema.check(row)
                yield rows.ref(number, row, metadata, problem)


# -- CSV -------------------------------------------------------------------------------------------


def _check_utf8(path: Path) -> None:
    """Raise ManifestError naming the first line of a CSV manifest that is not UTF-8.

    A CSV manifest is read through a text decoder that works in chunks: left to it, a bad byte
    would stop the run midway, after documents were sent, and be blamed on the line where its
    chunk began. One streamed pass finds it first, before any document, on its own line.
    """
    stat_result = path.stat()
    checked = (os.path.realpath(path), stat_result.st_size, stat_result.st_mtime_ns)
    if checked in _UTF8_CHECKED:  # a run reads a CSV manifest twice (column types, then rows): check once
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    with _open_binary(path) as handle:
        while True:
            chunk = handle.read(UTF8_CHECK_CHUNK_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:  # exc.object: this chunk after the few bytes the decoder held back
                line = lines_before + exc.object.count(b"\n", 0, exc.start) + 1
                raise ManifestError("not UTF-8 text; save the manifest as UTF-8", path=path, line=line) from None
            if not chunk:
                _UTF8_CHECKED.add(checked)
                return
            lines_before += chunk.count(b"\n")


def _csv_header(path: Path, handle: IO[str]) -> tuple[CsvReader, list[str], int]:
    """(reader positioned after the header, header names, the header's last line number)."""
    _check_utf8(path)
    try:
        first_line = handle.readline()
        handle.seek(0)
    except UnicodeDecodeError:
        raise ManifestError("not UTF-8 text; save the manifest as UTF-8", path=path, line=1) from None
    delimiter = max(CSV_DELIMITERS, key=lambda candidate: (first_line.count(candidate), candidate == ","))
    # The csv module refuses fields over 128 KiB by default, and an inline document may be longer:
    # its length is the job's business (too_long), not a malformed row. The limit is process-wide.
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = next((row for row in reader if row), None)
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


def _read_csv(path: Path) -> Iterator[DocumentRef]:
    with _open_text(path) as handle:
        reader, header, last_line = _csv_header(path, handle)
        rows = _Rows(path, "line")
        id_index = header.index("id")
        metadata_names = [name for name in header if name not in RESERVED_COLUMNS]
        any_rows = False
        while True:
            number = last_line + 1  # a quoted field can span lines: a row is named by its first line
            malformed: str | None = None
            try:
                row = next(reader, None)
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


# -- Parquet ---------------------------------------------------------------------------------------


def _parquet_file(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except PermissionError:
        raise ManifestError("permission denied", path=path) from None
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ManifestError(f"cannot read the Parquet file: {exc}", path=path) from None


def _parquet_check_schema(path: Path, parquet: Any) -> None:
    names = list(parquet.schema_arrow.names)
    if "id" not in names:
        raise ManifestError(f"no 'id' column in the Parquet schema (columns: {', '.join(names)})", path=path)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:  # a row holds one value per name: which column's would be a guess
        raise ManifestError(f"column {duplicates[0]!r} appears twice in the Parquet schema", path=path)
    if parquet.metadata.num_rows == 0:
        raise ManifestError("empty manifest: no rows", path=path)


def _arrow_kind(arrow_type: Any) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int64"
    if pa.types.is_floating(arrow_type):
        return "float64"
    return "string"


def _as_string(value: Any) -> str | None:
    """A Parquet value of a type without a metadata kind of its own (dates, decimals, lists...) as text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _read_parquet(path: Path) -> Iterator[DocumentRef]:
    import pyarrow as pa

    parquet = _parquet_file(path)
    _parquet_check_schema(path, parquet)
    schema = parquet.schema_arrow
    metadata_fields = [field for field in schema if field.name not in RESERVED_COLUMNS]
    string_columns = [field.name for field in metadata_fields if _arrow_kind(field.type) == "string"]
    # The output holds integers as int64: an unsigned 64-bit value may not fit.
    unsigned_columns = [field.name for field in metadata_fields if pa.types.is_uint64(field.type)]
    metadata_names = [field.name for field in metadata_fields]
    rows = _Rows(path, "row")
    number = 0
    try:
        # Row group by row group: a corrupt group fails after every row before it was read.
        batches = (
            batch
            for group in range(parquet.metadata.num_row_groups)
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[group])
        )
        for batch in batches:
            batch_rows, unreadable = _batch_rows(batch)
            for index, row in enumerate(batch_rows):
                number += 1
                metadata = {name: row[name] for name in metadata_names}
                for name in string_columns:
                    metadata[name] = _as_string(metadata[name])
                problem: str | None = None
                if index in unreadable:
                    column, problem = unreadable[index]
                    if column == "id":
                        yield rows.failed(number, problem)
                        continue
                for name in unsigned_columns:
                    if (value := metadata[name]) is not None and value > INT64_MAX:
                        problem = problem or f"column {name!r}: {value} does not fit a 64-bit integer"
                        metadata[name] = None
                yield rows.ref(number, row, metadata, problem)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ManifestError(f"cannot read the Parquet file after row {number}: {exc}", path=path) from None


def _batch_rows(batch: Any) -> tuple[list[dict[str, Any]], dict[int, tuple[str, str]]]:
    """A Parquet batch's rows, and for each row holding a value Python cannot hold: (its column, why).

    Such a value (a string whose bytes are not UTF-8, a date past the year 9999) fails the conversion
    of its whole batch; only then is the batch converted column by column, and a failing column value
    by value, so that the value costs its row alone and the common path stays one call per batch.
    """
    try:
        return batch.to_pylist(), {}
    except (ValueError, ArithmeticError):
        pass
    unreadable: dict[int, tuple[str, str]] = {}
    columns: list[list[Any]] = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            columns.append(column.to_pylist())
            continue
        except (ValueError, ArithmeticError):
            pass
        values: list[Any] = []
        for index in range(len(column)):
            try:
                values.append(column[index].as_py())
            except (ValueError, ArithmeticError) as exc:
                values.append(None)
                reason = (
                    "is not valid Unicode text: its bytes are not UTF-8"
                    if isinstance(exc, UnicodeDecodeError)
                    else f"holds a value docpipe cannot read ({exc})"
                )
                if name == "id" or index not in unreadable:  # an unreadable id decides how the row is named
                    unreadable[index] = (name, f"column {name!r} {reason}")
        columns.append(values)
    names = batch.schema.names
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)], unreadable
