"""Text extraction from one file: encodings, HTML, JSON, CSV, PDF and every way a file can fail."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pypdf
import pytest

from pipeline import extract, extract_pdf
from pipeline.errors import ExtractionError
from pipeline.extract import MAX_FILE_BYTES, SUPPORTED_SUFFIXES, ExtractedText, extract_bytes, extract_text

SKIP_AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root can read files whatever their permissions")


def make_pdf(pages: list[str], *, extra_objects: tuple[bytes, ...] = (), trailer: bytes = b"") -> bytes:
    """A minimal PDF by hand: one Helvetica text line per page (WinAnsi, so Latin-1 text works).

    `extra_objects` are appended after the page objects; `trailer` adds entries to the trailer.
    """
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (" ".join(f"{4 + 2 * index} 0 R" for index in range(len(pages))).encode(), len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for index, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("cp1252")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (5 + 2 * index)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.extend(extra_objects)
    return assemble_pdf(objects, trailer=trailer)


def assemble_pdf(objects: list[bytes], *, trailer: bytes = b"") -> bytes:
    """A PDF of numbered objects (1 the catalog), with its cross-reference table; `trailer` adds trailer entries."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref)
    return bytes(out)


def aes256_pdf() -> bytes:
    """A one-page PDF whose trailer declares AES-256 (V5 R6) encryption with made-up password hashes."""
    encrypt = (
        b"<< /Filter /Standard /V 5 /R 6 /Length 256 /P -4 /O <%s> /U <%s> /OE <%s> /UE <%s> /Perms <%s> "
        b"/CF << /StdCF << /CFM /AESV3 /AuthEvent /DocOpen /Length 32 >> >> /StmF /StdCF /StrF /StdCF >>"
    ) % (b"11" * 48, b"22" * 48, b"33" * 32, b"44" * 32, b"55" * 16)
    document_id = b"<00112233445566778899aabbccddeeff>"
    return make_pdf(
        ["Hello"], extra_objects=(encrypt,), trailer=b"/Encrypt 6 0 R /ID [%s %s] " % (document_id, document_id)
    )


def encrypted_pdf(user_password: str) -> bytes:
    """The two-page test PDF encrypted with `user_password` (and a separate owner password)."""
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(make_pdf(["Secret page"])))
    writer.encrypt(user_password, owner_password="owner-secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", newline="")
    else:
        path.write_bytes(data)
    return path


def extraction_error(path: Path) -> ExtractionError:
    with pytest.raises(ExtractionError) as caught:
        extract_text(path, document_id="doc-1")
    return caught.value


# -- plain text and encodings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.txt", "txt"), ("a.text", "txt"), ("a.md", "md"), ("a.markdown", "md"), ("A.TXT", "txt"), ("b.Md", "md")],
)
def test_plain_text_suffixes_case_insensitive(tmp_path: Path, name: str, kind: str) -> None:
    """Text and Markdown files are read as they are, whatever the suffix's case."""
    path = write(tmp_path, name, "# Title\n\nBody line.\n")
    assert ExtractedText("# Title\n\nBody line.", kind, "utf-8", None) == extract_text(path)


def test_supported_suffixes() -> None:
    """The supported suffixes are exactly the documented ones."""
    expected = {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".json", ".csv", ".pdf", ".docx", ".xlsx", ".eml"}
    assert expected == SUPPORTED_SUFFIXES


@pytest.mark.parametrize("data", [b"line one\r\nline two\r\n", b"line one\rline two\r", b"line one\nline two\n"])
def test_newlines_normalised(tmp_path: Path, data: bytes) -> None:
    """CRLF and lone CR line endings become LF."""
    assert extract_text(write(tmp_path, "a.txt", data)).text == "line one\nline two"


def test_utf8_bom_stripped(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark is not part of the text."""
    result = extract_text(write(tmp_path, "a.txt", "\ufeffCafé".encode()))
    assert (result.text, result.encoding) == ("Café", "utf-8")


@pytest.mark.parametrize(
    "text",
    [
        "Café",
        "Straße",
        "Price: 12 € — “quoted” and ‘single’ – naïve",
        "Dear Renée,\r\nthe “Energiekostenzuschlag” rose by 14 %; Grüße aus Düsseldorf, µ × ½ …\r\n",
        "¿Dónde está el baño? Señor, ¡qué día!",
    ],
)
def test_cp1252_decodes(tmp_path: Path, text: str) -> None:
    """Windows-1252 text (accents, euro sign, smart quotes) decodes correctly, even when short."""
    result = extract_text(write(tmp_path, "legacy.txt", text.encode("cp1252")))
    assert (text.replace("\r\n", "\n").strip(), "cp1252") == (result.text, result.encoding)


def test_latin1_decodes(tmp_path: Path) -> None:
    """Latin-1 text decodes correctly (Windows-1252 is its superset for printable text)."""
    text = "café crème brûlée, garçon, naïve"
    assert text == extract_text(write(tmp_path, "latin.txt", text.encode("latin-1"))).text


@pytest.mark.parametrize(
    ("codec", "bom", "encoding"),
    [
        ("utf-16-le", b"\xff\xfe", "utf-16"),
        ("utf-16-be", b"\xfe\xff", "utf-16"),
        ("utf-32-le", b"\xff\xfe\x00\x00", "utf-32"),
        ("utf-32-be", b"\x00\x00\xfe\xff", "utf-32"),
    ],
)
def test_utf16_and_utf32_by_bom(tmp_path: Path, codec: str, bom: bytes, encoding: str) -> None:
    """UTF-16 and UTF-32 files with a byte-order mark decode."""
    text = "Grüße €5\nzweite Zeile"
    result = extract_text(write(tmp_path, "wide.txt", bom + text.encode(codec)))
    assert (text, encoding) == (result.text, result.encoding)


def test_cyrillic_legacy_encoding(tmp_path: Path) -> None:
    """A non-Western legacy encoding is still detected when the text is long enough to tell."""
    text = "Привет, как дела? Это тестовый документ для проверки кодировки."
    assert text == extract_text(write(tmp_path, "ru.txt", text.encode("cp1251"))).text


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfeA\x00B", b"\xff\xfe\x00\x00\x00\x00\x11\x00"],
    ids=["utf16-odd-length", "utf32-out-of-range"],
)
def test_undecodable_text(tmp_path: Path, data: bytes) -> None:
    """Bytes that contradict their byte-order mark are undecodable."""
    assert str(extraction_error(write(tmp_path, "bad.txt", data))).startswith("undecodable text:")


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        b"text\x00with a NUL",
        b"\x01\x02\x03abc\x04\x05" * 50,
    ],
    ids=["png", "nul", "control-characters"],
)
@pytest.mark.parametrize("suffix", [".txt", ".json", ".csv", ".html"])
def test_binary_content_in_text_file(tmp_path: Path, data: bytes, suffix: str) -> None:
    """Binary junk with a text suffix is refused, not decoded into garbage."""
    error = extraction_error(write(tmp_path, "junk" + suffix, data))
    assert str(error).startswith("binary content in a text file")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.txt", b""),
        ("blank.txt", b"  \n\t\r\n  "),
        ("bom-only.md", b"\xef\xbb\xbf \n"),
        ("wide-blank.txt", b"\xff\xfe" + " \n ".encode("utf-16-le")),
        ("only-script.html", b"<html><head><script>alert(1)</script></head><body> </body></html>"),
        ("empty-object.json", b"{ }"),
        ("empty-array.json", b"[]"),
        ("empty.csv", b"\n\n"),
        ("empty.pdf", b""),
    ],
)
def test_empty_document(tmp_path: Path, name: str, data: bytes) -> None:
    """An empty file, or one with nothing but whitespace once extracted, is an empty document."""
    assert str(extraction_error(write(tmp_path, name, data))).startswith("empty document")


# -- files that cannot be read ---------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    """A missing file says so, with its path, the document id and path attached."""
    path = tmp_path / "gone.txt"
    error = extraction_error(path)
    assert (f"file not found: {path}", "doc-1", str(path)) == (str(error), error.document_id, error.path)


def test_invalid_path(tmp_path: Path) -> None:
    """A path with a NUL character is an extraction error, not a ValueError."""
    assert "not a valid file path" in str(extraction_error(tmp_path / "a\x00b.txt"))


def test_directory(tmp_path: Path) -> None:
    """A directory is not a document."""
    (tmp_path / "folder.txt").mkdir()
    assert "is a directory" in str(extraction_error(tmp_path / "folder.txt"))


def test_fifo_is_not_read(tmp_path: Path) -> None:
    """A named pipe is refused without blocking on it."""
    os.mkfifo(tmp_path / "pipe.txt")
    assert "not a regular file" in str(extraction_error(tmp_path / "pipe.txt"))


@SKIP_AS_ROOT
def test_unreadable_file(tmp_path: Path) -> None:
    """A file without read permission says permission denied."""
    path = write(tmp_path, "secret.txt", "hidden")
    path.chmod(0)
    try:
        assert str(extraction_error(path)).startswith("permission denied")
    finally:
        path.chmod(0o600)


def test_file_too_large(tmp_path: Path) -> None:
    """A file over MAX_FILE_BYTES is refused from its size alone (the sparse file is never read)."""
    path = tmp_path / "huge.txt"
    with open(path, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    message = str(extraction_error(path))
    assert message.startswith("file too large: 50.0 MB, over the 50 MB limit")


def test_bytes_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """extract_bytes applies the same size limit."""
    monkeypatch.setattr(extract, "MAX_FILE_BYTES", 10)
    with pytest.raises(ExtractionError, match=r"^file too large"):
        extract_bytes(b"x" * 11, ".txt")


@pytest.mark.parametrize(("name", "shown"), [("photo.jpeg", "'.jpeg'"), ("archive.tar.GZ", "'.gz'"), ("README", "")])
def test_unsupported_suffix(tmp_path: Path, name: str, shown: str) -> None:
    """An unsupported file type is named and the supported ones listed."""
    message = str(extraction_error(write(tmp_path, name, "text")))
    assert message.startswith("unsupported ")
    assert shown in message
    assert "supported: .csv, .docx, .eml, .htm, .html, .json, .markdown, .md, .pdf, .text, .txt, .xlsx" in message


@pytest.mark.parametrize("suffix", ["txt", ".txt", "TXT"])
def test_extract_bytes_suffix_forms(suffix: str) -> None:
    """extract_bytes takes the suffix with or without its dot, in any case."""
    result = extract_bytes(b"hello", suffix, document_id="d", path="mem.txt")
    assert ExtractedText("hello", "txt", "utf-8", None) == result


def test_extract_bytes_error_context() -> None:
    """Errors from extract_bytes carry the document id and path given."""
    with pytest.raises(ExtractionError) as caught:
        extract_bytes(b"", ".txt", document_id="doc-9", path="in/memory.txt")
    assert (caught.value.document_id, caught.value.path) == ("doc-9", "in/memory.txt")


# -- HTML ------------------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html><head><title>Quarterly &amp; Annual</title>
<style>body { color: red } /* STYLE TEXT */</style>
<script>var x = "SCRIPT TEXT <p>not a tag</p>";</script>
<meta charset="utf-8"></head>
<body>
<!-- COMMENT TEXT -->
<script type="application/ld+json">{"note": "BODY SCRIPT"}</script>
<style>.x::after { content: "BODY STYLE" }</style>
<noscript>NOSCRIPT TEXT</noscript>
<template><p>TEMPLATE TEXT</p></template>
<h1>Results   for
  Q3</h1>
<p>Revenue rose 5&nbsp;% &mdash; see <a href="#">the <b>table</b></a>.</p>
<table><tr><th>Region</th><th>Sales</th></tr><tr><td>West</td><td>&euro;1,200</td></tr></table>
<ul><li>One</li><li>Two &lt;three&gt; &#x263A;</li></ul>
<pre>  indented
    code</pre>
Tail text<br>after break
</body></html>"""


@pytest.mark.parametrize("suffix", [".html", ".htm"])
def test_html_visible_text(tmp_path: Path, suffix: str) -> None:
    """HTML yields the title then its visible text, one line per block, entities unescaped."""
    result = extract_text(write(tmp_path, "page" + suffix, PAGE))
    expected = (
        "Quarterly & Annual\n"
        "Results for Q3\n"
        "Revenue rose 5 % — see the table.\n"
        "Region | Sales\n"
        "West | €1,200\n"
        "One\n"
        "Two <three> ☺\n"
        "  indented\n"
        "    code\n"
        "Tail text\n"
        "after break"
    )
    assert (expected, "html") == (result.text, result.kind)


@pytest.mark.parametrize(
    "hidden", ["STYLE TEXT", "SCRIPT TEXT", "BODY SCRIPT", "BODY STYLE", "NOSCRIPT", "TEMPLATE", "COMMENT", "not a tag"]
)
def test_html_hidden_text_absent(tmp_path: Path, hidden: str) -> None:
    """Script, style, head, template, noscript and comment text never reaches the document."""
    assert hidden not in extract_text(write(tmp_path, "page.html", PAGE)).text


def test_html_unclosed_head(tmp_path: Path) -> None:
    """A page that never closes <head> still shows its body."""
    page = "<html><head><title>T</title><script>x()</script><body><p>Body text</p>"
    assert extract_text(write(tmp_path, "page.html", page)).text == "T\nBody text"


def test_html_only_first_title(tmp_path: Path) -> None:
    """Only the page's own title leads; an inline SVG's <title> tooltip is not shown."""
    page = "<title>Page</title><p>Text <svg><title>Tooltip</title><rect/></svg> after</p>"
    assert extract_text(write(tmp_path, "page.html", page)).text == "Page\nText after"


def test_html_in_legacy_encoding(tmp_path: Path) -> None:
    """An HTML file in Windows-1252 is decoded before parsing."""
    page = "<p>Caf\xe9 \x80 5</p>".encode("latin-1")
    assert extract_text(write(tmp_path, "page.html", page)).text == "Café € 5"


# -- JSON ------------------------------------------------------------------------------------------


def test_json_rendered_as_paths(tmp_path: Path) -> None:
    """JSON becomes `dotted.path[index]: value` lines in document order."""
    document = (
        '{"ticket": {"id": 7, "tags": ["a", "b"], "customer": {"name": "Zoë", "vip": true, "note": null}},'
        ' "items": [{"sku": "X1", "qty": 2.5}], "empty": {}, "none": []}'
    )
    expected = (
        "ticket.id: 7\n"
        "ticket.tags[0]: a\n"
        "ticket.tags[1]: b\n"
        "ticket.customer.name: Zoë\n"
        "ticket.customer.vip: true\n"
        "ticket.customer.note: null\n"
        "items[0].sku: X1\n"
        "items[0].qty: 2.5\n"
        "empty: {}\n"
        "none: []"
    )
    result = extract_text(write(tmp_path, "t.json", document))
    assert (expected, "json") == (result.text, result.kind)


@pytest.mark.parametrize(
    ("document", "expected"),
    [('[{"a": 1}, {"a": 2}]', "[0].a: 1\n[1].a: 2"), ('"just a string"', "just a string"), ("42", "42")],
)
def test_json_top_level_shapes(tmp_path: Path, document: str, expected: str) -> None:
    """Top-level arrays are indexed and scalars stand alone."""
    assert expected == extract_text(write(tmp_path, "t.json", document)).text


@pytest.mark.parametrize(
    ("document", "where"),
    [('{"a": 1,\n "b": }', "line 2, column 7"), ('{"a": 1}\n{"b": 2}', "line 2, column 1"), ("{'a': 1}", "line 1")],
)
def test_invalid_json_names_line_and_column(tmp_path: Path, document: str, where: str) -> None:
    """Invalid JSON is refused with the line and column of the problem."""
    message = str(extraction_error(write(tmp_path, "bad.json", document)))
    assert message.startswith(f"invalid JSON at {where}")


def test_json_deeply_nested(tmp_path: Path) -> None:
    """Nesting too deep to parse is an extraction error, not a crash."""
    message = str(extraction_error(write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)))
    assert message.startswith("invalid JSON")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            '{"note": "caf\\ud800 cr\u00e8me"}',
            "undecodable text: it holds a lone surrogate U+D800 (half of a UTF-16 pair, not a character) at "
            "character 10; re-save the file with valid text",
        ),
        ('{"n": ' + "9" * 5000 + "}", "invalid JSON: a number has more than 4,300 digits"),
    ],
    ids=["lone-surrogate", "long-number"],
)
def test_json_python_reads_but_cannot_encode_or_hold(tmp_path: Path, document: str, message: str) -> None:
    """A JSON document whose text UTF-8 cannot encode, or with a number Python refuses, is an extraction error."""
    assert message == str(extraction_error(write(tmp_path, "odd.json", document)))


# -- CSV -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_rendered_per_row(tmp_path: Path, delimiter: str) -> None:
    """CSV rows become `header: value` blocks separated by blank lines; empty cells are left out."""
    rows = [["name", "qty", "note"], ["Widget", "2", f'"has{delimiter} delimiter"'], ["Gadget", "5", ""]]
    data = "\r\n".join(delimiter.join(row) for row in rows) + "\r\n"
    expected = f"name: Widget\nqty: 2\nnote: has{delimiter} delimiter\n\nname: Gadget\nqty: 5"
    result = extract_text(write(tmp_path, "t.csv", data))
    assert (expected, "csv") == (result.text, result.kind)


def test_csv_ragged_rows_render_what_parses(tmp_path: Path) -> None:
    """A row with extra fields names them by position; a short row shows what it has."""
    data = "a,b\n1,2,3\n4\n"
    assert extract_text(write(tmp_path, "t.csv", data)).text == "a: 1\nb: 2\ncolumn 3: 3\n\na: 4"


def test_csv_single_column(tmp_path: Path) -> None:
    """A one-column CSV (nothing to sniff) still parses."""
    assert extract_text(write(tmp_path, "t.csv", "word\nalpha\nbeta\n")).text == "word: alpha\n\nword: beta"


def test_csv_header_only_is_empty(tmp_path: Path) -> None:
    """A CSV with a header and no data rows is an empty document."""
    message = str(extraction_error(write(tmp_path, "t.csv", "a,b,c\n")))
    assert message == "empty document: the CSV has a header row but no data rows"


@pytest.mark.parametrize(("data", "line"), [('a,b\n1,"x"y\n', 2), ('a,b\n1,2\n3,"unterminated\nmore\n', 3)])
def test_csv_unparseable(tmp_path: Path, data: str, line: int) -> None:
    """Malformed quoting makes a CSV unparseable, and the error names the line."""
    assert str(extraction_error(write(tmp_path, "t.csv", data))).startswith(f"cannot parse CSV at line {line}:")


# -- PDF -------------------------------------------------------------------------------------------


def test_pdf_text_pages(tmp_path: Path) -> None:
    """A PDF's text layer is read page by page, pages joined by a form feed."""
    result = extract_text(write(tmp_path, "doc.pdf", make_pdf(["Hello world", "Caf\xe9 page (two)"])))
    assert ExtractedText("Hello world\n\f\nCafé page (two)", "pdf", None, 2) == result


def test_pdf_suffix_case_insensitive(tmp_path: Path) -> None:
    """.PDF is a PDF too."""
    assert extract_text(write(tmp_path, "DOC.PDF", make_pdf(["Hello"]))).text == "Hello"


def test_pdf_encrypted_with_password(tmp_path: Path) -> None:
    """A PDF that needs a password is refused with a message saying so."""
    message = str(extraction_error(write(tmp_path, "locked.pdf", encrypted_pdf("secret"))))
    assert message.startswith("encrypted PDF: password required")


def test_pdf_encrypted_with_empty_password(tmp_path: Path) -> None:
    """A PDF encrypted with an empty user password (permissions only) is read."""
    result = extract_text(write(tmp_path, "open.pdf", encrypted_pdf("")))
    assert (result.text, result.pages) == ("Secret page", 1)


def test_pdf_aes_encrypted(tmp_path: Path) -> None:
    """An AES-256 PDF is refused as encrypted, whether or not pypdf's `cryptography` extra is installed."""
    message = str(extraction_error(write(tmp_path, "aes.pdf", aes256_pdf())))
    assert message.startswith("encrypted PDF: ")


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    """A PDF whose pages have no text (a scan), read as text, says how to send it as the PDF itself."""
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=612, height=792)
    writer.add_blank_page(width=612, height=792)
    buffer = io.BytesIO()
    writer.write(buffer)
    message = str(extraction_error(write(tmp_path, "scan.pdf", buffer.getvalue())))
    assert message == (
        "PDF has no text layer (scanned image?); "
        'set pdf = "auto" or "native" in the job to send it as the model sees it'
    )


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.98])
def test_pdf_truncated_is_corrupt(tmp_path: Path, keep: float) -> None:
    """A truncated PDF is reported as corrupt with a short reason and no traceback."""
    data = make_pdf(["Hello world", "Second page"])
    message = str(extraction_error(write(tmp_path, "cut.pdf", data[: int(len(data) * keep)])))
    assert message.startswith("corrupt PDF: ")
    assert "\n" not in message
    assert "Traceback" not in message


def test_not_a_pdf(tmp_path: Path) -> None:
    """A file with a .pdf suffix but no PDF header is corrupt, and says it is not a PDF."""
    message = str(extraction_error(write(tmp_path, "fake.pdf", "just some text")))
    assert message.startswith("corrupt PDF: no %PDF header")


def test_pdf_problems_are_not_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """pypdf's repair warnings do not reach the log (errors are reported as rows instead)."""
    data = make_pdf(["Hello world"])
    path = write(tmp_path, "cut.pdf", data[: len(data) - 20])
    with caplog.at_level(logging.WARNING):
        extraction_error(path)
    assert [record for record in caplog.records if record.name.startswith("pypdf")] == []


def repaired_pdf() -> bytes:
    """A PDF whose `startxref` points nowhere: pypdf repairs it, logging warnings as it does."""
    return make_pdf(["Hello world"]).replace(b"startxref\n", b"startxref\n9")


def test_pypdf_logging_is_left_as_found(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """After docpipe reads a PDF, the caller's own pypdf calls log as before: the quieting ends with the extraction."""
    data = repaired_pdf()
    with caplog.at_level(logging.WARNING):
        assert "Hello world" == extract_text(write(tmp_path, "repaired.pdf", data)).text
        assert [] == [record for record in caplog.records if record.name.startswith("pypdf")]
        pypdf.PdfReader(io.BytesIO(data))
    assert logging.NOTSET == logging.getLogger("pypdf").level
    assert any(record.name.startswith("pypdf") for record in caplog.records)


def test_pypdf_logger_the_application_configured_is_left_alone(tmp_path: Path) -> None:
    """A level the application gave the pypdf logger is kept during and after an extraction."""
    logger = logging.getLogger("pypdf")
    logger.setLevel(logging.INFO)
    try:
        with extract_pdf.quiet_pypdf():
            assert logging.INFO == logger.level
        extract_text(write(tmp_path, "repaired.pdf", repaired_pdf()))
        assert logging.INFO == logger.level
    finally:
        logger.setLevel(logging.NOTSET)


def test_pypdf_quieting_lasts_until_the_last_extraction_ends() -> None:
    """Overlapping extractions share the quieting; the logger is restored when the last one ends."""
    logger = logging.getLogger("pypdf")
    with extract_pdf.quiet_pypdf():
        with extract_pdf.quiet_pypdf():
            assert logging.ERROR == logger.level
        assert logging.ERROR == logger.level
    assert logging.NOTSET == logger.level
