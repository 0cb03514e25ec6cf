"""Text from a PDF's text layer, with pypdf; every failure an `ExtractionError` (see `extract.py`).

pypdf logs a warning for every file it repairs; a pipeline reports failures as rows instead, so an
extraction quietens the `pypdf` logger while it runs and leaves it as it found it. The quieting is
counted, not flagged: concurrent extractions share it, the last one out restores the level, and a
logger the application configured (any level but NOTSET) is never touched. Outside an extraction,
a notebook's own pypdf calls log exactly as they would without docpipe.

pypdf is imported on the first PDF, not with the pipeline.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

from .errors import ExtractionError
from .extract import CONTROL_CHARS, NEWLINES, PASSWORD_REQUIRED, Fail, SharedSetting, reason
from .pdf_failures import PDF_PARSE_FAILURES

__all__ = ["NO_TEXT_LAYER", "pdf_pages", "pdf_text", "quiet_pypdf"]

PDF_HEADER_WINDOW = 1024
PYPDF_LOGGER = "pypdf"
QUIET_LEVEL = logging.ERROR
NO_TEXT_LAYER = (
    'PDF has no text layer (scanned image?); set pdf = "auto" or "native" in the job to send it as the model sees it'
)



def _lower_pypdf_logger() -> Callable[[], None]:
    """Quieten the pypdf logger, unless the application configured it (any level but NOTSET); how to undo it."""
    logger = logging.getLogger(PYPDF_LOGGER)
    if logger.level != logging.NOTSET:
        return lambda: None

    def restore() -> None:
        if logger.level == QUIET_LEVEL:  # unless the application set a level meanwhile
            logger.setLevel(logging.NOTSET)

    logger.setLevel(QUIET_LEVEL)
    return restore


_QUIETING = SharedSetting(_lower_pypdf_logger)  # at rest, the logger is as the application left it


def quiet_pypdf() -> AbstractContextManager[None]:
    """pypdf's repair warnings are not logged while the block runs; the logger is restored after it."""
    return _QUIETING.held()


def pdf_text(data: bytes, fail: Fail) -> tuple[str, int]:
    """The text of every page, pages joined by a form feed line, and the page count."""
    cleaned, _ = pdf_pages(data, fail)
    if not any(cleaned):
        raise fail(NO_TEXT_LAYER)
    return "\n\f\n".join(cleaned), len(cleaned)


def pdf_pages(data: bytes, fail: Fail) -> tuple[list[str], bool]:
    """The cleaned text of each page (empty for a page without a text layer; at least one page), and
    whether the file is encrypted (with an empty password: readable here, refused by the API).

    Refuses what no reader can read: no PDF header, corrupt, encrypted with a password.
    """
    with quiet_pypdf():
        return _pdf_pages(data, fail)


def _pdf_pages(data: bytes, fail: Fail) -> tuple[list[str], bool]:
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    failures: tuple[type[BaseException], ...] = (PyPdfError, *PDF_PARSE_FAILURES)

    def missing_dependency(exc: DependencyError) -> ExtractionError:
        if "AES" in str(exc):  # pypdf needs `cryptography` for AES, even to try the empty password
            return fail(f"encrypted PDF: cannot decrypt it ({reason(exc)})")
        return fail(f"unsupported PDF: {reason(exc)}")

    if b"%PDF-" not in data[:PDF_HEADER_WINDOW]:
        raise fail("corrupt PDF: no %PDF header, so this is not a PDF file; check the file type")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))  # an encrypted file is tried with "" here already
        encrypted = reader.is_encrypted
    except DependencyError as exc:
        raise missing_dependency(exc) from None
    except failures as exc:
        raise fail(f"corrupt PDF: {reason(exc)}") from None
    if encrypted:
        try:
            decrypted = reader.decrypt("") != pypdf.PasswordType.NOT_DECRYPTED
        except DependencyError as exc:
            raise missing_dependency(exc) from None
        except failures as exc:
            raise fail(f"encrypted PDF: cannot decrypt it ({reason(exc)})") from None
        if not decrypted:
            raise fail(PASSWORD_REQUIRED)
    try:
        page_texts = [page.extract_text() or "" for page in reader.pages]
    except FileNotDecryptedError:
        raise fail(PASSWORD_REQUIRED) from None
    except DependencyError as exc:
        raise missing_dependency(exc) from None
    except failures as exc:
        raise fail(f"corrupt PDF: {reason(exc)}") from None
    if not page_texts:
        raise fail("corrupt PDF: it has no pages")
    return [CONTROL_CHARS.sub("", NEWLINES.sub("\n", text)).strip() for text in page_texts], encrypted


def pdf_subset(data: bytes, pages: list[int], fail: Fail) -> bytes:
    """A new PDF of the given pages (0-based, in the order given) of `data`: a piece of a long PDF."""
    with quiet_pypdf():
        import pypdf
        from pypdf.errors import PyPdfError

        failures: tuple[type[BaseException], ...] = (PyPdfError, *PDF_PARSE_FAILURES)
        try:
            reader = pypdf.PdfReader(io.BytesIO(data))
            writer = pypdf.PdfWriter()
            for index in pages:
                writer.add_page(reader.pages[index])
            buffer = io.BytesIO()
            writer.write(buffer)
        except failures as exc:
            raise fail(f"corrupt PDF: cannot cut pages from it ({reason(exc)})") from None
        return buffer.getvalue()
