"""E-mail attachments as refs of their own: ids, sources, parts, and what is passed on untouched."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from pipeline.attachments import expand_attachments, part_refs
from pipeline.batches import DocumentBatch
from pipeline.errors import ExtractionError
from pipeline.refs import DocumentRef


def write_email(path: Path) -> Path:
    message = EmailMessage()
    message["From"] = "billing@northwind-logistics.example"
    message["Subject"] = "Invoice and logo"
    message.set_content("See attached.")
    message.add_attachment(b"%PDF-1.4 a pdf", maintype="application", subtype="pdf", filename="invoice 0188.pdf")
    message.add_attachment(b"\x89PNG\r\n", maintype="image", subtype="png", filename="logo.png")
    message.add_attachment("a,b\n1,2\n", subtype="csv", filename="../lines.csv")
    path.write_bytes(message.as_bytes())
    return path


def test_an_email_is_followed_by_its_readable_attachments(tmp_path: Path) -> None:
    """The e-mail becomes part 0; each attachment docpipe reads a ref with its number, name and the metadata."""
    path = write_email(tmp_path / "in.eml")
    ref = DocumentRef("mail-7", "inbox/in.eml", path, None, {"dept": "finance"})
    expected = [
        DocumentRef("mail-7", "inbox/in.eml", path, None, {"dept": "finance"}, part=0),
        DocumentRef("mail-7#1-invoice 0188.pdf", "inbox/in.eml#invoice 0188.pdf", path, None, {"dept": "finance"},
                    part=1),
        DocumentRef("mail-7#3-lines.csv", "inbox/in.eml#lines.csv", path, None, {"dept": "finance"}, part=3),
    ]
    assert expected == part_refs(ref)


def test_other_refs_and_unreadable_emails_pass_whole(tmp_path: Path) -> None:
    """A text file, an error ref, inline text and an e-mail that cannot be taken apart are their only ref."""
    (tmp_path / "junk.eml").write_bytes(b"no headers at all")
    refs = [
        DocumentRef("a.txt", "a.txt", tmp_path / "a.txt", None, {}),
        DocumentRef("m:1", "m:1", None, "inline text", {}),
        DocumentRef("gone.eml", "gone.eml", tmp_path / "gone.eml", None, {}),
        DocumentRef("junk.eml", "junk.eml", tmp_path / "junk.eml", None, {}),
        DocumentRef("bad", "m:2", None, None, {}, ExtractionError("file not found")),
    ]
    assert [[ref] for ref in refs] == [part_refs(ref) for ref in refs]


def test_a_batch_naming_an_email_is_expanded_in_order(tmp_path: Path) -> None:
    """A reader's batch holding an e-mail is passed on expanded, its order kept; one without is passed as it is."""
    path = write_email(tmp_path / "in.eml")
    plain = DocumentBatch([DocumentRef("x", "m:1", None, "inline", {})])
    mixed = DocumentBatch([DocumentRef("y", "m:2", None, "first", {}), DocumentRef("e", "in.eml", path, None, {})])
    pieces = list(expand_attachments(iter([plain, mixed])))
    assert plain is pieces[0]
    assert isinstance(pieces[1], DocumentBatch)
    assert ["y", "e", "e#1-invoice 0188.pdf", "e#3-lines.csv"] == [ref.doc_id for ref in pieces[1].refs if ref]
