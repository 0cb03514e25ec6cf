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

import hashlib
import os
from collections.abc import Iterator

from .batches import DocumentBatch
from .errors import DocumentError, ExtractionError
from .extract import MAX_FILE_BYTES
from .refs import DocumentRef

__all__ = ["MAIL_SUFFIXES", "expand_attachments", "part_refs"]

MAIL_SUFFIXES = frozenset({".eml"})


def expand_attachments(pieces: Iterator[DocumentRef | DocumentBatch]) -> Iterator[DocumentRef | DocumentBatch]:
    """The input with each e-mail followed by its attachments' refs; anything else passed on as it is.

    A batch the reader made (a JSONL block) is passed on unless it names an e-mail file or a
    document under an attachment's id: then its refs are built, and it is passed on expanded.

    An attachment's id is made here, after the input's own duplicate check, so it is checked here:
    an attachment whose id an earlier document has, or a later document under an attachment's id,
    is an error row ("duplicate id", under `<id> (duplicate id)`, so that it shadows no row) rather
    than a second document under the same id, which would be sent again on every run. Ids are
    remembered as 8-byte digests, as the manifest readers do.
    """
    claims = _Claims()
    for piece in pieces:
        if isinstance(piece, DocumentRef):
            yield from claims.checked(part_refs(piece))
            continue
        ids = [ref.doc_id if ref is not None else "" for ref in piece.refs]
        inline = piece.inline_rows()
        for index, doc_id in zip(inline, piece.inline_ids(inline), strict=True):
            ids[index] = doc_id
        if any(ref is not None and _is_mail(ref) for ref in piece.refs) or claims.any_made(ids):
            yield DocumentBatch(
                [part for index in range(len(piece)) for part in claims.checked(part_refs(piece.ref(index)))]
            )
        else:
            claims.see(ids)
            yield piece


class _Claims:
    """The ids seen so far, and which of them attachments took."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self.made: set[bytes] = set()

    def see(self, ids: list[str]) -> None:
        self.seen.update(map(_digest, ids))

    def any_made(self, ids: list[str]) -> bool:
        return bool(self.made) and any(_digest(doc_id) in self.made for doc_id in ids)

    def checked(self, refs: list[DocumentRef]) -> list[DocumentRef]:
        """The refs, an e-mail's parts included, with an id taken twice turned into an error ref."""
        out = []
        for ref in refs:
            digest = _digest(ref.doc_id)
            attachment = ref.part is not None and ref.part > 0
            if ref.error is None and (digest in self.made or (attachment and digest in self.seen)):
                # Its row goes under an id of its own: an error row never shadows the other document's row.
                doc_id = f"{ref.doc_id} (duplicate id)"
                error = DocumentError(
                    f"duplicate id {ref.doc_id!r}: an attachment of an e-mail and another document both have it; "
                    "rename the file or the manifest id",
                    document_id=doc_id,
                    path=ref.source,
                )
                ref = DocumentRef(doc_id, ref.source, None, None, dict(ref.metadata), error=error)
            elif attachment:
                self.made.add(digest)
            self.seen.add(digest)
            out.append(ref)
        return out


def _digest(doc_id: str) -> bytes:
    return hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()


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
