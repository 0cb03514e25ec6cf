"""Sample PDFs for docpipe, written without any PDF library: a scan with no text layer, and a long manual.

    python sample_data/scripts/pdfs.py scan OUT.pdf          # the committed documents/pdfs/scan_delivery_note.pdf
    python sample_data/scripts/pdfs.py manual OUT.pdf [PAGES] # a text PDF over the API's 100 pages (140 by default)

The manual is generated, not committed: at 140 pages it shows what docpipe does with a PDF the API
would refuse natively (it sends the text layer). Output is deterministic: the same bytes every run.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

WIDTH_PX, HEIGHT_PX = 612, 792  # one pixel per point: a US Letter page


def pdf(objects: list[bytes]) -> bytes:
    """A PDF from its numbered objects (1 is the catalog), with a cross-reference table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), extra, data)


def scan() -> bytes:
    """One page that is only an image: a grey sheet with dark bars where a delivery note's lines would be."""
    rows = []
    for y in range(HEIGHT_PX):
        dark = 60 <= y < 90 or (140 <= y < 700 and (y - 140) % 36 < 10)  # a heading, then lines of "text"
        row = bytearray()
        for x in range(WIDTH_PX):
            ink = dark and 60 <= x < (420 if y < 90 else 540 - (y * 7 % 160))
            row.append(40 if ink else 236 - (x * y) % 7)  # paper is never perfectly even
        rows.append(b"\x00" + bytes(row))  # PNG predictor byte per row: none
    image = zlib.compress(b"".join(rows), 9)
    content = b"q %d 0 0 %d 0 0 cm /Scan Do Q" % (WIDTH_PX, HEIGHT_PX)
    return pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Scan 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        stream(content),
        stream(image, b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
               b"/BitsPerComponent 8 /Filter /FlateDecode /DecodeParms << /Predictor 15 /Columns %d >> "
               % (WIDTH_PX, HEIGHT_PX, WIDTH_PX)),
    ])


def manual(pages: int) -> bytes:
    """A fleet operations manual of `pages` pages, a procedure per page, in Helvetica."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join(f"{4 + 2 * i} 0 R" for i in range(pages)).encode(), pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for number in range(1, pages + 1):
        lines = [
            f"Northwind Logistics - Fleet Operations Manual, rev. 7 - Page {number} of {pages}",
            f"Procedure FO-{number:03d}: {('Pre-trip inspection', 'Loading bay safety', 'Cold chain checks', 'Fuel card use', 'Incident reporting')[number % 5]}",
            f"Step 1. The driver confirms trailer T-{4000 + number} is coupled and the kingpin lock is engaged.",
            "Step 2. Tyres, lights and brake lines are checked and any defect is logged in the vehicle app.",
            f"Step 3. Reefer units hold 2-8 C; a reading outside the band for {5 + number % 10} minutes is escalated.",
            "Step 4. The shift lead countersigns the checklist before the vehicle leaves the yard.",
        ]
        text = b" ".join(
            b"BT /F1 10 Tf 54 %d Td (%s) Tj ET" % (740 - 18 * i, line.replace("(", "[").replace(")", "]").encode("cp1252"))
            for i, line in enumerate(lines)
        )
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (5 + 2 * (number - 1))
        )
        objects.append(stream(text))
    return pdf(objects)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("scan", "manual"):
        print(__doc__, file=sys.stderr)
        return 2
    data = scan() if argv[0] == "scan" else manual(int(argv[2]) if len(argv) > 2 else 140)
    Path(argv[1]).write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
