"""Document refs: what the sources yield, and how one manifest row becomes one.

A ref names a document to read (a file, a part of an e-mail file, or inline text) or, when `error`
is set, why its row cannot be one. `ManifestRows` holds the rules every manifest format shares:
the id is checked (valid text, not too long, seen once), exactly one of `path` and `text` is
given, a path stays inside the manifest's folder, and every string a ref carries can be encoded as
UTF-8 (see `sources.py`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

from .errors import DocumentError, ExtractionError, ManifestError
from .surrogates import escape_surrogates, utf8_problem

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "KIND_NAMES",
    "MAX_ID_CHARS",
    "RESERVED_COLUMNS",
    "DocumentRef",
    "ManifestRows",
    "inside",
    "open_binary",
    "open_text",
    "type_name",
]

# Ids already seen are kept as 64-bit hashes, not strings (a million-row manifest): `hash()` of a
# str is a keyed 64-bit SipHash on 64-bit builds, as collision-safe here as the 8-byte BLAKE2b
# digest it replaced at a tenth of the cost; elsewhere the digest stays.
_ID_HASH_IS_64_BIT = sys.hash_info.width >= 64
RESERVED_COLUMNS = ("id", "path", "text")
# An id names a document; one longer than a path may be (PATH_MAX) is most likely a text column read
# as the id. The prompt shows long ids shortened in any case (`requests.fence_document`).
MAX_ID_CHARS = 4096
ID_SHOWN_CHARS = 60  # how much of a refused id an error message quotes
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
KIND_NAMES = {"string": "string", "int64": "integer", "float64": "float", "bool": "boolean"}
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
    part: int | None = None  # of an e-mail file: None all of it, 0 without its attachments, n its nth (attachments.py)


def open_binary(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except PermissionError:
        raise ManifestError("permission denied", path=path) from None
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror or exc}", path=path) from None


def open_text(path: Path) -> IO[str]:
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except PermissionError:
        raise ManifestError("permission denied", path=path) from None
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror or exc}", path=path) from None


def inside(real: str, real_root: str) -> bool:
    return os.path.commonpath([real, real_root]) == real_root


def _id_digest(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")


class ManifestRows:
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
        return self._row_ref(number, fields, metadata, id_problem or problem, doc_id, unique=unique)

    def first_seen(self, doc_ids: Sequence[str]) -> list[bool]:
        """Register the valid ids of consecutive rows at once: for each, whether it is new (as `ref` finds)."""
        seen = self.seen_ids
        new: list[bool] = []
        for digest in map(hash if _ID_HASH_IS_64_BIT else _id_digest, doc_ids):
            if digest in seen:
                new.append(False)
            else:
                seen.add(digest)
                new.append(True)
        return new

    def registered_ref(
        self, number: int, fields: Mapping[str, Any], metadata: dict[str, Any], problem: str | None, doc_id: str
    ) -> DocumentRef:
        """The ref of a row whose id is valid and was new when registered (`first_seen`)."""
        return self._row_ref(number, fields, metadata, problem, doc_id, unique=True)

    def _row_ref(
        self,
        number: int,
        fields: Mapping[str, Any],
        metadata: dict[str, Any],
        problem: str | None,
        doc_id: str | None,
        *,
        unique: bool,
    ) -> DocumentRef:
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
                reason = f"text must be a string, got {type_name(text)}"
                return self._error(number, reason, doc_id, unique=True, metadata=metadata)
            if not text.isascii() and (text_problem := utf8_problem(text)) is not None:
                reason = f"text is not valid Unicode text: it holds {text_problem}; fix the manifest"
                return self._error(number, reason, doc_id, unique=True, metadata=metadata)
            source = f"{self.name}:{number}"
            return DocumentRef(doc_id, source, None, _NEWLINES.sub("\n", text) if "\r" in text else text, metadata)
        if not isinstance(raw_path, str):
            reason = f"path must be a string, got {type_name(raw_path)}"
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
        if not inside(real, self.real_folder):
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
    return None, f"id must be a string, got {type_name(value)}"


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


def type_name(value: Any) -> str:
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
