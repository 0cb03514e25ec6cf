"""Real-world formats: HTML main content, DOCX, XLSX and e-mail with attachments, and how each fails."""

from __future__ import annotations

import datetime
import functools
import io
import zipfile
from email.message import EmailMessage
from pathlib import Path

import docx
import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import extract_office
from pipeline.errors import ExtractionError
from pipeline.extract import ExtractedText, extract_bytes, extract_text
from pipeline.extract_email import AttachmentName, attachment_names
from pipeline.extract_html import MIN_MAIN_CONTENT_CHARS

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "documents"
WEB = SAMPLE / "web"
DECOYS = ("SCRIPT TEXT", "MUST NOT APPEAR", "ALL SYSTEMS DOWN", "placeholder that must not appear")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def failure(data: bytes, suffix: str, *, part: int | None = None) -> str:
    with pytest.raises(ExtractionError) as caught:
        extract_bytes(data, suffix, document_id="doc-1", path=f"in/file{suffix}", part=part)
    assert ("doc-1", f"in/file{suffix}") == (caught.value.document_id, caught.value.path)
    return caught.value.message


# -- HTML: main content ----------------------------------------------------------------------------


def test_html_main_content_drops_navigation_banner_sidebar_and_footer() -> None:
    """A news page yields its title, then the article: menus, cookie banner, sidebar and footer are gone."""
    text = extract_text(WEB / "news_reno_wms_golive.html").text
    lines = text.split("\n")
    assert "Reno goes live on Vantora WMS: what changed for our customers | Northwind Logistics Newsroom" == lines[0]
    assert "Reno goes live on Vantora WMS: what changed for our customers" == lines[1]
    for kept in (
        "one week later than first planned",
        "What customers will notice",
        "| Dock-to-stock time (hours) | 11.2 | 6.8 |",
        "no data was lost.",
        "Calder & Finch Outfitters now see their stock exactly as we do",
    ):
        assert kept in text
    for dropped in (
        "Accept all cookies",
        "Track a shipment",
        "Contract warehousing",
        "Most read",
        "Subscribe to the Northwind Dispatch",
        "Need pallet space this winter",
        "All rights reserved",
        "Share on LinkedIn",
        "Related articles",
    ):
        assert dropped not in text


@pytest.mark.parametrize("page", sorted(WEB.glob("*.html")), ids=lambda path: path.name)
def test_html_sample_pages_never_show_decoys(page: Path) -> None:
    """No script, style, JSON-LD or noscript decoy of the sample pages reaches the text; the title leads."""
    text = extract_text(page).text
    assert [] == [decoy for decoy in DECOYS if decoy in text]
    assert len(text) > MIN_MAIN_CONTENT_CHARS
    assert "<" not in text.split("\n")[0]


def test_html_tiny_page_falls_back_to_visible_text() -> None:
    """A page too small for a main-content guess is read whole, not refused as an empty document."""
    page = b"<html><head><title>Careers</title></head><body><nav>Home</nav><p>We are hiring drivers.</p></body></html>"
    assert ExtractedText("Careers\nHome\nWe are hiring drivers.", "html", "utf-8", None) == extract_bytes(page, ".html")


def test_html_hidden_elements_never_reach_main_content() -> None:
    """noscript, template and comment text stay out of a page long enough for trafilatura to read."""
    article = "<p>" + "Linehaul capacity on the Columbus to Reno lane was tight in August. " * 10 + "</p>"
    page = (
        "<html><head><title>Lane report</title></head><body><article><h1>Lane report</h1>"
        f"<noscript>NOSCRIPT TEXT</noscript><template><p>TEMPLATE TEXT</p></template><!-- COMMENT TEXT -->{article}"
        "</article></body></html>"
    )
    text = extract_bytes(page.encode(), ".html").text
    assert text.startswith("Lane report\nLinehaul capacity")
    assert [] == [hidden for hidden in ("NOSCRIPT", "TEMPLATE", "COMMENT") if hidden in text]


# -- DOCX ------------------------------------------------------------------------------------------


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Storage Agreement", level=1)
    document.add_paragraph("Between Northwind Logistics, Inc. and Tessaro Coffee Roasters.")
    document.add_paragraph("")
    document.add_heading("1. Rates", level=2)
    table = document.add_table(rows=3, cols=3)
    rows = [("Service", "Unit", "Rate (USD)"), ("Storage", "pallet/month", "18.50"), ("", "", "")]
    for row, values in enumerate(rows):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    merged = table.cell(2, 0).merge(table.cell(2, 1))
    merged.text = "Handling, in and out"
    table.cell(2, 2).text = "6.25"
    document.add_paragraph("Signed in Reno on 2 December 2026.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_docx_paragraphs_headings_and_tables_in_order() -> None:
    """A DOCX yields its paragraphs and headings as lines and its tables as `cell | cell` rows, in order."""
    expected = (
        "Storage Agreement\n"
        "Between Northwind Logistics, Inc. and Tessaro Coffee Roasters.\n"
        "1. Rates\n"
        "Service | Unit | Rate (USD)\n"
        "Storage | pallet/month | 18.50\n"
        "Handling, in and out | 6.25\n"
        "Signed in Reno on 2 December 2026."
    )
    assert ExtractedText(expected, "docx", None, None) == extract_bytes(make_docx(), ".docx")


def test_sample_docx_is_read() -> None:
    """The sample storage agreement reads as text, its rate table as rows."""
    text = extract_text(SAMPLE / "contracts" / "storage_agreement_tessaro_coffee.docx").text
    assert text.startswith("Storage Services Agreement")
    assert "Controlled-ambient storage (15–21 °C) | pallet / month |" in text


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as package:
        for name, data in members.items():
            package.writestr(name, data)
    return buffer.getvalue()


OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504


@pytest.mark.parametrize(
    ("suffix", "data", "message"),
    [
        (".docx", b"plain text, not a package", "corrupt DOCX: not a readable zip package"),
        (".docx", OLE + "EncryptedPackage".encode("utf-16-le"), "encrypted DOCX: password required"),
        (".docx", OLE, "not a DOCX file: this is a legacy binary Word file (.doc); save it as DOCX"),
        (".docx", zip_of({"readme.txt": b"hello"}), "not a DOCX file: the package has no word/document.xml"),
        (".docx", zip_of({"word/document.xml": b"<w:document"}), "corrupt DOCX: "),
        (".xlsx", b"PK\x03\x04 truncated", "corrupt XLSX: not a readable zip package"),
        (".xlsx", OLE + "EncryptedPackage".encode("utf-16-le"), "encrypted XLSX: password required"),
        (".xlsx", OLE, "not an XLSX file: this is a legacy binary Excel file (.xls); save it as XLSX"),
        (".xlsx", zip_of({"xl/workbook.xml": b"<workbook"}), "corrupt XLSX: "),
    ],
    ids=["not-zip", "encrypted", "legacy-doc", "no-document", "bad-xml", "xlsx-not-zip", "xlsx-encrypted",
         "legacy-xls", "xlsx-bad-xml"],
)
def test_corrupt_office_files_say_why(suffix: str, data: bytes, message: str) -> None:
    """A corrupt, encrypted or legacy Office file is an ExtractionError that says what it is and what to do."""
    assert failure(data, suffix).startswith(message)


def test_docx_as_xlsx_is_refused() -> None:
    """A Word file named .xlsx is refused for what it is, not read as garbage."""
    assert failure(make_docx(), ".xlsx").startswith("not an XLSX file: the package has no xl/workbook.xml")


def test_office_zip_bomb_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A package that unpacks past the limit is refused before any XML is parsed."""
    monkeypatch.setattr(extract_office, "MAX_UNPACKED_BYTES", 1000)
    assert failure(zip_of({"word/document.xml": b" " * 5000}), ".docx").startswith("DOCX too large: it unpacks to")


# -- XLSX ------------------------------------------------------------------------------------------


def make_xlsx(rows_by_sheet: dict[str, list[list[object]]]) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in rows_by_sheet.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_one_section_per_sheet() -> None:
    """Each sheet is a `## Sheet: name` section of `cell | cell` rows; values as a person reads them."""
    data = make_xlsx(
        {
            "Rates": [
                ["Lane", "Rate USD", "Valid from", "Fuel incl."],
                ["Columbus–Reno", 4350.0, datetime.datetime(2026, 11, 1), True],
                [None, None, None, None],
                ["Reno–Denver", 1875.5, datetime.datetime(2027, 1, 4, 8, 30), False],
            ],
            "Notes": [],
            "Contacts": [[None, "Marcus Ellery", None]],
        }
    )
    expected = (
        "## Sheet: Rates\n"
        "Lane | Rate USD | Valid from | Fuel incl.\n"
        "Columbus–Reno | 4350 | 2026-11-01 | TRUE\n"
        "Reno–Denver | 1875.5 | 2027-01-04 08:30:00 | FALSE\n"
        "\n"
        "## Sheet: Notes\n"
        "(no values)\n"
        "\n"
        "## Sheet: Contacts\n"
        " | Marcus Ellery"
    )
    assert ExtractedText(expected, "xlsx", None, None) == extract_bytes(data, ".xlsx")


def test_xlsx_rows_bounded_and_the_cut_said(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sheet longer than the bound shows its first rows and says it was cut."""
    monkeypatch.setattr(extract_office, "MAX_SHEET_ROWS", 3)
    text = extract_bytes(make_xlsx({"Big": [[index] for index in range(10)]}), ".xlsx").text
    assert "## Sheet: Big\n0\n1\n2\n(cut: only the first 3 rows of this sheet are shown)" == text


def test_xlsx_without_values_is_empty() -> None:
    """A workbook whose sheets hold nothing is an empty document."""
    assert failure(make_xlsx({"Blank": []}), ".xlsx").startswith("empty document")


def test_sample_xlsx_is_read() -> None:
    """The sample rate card reads as one section per sheet."""
    text = extract_text(SAMPLE / "contracts" / "rate_card_2027_brightwater.xlsx").text
    assert text.startswith("## Sheet: Linehaul\n")
    assert "## Sheet: Accessorials\n" in text


# -- e-mail ----------------------------------------------------------------------------------------

SAMPLE_PDF = SAMPLE / "pdfs" / "invoice_NWL-INV-2026-0188.pdf"


def make_email(*, html_only: bool = False) -> bytes:
    message = EmailMessage()
    message["From"] = "Dana Whitfield <dana.whitfield@northwind-logistics.example>"
    message["To"] = "ap@brightwater-home.example"
    message["Cc"] = "billing@northwind-logistics.example"
    message["Date"] = "Tue, 10 Nov 2026 09:12:00 -0500"
    message["Subject"] = "=?utf-8?q?Invoice_NWL-INV-2026-0188_=E2=80=93_October_linehaul?="
    if html_only:
        message.set_content("<html><body><p>Please find the invoice attached.</p></body></html>", subtype="html")
    else:
        message.set_content("Hello,\n\nplease find the invoice attached.\n\nDana")
        message.add_alternative("<p>HTML ALTERNATIVE</p>", subtype="html")
    message.add_attachment(SAMPLE_PDF.read_bytes(), maintype="application", subtype="pdf",
                           filename="invoice_NWL-INV-2026-0188.pdf")
    message.add_attachment(b"\x89PNG\r\n\x1a\n", maintype="image", subtype="png", filename="logo.png")
    message.add_attachment(b"%PDF-1.4 cut short", maintype="application", subtype="pdf", filename="old/scan.pdf")
    message.add_attachment(make_docx(), maintype="application",
                           subtype="vnd.openxmlformats-officedocument.wordprocessingml.document", filename="terms.docx")
    forwarded = EmailMessage()
    forwarded["From"] = "ap@brightwater-home.example"
    forwarded["Subject"] = "PO BW-PO-34102"
    forwarded.set_content("Our purchase order for the October loads.")
    message.add_attachment(forwarded)
    return message.as_bytes()


def test_email_headers_body_and_attachment_sections() -> None:
    """An e-mail yields its headers, its plain body, then one section per attachment; unreadable ones noted."""
    text = extract_bytes(make_email(), ".eml").text
    message, *sections = text.split("\n\n## Attachment: ")
    head, body = message.split("\n\n", 1)
    assert (
        "From: Dana Whitfield <dana.whitfield@northwind-logistics.example>\n"
        "To: ap@brightwater-home.example\n"
        "Cc: billing@northwind-logistics.example\n"
        "Date: Tue, 10 Nov 2026 09:12:00 -0500\n"
        "Subject: Invoice NWL-INV-2026-0188 – October linehaul"
    ) == head
    assert "Hello,\n\nplease find the invoice attached.\n\nDana" == body
    assert "HTML ALTERNATIVE" not in text
    headings = [section.split("\n", 1)[0] for section in sections]
    assert [
        "invoice_NWL-INV-2026-0188.pdf (application/pdf)",
        "logo.png (image/png)",
        "scan.pdf (application/pdf)",
        "terms.docx (application/vnd.openxmlformats-officedocument.wordprocessingml.document)",
        "attachment-5.eml (message/rfc822)",
    ] == headings
    notes = [section.split("\n", 1)[1] for section in sections]
    assert "INVOICE NWL-INV-2026-0188" in notes[0]
    assert "(not read: docpipe does not read image/png attachments)" == notes[1]
    assert notes[2].startswith("(not read: corrupt PDF") and "\n" not in notes[2]
    assert notes[3].startswith("Storage Agreement\n")
    forwarded = "From: ap@brightwater-home.example\nSubject: PO BW-PO-34102\n\nOur purchase order for the October loads"
    assert forwarded + "." == notes[4]


def test_email_html_body_when_no_plain_text() -> None:
    """Without a text/plain part, the HTML body is read through the HTML extractor."""
    text = extract_bytes(make_email(html_only=True), ".eml").text
    assert "\n\nPlease find the invoice attached.\n\n## Attachment: invoice_NWL-INV-2026-0188.pdf" in text


def test_email_parts_read_one_at_a_time() -> None:
    """Part 0 is the e-mail with its readable attachments only named; part n is the nth attachment alone."""
    data = make_email()
    alone = extract_bytes(data, ".eml", part=0)
    assert "INVOICE NWL-INV-2026-0188" not in alone.text
    invoice_section = "## Attachment: invoice_NWL-INV-2026-0188.pdf (application/pdf)\n(read as a document of its own)"
    assert invoice_section in alone.text
    assert "## Attachment: logo.png (image/png)\n(not read: docpipe does not read image/png attachments)" in alone.text
    invoice = extract_bytes(data, ".eml", part=1)
    assert ("pdf", 1) == (invoice.kind, invoice.pages)
    assert "INVOICE NWL-INV-2026-0188" in invoice.text
    assert "docx" == extract_bytes(data, ".eml", part=4).kind
    assert "eml" == extract_bytes(data, ".eml", part=5).kind
    assert failure(data, ".eml", part=3).startswith("attachment scan.pdf: corrupt PDF")
    assert failure(data, ".eml", part=2).startswith("the e-mail has no attachment 2 docpipe reads")
    assert failure(data, ".eml", part=9).startswith("the e-mail has no attachment 9 docpipe reads")
    assert failure(b"hello", ".txt", part=1).startswith("a txt file has no parts")


def test_email_attachment_names() -> None:
    """The attachments are listed numbered from 1, readable or not, names without folders."""
    expected = [
        AttachmentName(1, "invoice_NWL-INV-2026-0188.pdf", True),
        AttachmentName(2, "logo.png", False),
        AttachmentName(3, "scan.pdf", True),
        AttachmentName(4, "terms.docx", True),
        AttachmentName(5, "attachment-5.eml", True),
    ]
    assert expected == attachment_names(make_email(), ExtractionError)


def test_sample_email_with_pdf_attachment() -> None:
    """The sample e-mail reads with its PDF attachment as a section."""
    text = extract_text(SAMPLE / "emails" / "invoice_with_pdf_NWL-INV-2026-0188.eml").text
    assert text.startswith("From: ")
    assert "\n## Attachment: invoice_NWL-INV-2026-0188.pdf (application/pdf)\n" in text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x01\x02 random bytes \xff\xfe", "not an e-mail: it has no From, To, Subject or Date header"),
        (b"Just a note without headers.\n", "not an e-mail: it has no From, To, Subject or Date header"),
    ],
)
def test_not_an_email(data: bytes, message: str) -> None:
    """Bytes that are not an e-mail are refused, with a reason, rather than read as a body."""
    assert failure(data, ".eml").startswith(message)


def test_email_with_undecodable_header_bytes_is_valid_text() -> None:
    """8-bit header bytes and an unknown charset still give valid UTF-8 text."""
    data = (
        b"From: Bj\xf6rn <b@x.example>\nSubject: Caf\xc3\xa9 \xff\n"
        b"Content-Type: text/plain; charset=x-unknown\n\nK\xc3\xa4se\x07 order\n"
    )
    text = extract_bytes(data, ".eml").text
    text.encode("utf-8")
    assert "Subject: Café \ufffd" in text and "Käse order" in text


def test_deeply_nested_forwards_stop_with_a_note() -> None:
    """Forwarded e-mails inside forwarded e-mails are read a few levels deep, then noted."""
    message = EmailMessage()
    message["Subject"] = "level 0"
    message.set_content("body 0")
    for level in range(1, 6):
        outer = EmailMessage()
        outer["Subject"] = f"level {level}"
        outer.set_content(f"body {level}")
        outer.add_attachment(message)
        message = outer
    text = extract_bytes(message.as_bytes(), ".eml").text
    assert "body 5" in text and "body 3" in text and "body 2" not in text
    assert "(not read: a forwarded e-mail nested more than 3 deep is not read)" in text


# -- any bytes: a clear error or text --------------------------------------------------------------


def _valid_docx_with(xml: bytes) -> bytes:
    """A real DOCX package whose main part is replaced by `xml`."""
    source = zipfile.ZipFile(io.BytesIO(_originals()[".docx"]))
    return zip_of({name: xml if name == "word/document.xml" else source.read(name) for name in source.namelist()})


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".eml", ".docx", ".xlsx", ".html"]))
def test_any_bytes_give_text_or_extraction_error(data: bytes, suffix: str) -> None:
    """Arbitrary bytes as an e-mail, DOCX, XLSX or HTML page: valid text or an ExtractionError, nothing else."""
    try:
        result = extract_bytes(data, suffix)
    except ExtractionError as exc:
        assert exc.message
    else:
        result.text.encode("utf-8")


@functools.cache
def _originals() -> dict[str, bytes]:
    """Made once: an e-mail's MIME boundary is random, and the fuzzer needs the same bytes every time."""
    return {".docx": make_docx(), ".xlsx": make_xlsx({"S": [[1, "a"]]}), ".eml": make_email()}


@FUZZ
@given(data=st.data())
def test_mutated_office_and_email_files_fail_cleanly(data: st.DataObject) -> None:
    """Real DOCX, XLSX and e-mail files with bytes flipped or their XML replaced: text or an ExtractionError."""
    suffix = data.draw(st.sampled_from([".docx", ".xlsx", ".eml", ".docx-xml"]))
    if suffix == ".docx-xml":
        suffix, original = ".docx", _valid_docx_with(data.draw(st.binary(max_size=300)))
    else:
        original = _originals()[suffix]
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(0, 8))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    try:
        extract_bytes(bytes(mutated), suffix).text.encode("utf-8")
    except ExtractionError as exc:
        assert exc.message


def test_email_with_malformed_html_body_keeps_its_headers() -> None:
    """An HTML body the parser refuses is a one-line note; the headers are still read."""
    data = b"From: a@northwind-logistics.example\nContent-Type: text/html\n\n<p>x</p><![ if x ]><p>y"
    text = extract_bytes(data, ".eml").text
    assert text.startswith("From: a@northwind-logistics.example\n\n(body not read: malformed HTML: ")
