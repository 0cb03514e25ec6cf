"""End to end: DOCX, XLSX, e-mail and main-content HTML through `docpipe run`, one document as INPUT,
and e-mail attachments as documents of their own, through the real SDK against the emulator."""

from __future__ import annotations

import io
import shutil
from email.message import EmailMessage
from pathlib import Path

import docx
from click.testing import CliRunner, Result
from conftest import TEST_KEY

import pipeline
from pipeline.cli import main
from pipeline.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "documents"
TRIAGE = ROOT / "jobs" / "triage.toml"
NEW_FORMATS = [
    "contracts/storage_agreement_tessaro_coffee.docx",
    "contracts/rate_card_2027_brightwater.xlsx",
    "emails/invoice_with_pdf_NWL-INV-2026-0188.eml",
    "web/news_reno_wms_golive.html",
]


def invoke(args: list[str], emulator: Emulator) -> Result:
    environment = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url}
    return CliRunner().invoke(main, args, env=environment, catch_exceptions=False)


def message_requests(emulator: Emulator) -> int:
    return int(emulator.control.stats()["requests"]["by_endpoint"].get("messages", 0))


def documents_job(tmp_path: Path) -> Path:
    job = tmp_path / "triage_attachments.toml"
    setting = 'too_long = "chunk"'
    job.write_text(TRIAGE.read_text().replace(setting, f'{setting}\nattachments = "documents"'))
    return job


def test_a_folder_of_new_formats_gives_ok_rows(emulator: Emulator, tmp_path: Path) -> None:
    """DOCX, XLSX, an e-mail with a PDF attachment and a page full of boilerplate: one ok row each."""
    inbox = tmp_path / "inbox"
    for name in NEW_FORMATS:
        (inbox / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE / name, inbox / name)
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(inbox), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    frame = pipeline.load_results(out)
    assert sorted(NEW_FORMATS) == sorted(frame.doc_id)
    assert {"ok"} == set(frame.status)
    assert sorted(NEW_FORMATS) == sorted(frame.source)


def test_one_document_as_input_gives_one_row(emulator: Emulator, tmp_path: Path) -> None:
    """`docpipe run JOB file.docx` runs that document alone, its id the file name; a rerun sends nothing."""
    document = SAMPLE / "contracts" / "storage_agreement_tessaro_coffee.docx"
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(document), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    frame = pipeline.load_results(out)
    assert [("storage_agreement_tessaro_coffee.docx", "storage_agreement_tessaro_coffee.docx", "ok")] == list(
        zip(frame.doc_id, frame.source, frame.status, strict=True)
    )
    again = invoke(["run", str(TRIAGE), str(document), "--out", str(out)], emulator)
    assert 0 == again.exit_code, again.output
    assert 1 == message_requests(emulator)


def test_a_text_file_as_input_is_a_document_not_a_manifest(emulator: Emulator, tmp_path: Path) -> None:
    """A `.txt` INPUT, once refused as an unsupported manifest, is one document; the dry run says so too."""
    note = tmp_path / "note.txt"
    note.write_text("Please call Bluepeak Freight about the missed pickup in Reno on Tuesday.\n")
    out = tmp_path / "out"
    dry = invoke(["run", str(TRIAGE), str(note), "--out", str(out), "--dry-run"], emulator)
    assert 0 == dry.exit_code, dry.output
    assert "would send 1 document(s) in 1 request(s)" in dry.output
    result = invoke(["run", str(TRIAGE), str(note), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    assert ["note.txt"] == list(pipeline.load_results(out).doc_id)


def test_a_broken_document_as_input_is_an_error_row(emulator: Emulator, tmp_path: Path) -> None:
    """One corrupt DOCX as INPUT finishes with exit 1 and an error row that says why."""
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"this is not a zip package")
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(broken), "--out", str(out)], emulator)
    assert 1 == result.exit_code, result.output
    frame = pipeline.load_results(out)
    assert ["error"] == list(frame.status)
    assert frame.error_message[0].startswith("corrupt DOCX: not a readable zip package")
    assert 0 == message_requests(emulator)


def _email_with_attachments() -> bytes:
    message = EmailMessage()
    message["From"] = "Tomas Okafor <tomas@tessaro-coffee.example>"
    message["To"] = "Marcus Ilori <marcus.ilori@northwind-logistics.example>"
    message["Date"] = "Wed, 02 Dec 2026 08:15:00 -0800"
    message["Subject"] = "Signed storage agreement and December forecast"
    message.set_content("Hi Marcus,\n\nthe signed agreement and our pallet forecast are attached.\n\nTomas")
    agreement = docx.Document()
    agreement.add_paragraph("Storage Services Agreement NWL-SSA-2026-031, signed 1 December 2026.")
    buffer = io.BytesIO()
    agreement.save(buffer)
    message.add_attachment(buffer.getvalue(), maintype="application",
                           subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
                           filename="signed agreement.docx")
    message.add_attachment(b"\x89PNG\r\n\x1a\n", maintype="image", subtype="png", filename="logo.png")
    message.add_attachment("Week,Pallets\n49,120\n50,135\n", subtype="csv", filename="forecast.csv")
    return message.as_bytes()


def test_attachments_as_documents_give_a_row_each(emulator: Emulator, tmp_path: Path) -> None:
    """attachments = "documents": the e-mail and each attachment docpipe reads are rows of their own."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "signed.eml").write_bytes(_email_with_attachments())
    shutil.copy(SAMPLE / "emails" / "invoice_with_pdf_NWL-INV-2026-0188.eml", inbox / "invoice.eml")
    (inbox / "memo.txt").write_text("The Denver hub opens in mid-2027.\n")
    out = tmp_path / "out"
    job = documents_job(tmp_path)
    result = invoke(["run", str(job), str(inbox), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    frame = pipeline.load_results(out).sort_values("doc_id")
    expected = [
        ("invoice.eml", "invoice.eml"),
        ("invoice.eml#1-invoice_NWL-INV-2026-0188.pdf", "invoice.eml#invoice_NWL-INV-2026-0188.pdf"),
        ("memo.txt", "memo.txt"),
        ("signed.eml", "signed.eml"),
        ("signed.eml#1-signed agreement.docx", "signed.eml#signed agreement.docx"),
        ("signed.eml#3-forecast.csv", "signed.eml#forecast.csv"),
    ]
    assert expected == list(zip(frame.doc_id, frame.source, strict=True))
    assert {"ok"} == set(frame.status)
    sent = message_requests(emulator)
    assert 6 == sent
    again = invoke(["run", str(job), str(inbox), "--out", str(out)], emulator)
    assert 0 == again.exit_code, again.output
    assert sent == message_requests(emulator)
    assert "6 already done" in again.output


def test_attachments_mode_is_part_of_the_fingerprint(emulator: Emulator, tmp_path: Path) -> None:
    """Switching an e-mail's attachments from sections to documents asks about the e-mail again."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(SAMPLE / "emails" / "invoice_with_pdf_NWL-INV-2026-0188.eml", inbox / "invoice.eml")
    out = tmp_path / "out"
    assert 0 == invoke(["run", str(TRIAGE), str(inbox), "--out", str(out)], emulator).exit_code
    result = invoke(["run", str(documents_job(tmp_path)), str(inbox), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    assert 3 == message_requests(emulator)  # the whole e-mail, then the e-mail alone and its PDF
    assert 2 == pipeline.load_results(out, latest=False).job_fingerprint.nunique()


def test_attachments_of_a_manifest_row_keep_its_metadata(emulator: Emulator, tmp_path: Path) -> None:
    """A JSONL row naming an e-mail is expanded like a walked file: its attachment rows carry the row's metadata."""
    shutil.copy(SAMPLE / "emails" / "invoice_with_pdf_NWL-INV-2026-0188.eml", tmp_path / "invoice.eml")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"id": "doc-1", "path": "invoice.eml", "department": "finance"}\n'
        '{"id": "doc-2", "text": "Inline memo about the Reno lease.", "department": "legal"}\n'
    )
    out = tmp_path / "out"
    result = invoke(["run", str(documents_job(tmp_path)), str(manifest), "--out", str(out)], emulator)
    assert 0 == result.exit_code, result.output
    frame = pipeline.load_results(out).sort_values("doc_id")
    expected = [
        ("doc-1", "invoice.eml", "finance"),
        ("doc-1#1-invoice_NWL-INV-2026-0188.pdf", "invoice.eml#invoice_NWL-INV-2026-0188.pdf", "finance"),
        ("doc-2", "m.jsonl:2", "legal"),
    ]
    assert expected == list(zip(frame.doc_id, frame.source, frame.department, strict=True))
