"""Text from one document file: plain text, Markdown, HTML, JSON, CSV, PDF, DOCX, XLSX or e-mail.

This module chooses the format by suffix and reads the text formats itself (plain text, Markdown,
JSON, CSV); HTML is read in `extract_html.py`, PDF in `extract_pdf.py`, DOCX and XLSX in
`extract_office.py` and e-mail (`.eml`) in `extract_email.py`, each loaded, with the
library it uses, by the first file of its kind. The helpers those modules share (`Fail`, `reason`)
live here.

Every failure is an `ExtractionError` whose message says what is wrong and, where there is one,
what to do about it; the runner turns it into an error row and carries on. Nothing here raises
anything else on bad input, and nothing emits Python warnings. The text returned can always be
encoded as UTF-8: text holding a lone surrogate (from a JSON `\\ud800` escape, say) is refused.

Text files are decoded in this order: a UTF-32/UTF-16/UTF-8 byte-order mark, then strict UTF-8,
then charset-normalizer's guess, except that Windows-1252 (a superset of Latin-1 for text) wins
whenever it reads as cleanly as the guess: short Western European files are where detectors go
wrong most often, and they are by far the most common legacy text. Newlines become `\\n`.

Structured formats are rendered for a model to read, not round-tripped: HTML becomes its main
content (or, on a page too small to tell, its visible text), JSON becomes `path.to[0].field: value`
lines, CSV becomes `header: value` blocks, one per row, DOCX its paragraphs and `cell | cell` table
rows, XLSX one `## Sheet: name` section of `cell | cell` rows per sheet, and an e-mail its headers,
its body and one `## Attachment: name (type)` section per attachment (see `extract_email.py`).

An e-mail can also be read a part at a time (`part`): 0 is the e-mail without its attachments'
text, n its nth attachment alone, as a job with `attachments = "documents"` asks (`attachments.py`).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from .errors import ExtractionError
from .surrogates import utf8_problem

__all__ = [
    "MAX_FILE_BYTES",
    "SUPPORTED_SUFFIXES",
    "ExtractedText",
    "extract_bytes",
    "extract_text",
    "read_file",
]

MAX_FILE_BYTES = 50 * 1024 * 1024
SUFFIX_KINDS: dict[str, str] = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".json": "json",
    ".csv": "csv",
    ".pdf": "pdf",
    ".docx": "docx",
    ".xlsx": "xlsx",
    ".eml": "eml",
}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(SUFFIX_KINDS)
MAIL_KINDS = frozenset({"eml"})  # the kinds whose attachments can be documents of their own

# A text file is "binary" when it holds a NUL, or when more than this share of its characters are
# control characters other than tab, newline, carriage return and form feed.
MAX_CONTROL_SHARE = 0.05
# Windows-1252 is chosen over charset-normalizer's guess when its mess ratio is at most this much worse.
CP1252_MESS_TOLERANCE = 0.1
MESS_SAMPLE_CHARS = 100_000
CSV_DELIMITERS = (",", ";", "\t")
CSV_SNIFF_ROWS = 20
PASSWORD_REQUIRED = "encrypted PDF: password required; save an unprotected copy to process it"
REASON_MAX_CHARS = 200

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Encodings a detector proposes for short Western text that are never what a business file is in.
# UTF-16/32 without a byte-order mark and EBCDIC code pages are not guessed.
_IMPLAUSIBLE_GUESSES = frozenset({"cp037", "cp273", "cp424", "cp500", "cp875", "cp1006", "cp1026", "cp1140"})
Fail: TypeAlias = Callable[[str], ExtractionError]  # builds the error for the document at hand
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
NEWLINES = re.compile(r"\r\n?")


@dataclass(frozen=True, slots=True)
class ExtractedText:
    """The text of one document, and how it was read."""

    text: str
    kind: str  # "txt" | "md" | "html" | "json" | "csv" | "pdf" | "docx" | "xlsx" | "eml"
    encoding: str | None  # detected text encoding; None for the binary formats and e-mail
    pages: int | None  # PDFs only


def extract_text(path: Path, *, document_id: str | None = None, part: int | None = None) -> ExtractedText:
    """Read one file and return its text; raise `ExtractionError` with an actionable message.

    `part` reads a part of an e-mail: 0 the e-mail without its attachments, n its nth attachment.
    """
    data = read_file(path, document_id=document_id)
    return extract_bytes(data, path.suffix, document_id=document_id, path=str(path), part=part)


def read_file(path: Path, *, document_id: str | None = None) -> bytes:
    """The bytes of one document file of a supported type, at most `MAX_FILE_BYTES`; else `ExtractionError`."""

    def fail(message: str) -> ExtractionError:
        return ExtractionError(message, document_id=document_id, path=path)

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise fail(f"file not found: {path}") from None
    except PermissionError:
        raise fail(f"permission denied: cannot read {path}") from None
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:  # a NUL character in the path
        raise fail(f"cannot read {path!r}: not a valid file path") from None
    if stat.S_ISDIR(info.st_mode):
        raise fail(f"{path} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise fail(f"{path} is not a regular file (a pipe, socket or device)")
    _kind_for(path.suffix, fail)
    if info.st_size > MAX_FILE_BYTES:
        raise fail(_too_large(info.st_size))
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except PermissionError:
        raise fail(f"permission denied: cannot read {path}") from None
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from None


def extract_bytes(
    data: bytes, suffix: str, *, document_id: str | None = None, path: str | None = None, part: int | None = None
) -> ExtractedText:
    """Extract text from a file's bytes; `suffix` (".pdf" or "pdf", any case) chooses the format.

    `part` reads a part of an e-mail (see `extract_text`); other formats have none.
    """

    def fail(message: str) -> ExtractionError:
        return ExtractionError(message, document_id=document_id, path=path)

    kind = _kind_for(suffix, fail)
    if len(data) > MAX_FILE_BYTES:
        raise fail(_too_large(len(data)))
    if not data.strip():
        raise fail(ExtractionError.EMPTY)
    if part is not None and kind not in MAIL_KINDS:
        raise fail(f"a {kind} file has no parts; only an e-mail's attachments are read one at a time")
    if kind in MAIL_KINDS:
        from .extract_email import mail_text  # the e-mail module loads with the first e-mail

        return mail_text(data, kind, fail, part=part)
    if kind in ("pdf", "docx", "xlsx"):
        return _binary_text(data, kind, fail)
    decoded, encoding = _decode(data, fail)
    if kind == "html":
        from .extract_html import html_text

        text = html_text(decoded, fail)
    elif kind == "json":
        text = _json_text(decoded, fail)
    elif kind == "csv":
        text = _csv_text(decoded, fail)
    else:
        text = _plain_text(decoded)
    if not text.strip():
        raise fail(ExtractionError.EMPTY)
    check_unicode(text, fail)
    return ExtractedText(text=text, kind=kind, encoding=encoding, pages=None)


def _binary_text(data: bytes, kind: str, fail: Fail) -> ExtractedText:
    """A PDF, DOCX or XLSX file's text; each format's library is loaded with its first file."""
    pages = None
    if kind == "pdf":
        from .extract_pdf import pdf_text

        text, pages = pdf_text(data, fail)
    elif kind == "docx":
        from .extract_office import docx_text

        text = docx_text(data, fail)
    else:
        from .extract_office import xlsx_text

        text = xlsx_text(data, fail)
    if not text.strip():
        raise fail(ExtractionError.EMPTY)
    check_unicode(text, fail)
    return ExtractedText(text=text, kind=kind, encoding=None, pages=pages)


# -- formats and sizes -----------------------------------------------------------------------------


def _kind_for(suffix: str, fail: Fail) -> str:
    normalised = suffix.lower()
    if normalised and not normalised.startswith("."):
        normalised = "." + normalised
    kind = SUFFIX_KINDS.get(normalised)
    if kind is None:
        shown = f"file type {normalised!r}" if normalised else "a file without a suffix"
        raise fail(f"unsupported {shown}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    return kind


def _too_large(size_bytes: int) -> str:
    return (
        f"file too large: {size_bytes / 1024 / 1024:.1f} MB, over the {MAX_FILE_BYTES // 1024 // 1024} MB limit; "
        "split it or extract the part that matters"
    )


# -- decoding --------------------------------------------------------------------------------------


def _decode(data: bytes, fail: Fail) -> tuple[str, str]:
    """Decode text bytes, refusing binary content; newlines normalised to "\\n"."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise fail(
                    f"undecodable text: starts with a {codec} byte-order mark but is not valid {codec} ({exc.reason})"
                ) from None
            encoding = "utf-8" if codec == "utf-8-sig" else codec
            break
    else:
        if b"\x00" in data:
            raise fail("binary content in a text file (NUL bytes); check the file type")
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = _guess_decode(data, fail)
    if "\x00" in text or sum(1 for _ in CONTROL_CHARS.finditer(text)) > MAX_CONTROL_SHARE * len(text):
        raise fail("binary content in a text file (control characters); check the file type")
    return NEWLINES.sub("\n", text), encoding


def _guess_decode(data: bytes, fail: Fail) -> tuple[str, str]:
    import charset_normalizer
    from charset_normalizer.md import mess_ratio

    matches = [
        match
        for match in charset_normalizer.from_bytes(data)
        if match.encoding not in _IMPLAUSIBLE_GUESSES and not match.encoding.startswith(("utf_16", "utf_32"))
    ]
    best_mess = min((match.chaos for match in matches), default=0.0)
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and mess_ratio(western[:MESS_SAMPLE_CHARS], 1.0) <= best_mess + CP1252_MESS_TOLERANCE:
        return western, "cp1252"
    if not matches:
        raise fail("undecodable text: not UTF-8 and no other encoding fits; re-save the file as UTF-8")
    best = matches[0]
    return str(best), best.encoding


def _plain_text(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.lstrip("\n").rstrip().split("\n"))


# -- JSON ------------------------------------------------------------------------------------------


def _json_text(text: str, fail: Fail) -> str:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise fail("invalid JSON: nested too deeply to read") from None
    except ValueError:  # int() refuses a number longer than sys.get_int_max_str_digits()
        raise fail(f"invalid JSON: a number has more than {sys.get_int_max_str_digits():,} digits") from None
    lines: list[str] = []
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict) and value:
            children = [(f"{path}.{key}" if path else str(key), item) for key, item in value.items()]
        elif isinstance(value, list) and value:
            children = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
        elif not path and isinstance(value, dict | list):
            continue  # an empty object or array: nothing to read
        else:
            rendered = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"{path}: {rendered}" if path else rendered)
            continue
        stack.extend(reversed(children))
    return "\n".join(lines)


# -- CSV -------------------------------------------------------------------------------------------


def _csv_delimiter(text: str) -> str:
    """The candidate delimiter that splits the header into most columns that the next rows agree with."""
    end = -1
    for _ in range(CSV_SNIFF_ROWS):
        end = text.find("\n", end + 1)
        if end == -1:
            break
    sample = text if end == -1 else text[:end]
    best, best_score = CSV_DELIMITERS[0], (0, 0)
    for delimiter in CSV_DELIMITERS:
        try:
            rows = [row for row in csv.reader(io.StringIO(sample), delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        agreeing = sum(len(row) == len(rows[0]) for row in rows)
        score = (agreeing, len(rows[0]))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _csv_text(text: str, fail: Fail) -> str:
    reader = csv.reader(io.StringIO(text), delimiter=_csv_delimiter(text), strict=True)
    blocks: list[str] = []
    header: list[str] | None = None
    row_start = 1
    try:
        for row in reader:
            row_start = reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [name.strip() or f"column {index}" for index, name in enumerate(row, start=1)]
                continue
            names = header + [f"column {index}" for index in range(len(header) + 1, len(row) + 1)]
            block = [f"{name}: {cell.strip()}" for name, cell in zip(names, row, strict=False) if cell.strip()]
            blocks.append("\n".join(block))
    except csv.Error as exc:
        raise fail(f"cannot parse CSV at line {row_start}: {exc}") from None
    if header is not None and not blocks:
        raise fail("empty document: the CSV has a header row but no data rows")
    return "\n\n".join(blocks)


# -- shared by the format modules ------------------------------------------------------------------


def check_unicode(text: str, fail: Fail) -> None:
    """Refuse text UTF-8 cannot encode: a JSON `\\ud800` escape or a PDF's text map can yield a lone surrogate."""
    problem = utf8_problem(text)
    if problem is not None:
        raise fail(f"undecodable text: it holds {problem}; re-save the file with valid text")


def reason(exc: BaseException) -> str:
    """A short, one-line reason from an exception, without a traceback."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    return first if len(first) <= REASON_MAX_CHARS else first[: REASON_MAX_CHARS - 3] + "..."


class SharedSetting:
    """A process-wide setting held while any of several concurrent extractions needs it.

    The first to enter applies it (`apply` returns how to undo it); the last to leave undoes it, so a
    setting one extraction changed is never restored under another still running, and at rest the
    process is as the application left it.
    """

    def __init__(self, apply: Callable[[], Callable[[], None]]) -> None:
        self._apply = apply
        self._lock = threading.Lock()
        self._active = 0
        self._undo: Callable[[], None] | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._active == 0:
                self._undo = self._apply()
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0 and self._undo is not None:
                    undo, self._undo = self._undo, None
                    undo()
