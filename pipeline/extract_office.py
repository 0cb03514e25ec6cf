"""Text from Office Open XML files: DOCX through python-docx, XLSX through openpyxl (see `extract.py`).

A DOCX becomes its body in order: one line per paragraph (headings included), and each table as
`cell | cell` rows, a merged cell shown once. Headers, footers, comments and text boxes are left out.

An XLSX becomes one `## Sheet: name` section per worksheet, its rows as `cell | cell` lines, read in
openpyxl's read-only mode with the values last computed by Excel (`data_only`): a sheet streams,
and at most `MAX_SHEET_ROWS` rows and `MAX_SHEET_COLUMNS` columns of each are shown, the cut said
in the text. Empty rows and the empty cells that end a row are left out.

Both formats are zip files of XML. Before a library opens one, the zip is checked: not a zip (a
legacy `.doc`/`.xls` renamed, or a password-protected file, which Office stores as an OLE compound
file), or unpacking to more than `MAX_UNPACKED_BYTES`, is refused with a reason. What the libraries
raise on a corrupt file becomes an `ExtractionError` too; their Python warnings (openpyxl warns
about styles and extensions it drops) are ignored while they read, with the filters restored
after the last concurrent extraction ends.

python-docx and openpyxl are imported with the first file of their kind.
"""

from __future__ import annotations

import datetime
import io
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from .extract import Fail, SharedSetting, reason

__all__ = ["MAX_SHEET_COLUMNS", "MAX_SHEET_ROWS", "MAX_UNPACKED_BYTES", "docx_text", "xlsx_text"]

MAX_SHEET_ROWS = 10_000
MAX_SHEET_COLUMNS = 200
MAX_UNPACKED_BYTES = 256 * 1024 * 1024  # a zip bomb is refused before any XML is parsed
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a compound file: legacy .doc/.xls, or an encrypted OOXML file
ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
LIBRARY_MODULES = r"(openpyxl|docx)(\.|$)"
# What python-docx, openpyxl and the XML parsers raise on a corrupt file, besides their own errors.
PARSE_FAILURES: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    ArithmeticError,
    AssertionError,
    AttributeError,
    EOFError,
    KeyError,
    IndexError,
    NotImplementedError,
    OSError,
    RecursionError,
    RuntimeError,  # zipfile: an encrypted member
    SyntaxError,  # xml.etree.ElementTree.ParseError
    TypeError,
    ValueError,
)

_FORMATS = {  # name, with its article; the application; its legacy binary suffix; the part every file has
    "docx": ("DOCX", "a DOCX", "Word", ".doc", "word/document.xml"),
    "xlsx": ("XLSX", "an XLSX", "Excel", ".xls", "xl/workbook.xml"),
}


def _ignore_library_warnings() -> Callable[[], None]:
    """Ignore python-docx's and openpyxl's warnings; how to put the filters back."""
    saved = warnings.catch_warnings()
    saved.__enter__()
    warnings.filterwarnings("ignore", module=LIBRARY_MODULES)
    return lambda: saved.__exit__(None, None, None)


_QUIETING = SharedSetting(_ignore_library_warnings)


def _quiet_libraries() -> AbstractContextManager[None]:
    """python-docx's and openpyxl's warnings are ignored while the block runs; the filters restored after."""
    return _QUIETING.held()


def _check_package(data: bytes, kind: str, fail: Fail) -> None:
    """Refuse what is not an Office Open XML package of this kind, with the reason and what to do."""
    name, a_name, application, legacy, main_part = _FORMATS[kind]
    if data.startswith(OLE_MAGIC):
        if ENCRYPTED_STREAM in data:
            raise fail(f"encrypted {name}: password required; save an unprotected copy to process it")
        raise fail(f"not {a_name} file: this is a legacy binary {application} file ({legacy}); save it as {name}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            members = package.infolist()
    except PARSE_FAILURES as exc:
        raise fail(f"corrupt {name}: not a readable zip package ({reason(exc)}); check the file type") from None
    unpacked_bytes = sum(member.file_size for member in members)
    if unpacked_bytes > MAX_UNPACKED_BYTES:
        raise fail(
            f"{name} too large: it unpacks to {unpacked_bytes / 1024 / 1024:,.0f} MB, over the "
            f"{MAX_UNPACKED_BYTES // 1024 // 1024} MB limit; split it or save the part that matters"
        )
    if main_part not in {member.filename for member in members}:
        raise fail(f"not {a_name} file: the package has no {main_part}; check the file type")


# -- DOCX ------------------------------------------------------------------------------------------


def docx_text(data: bytes, fail: Fail) -> str:
    """The body of a Word document: paragraphs and `cell | cell` table rows, in document order."""
    _check_package(data, "docx", fail)
    import docx
    from docx.exceptions import PythonDocxError
    from docx.opc.exceptions import OpcError
    from lxml.etree import LxmlError

    try:
        with _quiet_libraries():
            document = docx.Document(io.BytesIO(data))
            return "\n".join(_docx_lines(document.iter_inner_content()))
    except (PythonDocxError, OpcError, LxmlError, *PARSE_FAILURES) as exc:
        raise fail(f"corrupt DOCX: {reason(exc)}") from None


def _docx_lines(blocks: Iterable[Any]) -> Iterator[str]:
    from docx.table import Table

    for block in blocks:
        if isinstance(block, Table):
            for row in block.rows:
                cells: list[str] = []
                previous = None
                for cell in row.cells:
                    if previous is not None and cell._tc is previous:  # a merged cell repeats itself
                        continue
                    previous = cell._tc
                    cells.append(" ".join(cell.text.split()))
                if any(cells):
                    yield " | ".join(cells)
        else:
            line = " ".join(block.text.split())
            if line:
                yield line


# -- XLSX ------------------------------------------------------------------------------------------


def xlsx_text(data: bytes, fail: Fail) -> str:
    """Each worksheet as a `## Sheet: name` section of `cell | cell` rows, bounded (see the module docstring)."""
    _check_package(data, "xlsx", fail)
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        with _quiet_libraries():
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                sections = [_sheet_section(sheet) for sheet in workbook.worksheets]
            finally:
                workbook.close()
    except (InvalidFileException, *PARSE_FAILURES) as exc:
        raise fail(f"corrupt XLSX: {reason(exc)}") from None
    if not any(rows for _, rows in sections):
        raise fail("empty document: the workbook's sheets hold no values")
    return "\n\n".join(header + ("\n" + "\n".join(rows) if rows else "\n(no values)") for header, rows in sections)


def _sheet_section(sheet: Any) -> tuple[str, list[str]]:
    """The sheet's header line and its rows, at most MAX_SHEET_ROWS of them, the cut noted."""
    sheet.reset_dimensions()  # some writers record a wrong used range; read the rows that are there
    rows: list[str] = []
    widest = 0
    for values in sheet.iter_rows(values_only=True):
        cells = [_cell_text(value) for value in values[:MAX_SHEET_COLUMNS]]
        widest = max(widest, len(values))
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        if len(rows) == MAX_SHEET_ROWS:
            rows.append(f"(cut: only the first {MAX_SHEET_ROWS:,} rows of this sheet are shown)")
            break
        rows.append(" | ".join(cells))
    if widest > MAX_SHEET_COLUMNS:
        rows.append(f"(cut: only the first {MAX_SHEET_COLUMNS:,} columns of this sheet are shown)")
    return f"## Sheet: {' '.join(str(sheet.title).split())}", rows


def _cell_text(value: Any) -> str:
    """A cell's value as a person reads it: whole numbers without ".0", dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat(sep=" ")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return " ".join(str(value).split())
