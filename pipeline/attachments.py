"""E-mail attachments as documents of their own (`attachments = "documents"` in a job).

By default an e-mail is one document, its attachments' text in sections of it (`extract_email.py`).
A job with `attachments = "documents"` asks for each attachment docpipe reads to be a document of
its own, with its own row: id `<e-mail id>#<n>-<file name>`, source `<e-mail source>#<file name>`,
the e-mail's metadata, and the e-mail's file with `part = n`. The e-mail's own ref becomes
`part = 0`: its headers and body, each attachment named in its section.

Design: the parts are found when the e-mail's ref is *prepared*, not when the input is walked.
The preparer passes its input through `expand_attachments`, which reads each e-mail file as its ref
comes by (to learn its attachments' names, nothing more) and yields the part refs right after it.
So the folder walk and the manifest readers stay as they are, lazy, and know nothing of jobs; a
manifest row naming an e-mail is expanded like a walked file; a part's text is extracted only
when its work is taken, like any file's, and the ledger skips a finished part by the e-mail file's
size and modification time like any file. The costs: an e-mail is read once more to be expanded
(on every run, done or not), and a count of the input's documents (the progress bar's total,
`--mode auto`) counts an e-mail once, however many attachments it has.

An e-mail that cannot be read or taken apart is passed on whole: its extraction then fails with the
reason, as an error row. An attachment of a type docpipe does not read (an image) gets no ref; the
e-mail's text notes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from .batches import DocumentBatch
from .errors import ExtractionError
from .extract import MAX_FILE_BYTES
from .refs import DocumentRef

__all__ = ["MAIL_SUFFIXES", "expand_attachments", "part_refs"]

MAIL_SUFFIXES = frozenset({".eml"})


def expand_attachments(pieces: Iterator[DocumentRef | DocumentBatch]) -> Iterator[DocumentRef | DocumentBatch]:
    """The input with each e-mail followed by its attachments' refs; anything else passed on as it is.

    A batch the reader made (a JSONL block) is passed on unless it names an e-mail file: then its
    refs are built, and it is passed on expanded.
    """
    for piece in pieces:
        if isinstance(piece, DocumentRef):
            yield from part_refs(piece)
        elif any(ref is not None and _is_mail(ref) for ref in piece.refs):
            yield DocumentBatch([part for index in range(len(piece)) for part in part_refs(piece.ref(index))])
        else:
            yield piece


def part_refs(ref: DocumentRef) -> list[DocumentRef]:
    """The refs of an e-mail file: itself without its attachments, then each attachment docpipe reads.

    Any other ref, and an e-mail that cannot be read or taken apart, is its only ref.
    """
    if not _is_mail(ref):
        return [ref]
    assert ref.path is not None
    from .extract_email import attachment_names

    try:
        with open(ref.path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return [ref]
        names = attachment_names(data, lambda message: ExtractionError(message, document_id=ref.doc_id))
    except (OSError, ExtractionError):
        return [ref]  # read whole, its extraction says what is wrong
    parts = [ref._replace(part=0)]
    for attachment in names:
        if attachment.readable:
            doc_id = f"{ref.doc_id}#{attachment.number}-{attachment.name}"
            source = f"{ref.source}#{attachment.name}"
            parts.append(DocumentRef(doc_id, source, ref.path, None, dict(ref.metadata), part=attachment.number))
    return parts


def _is_mail(ref: DocumentRef) -> bool:
    return (
        ref.error is None
        and ref.part is None
        and ref.path is not None
        and os.path.splitext(ref.path.name)[1].lower() in MAIL_SUFFIXES
    )
