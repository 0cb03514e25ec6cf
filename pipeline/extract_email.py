"""Text from an e-mail (`.eml`), read with the standard library's `email` package (see `extract.py`).

The text a model reads: the headers a person would (From, To, Cc, Date, Subject), a blank line,
the body (the text/plain part; the HTML part, through the HTML extractor, when there is no plain
text), then one section per attachment, in the order the e-mail carries them::

    ## Attachment: invoice_NWL-INV-2026-0188.pdf (application/pdf)
    <the attachment's text>

An attachment is read as the document type its file name says, else as the one its content type
says (`ATTACHMENT_TYPES`): PDF (through `extract_pdf.py`), DOCX, XLSX, HTML, text, Markdown, CSV,
JSON, and a forwarded e-mail (`message/rfc822`, read the same way, at most `MAX_NESTING` deep).
An attachment docpipe does not read (an image, an archive) or cannot read (an encrypted PDF)
becomes a one-line note in its section: the e-mail itself is still read.

Parts. `part=0` reads the e-mail without its attachments' text: each attachment docpipe reads is
named in its section as a document of its own. `part=n` reads the nth attachment alone, as the
document it is (its own kind, its own errors). Attachments are numbered from 1 among all of the
e-mail's attachments, readable or not, so that a number keeps naming the same attachment.
`attachment_names` lists them for `attachments.py`, which makes a ref of each.

What is not an e-mail. The `email` package reads any bytes as a message; one without a From, To,
Subject or Date header is refused. Header bytes that are not valid text are shown as U+FFFD,
control characters are dropped, and what the package raises on a message it cannot take apart
is an `ExtractionError` like every other failure.

The data model (`_Mail`, `_Attachment`) is the seam for other mail formats: an Outlook `.msg`
reader would build the same objects. It is not supported: the maintained reader, extract-msg, is
GPL-3.0, which an Apache-2.0 project should not depend on without a decision of its own.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ExtractionError
from .extract import (
    CONTROL_CHARS,
    NEWLINES,
    SUPPORTED_SUFFIXES,
    ExtractedText,
    Fail,
    check_unicode,
    extract_bytes,
    reason,
)
from .surrogates import utf8_problem

if TYPE_CHECKING:
    from email.message import EmailMessage

__all__ = ["ATTACHMENT_TYPES", "HEADERS", "MAX_NESTING", "AttachmentName", "attachment_names", "mail_text"]

HEADERS = ("From", "To", "Cc", "Date", "Subject")
MAIL_HEADERS = frozenset({"from", "to", "subject", "date"})  # a file with none of these is not an e-mail
MAX_NESTING = 3  # forwarded e-mails inside forwarded e-mails: deeper ones are noted, not read
MAX_NAME_CHARS = 200
ATTACHMENT_TYPES = {
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "text/html": ".html",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/csv": ".csv",
    "application/json": ".json",
    "message/rfc822": ".eml",
}
OWN_DOCUMENT = "(read as a document of its own)"
# What the email package raises on a message it cannot take apart (it is lenient, but not everywhere).
PARSE_FAILURES: tuple[type[BaseException], ...] = (
    AssertionError,
    AttributeError,
    IndexError,
    KeyError,
    LookupError,
    RecursionError,
    TypeError,
    ValueError,
)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class _Attachment:
    name: str
    content_type: str
    suffix: str | None  # the document type docpipe reads it as; None when it reads none
    read: Callable[[], bytes | _Mail]  # its content, decoded when asked


@dataclass(frozen=True, slots=True)
class _Mail:
    headers: list[tuple[str, str]]
    body: str
    attachments: list[_Attachment]


@dataclass(frozen=True, slots=True)
class AttachmentName:
    """One attachment of an e-mail: its number (from 1), its file name, and whether docpipe reads it."""

    number: int
    name: str
    readable: bool


def mail_text(data: bytes, kind: str, fail: Fail, *, part: int | None = None) -> ExtractedText:
    """The e-mail's text with its attachments as sections; with `part`, the e-mail alone (0) or one attachment."""
    mail = _parse(data, fail, depth=0)
    if part is None or part == 0:
        text = _mail_text(mail, fail, depth=0, own_documents=part == 0)
        check_unicode(text, fail)
        return ExtractedText(text=text, kind=kind, encoding=None, pages=None)
    if not 1 <= part <= len(mail.attachments) or mail.attachments[part - 1].suffix is None:
        raise fail(f"the e-mail has no attachment {part} docpipe reads: it changed since it was listed; rerun")
    attachment = mail.attachments[part - 1]
    try:
        return _attachment_document(attachment, fail, depth=0)
    except ExtractionError as exc:
        raise fail(f"attachment {attachment.name}: {exc.message}") from None


def attachment_names(data: bytes, fail: Fail) -> list[AttachmentName]:
    """The e-mail's attachments, numbered from 1, each with whether docpipe reads its type."""
    mail = _parse(data, fail, depth=0)
    return [
        AttachmentName(number, attachment.name, attachment.suffix is not None)
        for number, attachment in enumerate(mail.attachments, start=1)
    ]


# -- reading ---------------------------------------------------------------------------------------


def _parse(data: bytes, fail: Fail, *, depth: int) -> _Mail:
    import email
    import email.policy

    try:
        message = email.message_from_bytes(data, policy=email.policy.default)
    except PARSE_FAILURES as exc:
        raise fail(f"corrupt e-mail: {reason(exc)}") from None
    return _from_message(message, fail, depth=depth)


def _from_message(message: EmailMessage, fail: Fail, *, depth: int) -> _Mail:
    from email.errors import MessageError

    failures: tuple[type[BaseException], ...] = (MessageError, *PARSE_FAILURES)
    try:
        if not MAIL_HEADERS & {name.lower() for name, _ in message.raw_items()}:
            raise fail("not an e-mail: it has no From, To, Subject or Date header; check the file type")
        headers = [(name, value) for name in HEADERS if (value := _header(message, name))]
        body = _body(message, fail)
        parts = enumerate(message.iter_attachments(), start=1)
        attachments = [_attachment(part, number, fail, depth) for number, part in parts]
    except failures as exc:
        raise fail(f"corrupt e-mail: {reason(exc)}") from None
    return _Mail(headers, body, attachments)


def _header(message: EmailMessage, name: str) -> str:
    """The header as a person reads it: encoded words decoded; its raw text when it does not parse."""
    try:
        value = message[name]
        shown = "" if value is None else str(value)
        if value is not None and (getattr(value, "defects", None) or not shown.strip()):
            shown = next((str(raw) for key, raw in message.raw_items() if key.lower() == name.lower()), shown)
    except PARSE_FAILURES:  # a header the parser chokes on: its raw text
        shown = next((str(raw) for key, raw in message.raw_items() if key.lower() == name.lower()), "")
    return _SPACES.sub(" ", _clean(shown)).strip()


def _body(message: EmailMessage, fail: Fail) -> str:
    """The text/plain body, else the HTML body's text, else nothing."""
    for subtype in ("plain", "html"):
        part = message.get_body(preferencelist=(subtype,))
        if part is None:
            continue
        text = _clean(_text_content(part))
        if subtype == "html" and text.strip():
            from .extract_html import html_text

            try:
                text = html_text(text, fail)
            except ExtractionError as exc:  # the headers and attachments are still worth reading
                return f"(body not read: {exc.message})"
        text = "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip()
        if text:
            return text
    return ""


def _text_content(part: Any) -> str:
    """A text part's content, decoded by its charset; an unknown charset is read as UTF-8."""
    try:
        return str(part.get_content())
    except LookupError:
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _attachment(part: EmailMessage, number: int, fail: Fail, depth: int) -> _Attachment:
    content_type = part.get_content_type()
    name = _file_name(part.get_filename(), number, content_type)
    suffix = posixpath.splitext(name)[1].lower()
    if suffix not in SUPPORTED_SUFFIXES:
        suffix = ATTACHMENT_TYPES.get(content_type, "")
    if content_type.startswith("multipart/"):
        suffix = ""

    def read() -> bytes | _Mail:
        if suffix == ".eml":  # read here, not through extract_bytes: the nesting is bounded
            if depth + 1 >= MAX_NESTING:
                raise fail(f"a forwarded e-mail nested more than {MAX_NESTING} deep is not read")
            if content_type == "message/rfc822":
                return _from_message(part.get_content(), fail, depth=depth + 1)
        elif content_type.startswith("text/"):
            return _clean(_text_content(part)).encode("utf-8")
        payload = part.get_payload(decode=True)
        payload = payload if isinstance(payload, bytes) else b""
        return _parse(payload, fail, depth=depth + 1) if suffix == ".eml" else payload

    return _Attachment(name, content_type, suffix or None, read)


def _file_name(raw: str | None, number: int, content_type: str) -> str:
    """The attachment's file name, without folders, control characters or surrogates; one made up when none."""
    name = posixpath.basename(_SPACES.sub(" ", _clean(raw or "")).replace("\\", "/")).strip()
    if not name:
        name = f"attachment-{number}{ATTACHMENT_TYPES.get(content_type, '')}"
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 3] + "..."


def _clean(text: str) -> str:
    """Text that can be written: undecodable bytes read as UTF-8 (U+FFFD where they are not), no control characters."""
    if utf8_problem(text) is not None:
        try:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:  # a surrogate that is not an escaped byte
            text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return CONTROL_CHARS.sub("", NEWLINES.sub("\n", text))


# -- the text --------------------------------------------------------------------------------------


def _mail_text(mail: _Mail, fail: Fail, *, depth: int, own_documents: bool = False) -> str:
    """Headers, body and one section per attachment; with `own_documents`, readable ones only named."""
    blocks = ["\n".join(f"{name}: {value}" for name, value in mail.headers)]
    if mail.body:
        blocks.append(mail.body)
    for attachment in mail.attachments:
        heading = f"## Attachment: {attachment.name} ({attachment.content_type})"
        if attachment.suffix is None:
            blocks.append(f"{heading}\n(not read: docpipe does not read {attachment.content_type} attachments)")
        elif own_documents:
            blocks.append(f"{heading}\n{OWN_DOCUMENT}")
        else:
            blocks.append(f"{heading}\n{_section_text(attachment, fail, depth)}")
    return "\n\n".join(block for block in blocks if block)


def _section_text(attachment: _Attachment, fail: Fail, depth: int) -> str:
    """The attachment's text, or a one-line note saying why it could not be read."""
    try:
        return _attachment_document(attachment, fail, depth=depth).text
    except ExtractionError as exc:
        return f"(not read: {' '.join(exc.message.split())})"


def _attachment_document(attachment: _Attachment, fail: Fail, *, depth: int) -> ExtractedText:
    assert attachment.suffix is not None
    try:
        content = attachment.read()
    except PARSE_FAILURES as exc:
        raise fail(f"corrupt attachment: {reason(exc)}") from None
    if isinstance(content, _Mail):
        text = _mail_text(content, fail, depth=depth + 1)
        check_unicode(text, fail)
        return ExtractedText(text=text, kind="eml", encoding=None, pages=None)
    return extract_bytes(content, attachment.suffix)
