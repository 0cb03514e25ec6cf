"""Writes the sample corpus's DOCX, XLSX and e-mail files (run once; the files are committed).

    .venv/bin/python sample_data/scripts/make_format_samples.py

python-docx and openpyxl are docpipe's own readers of these formats, so the files are what those
libraries write; the e-mail is built with the standard library and carries an existing sample PDF.
All content is fictional Northwind Logistics material (see sample_data/README.md).
"""

from __future__ import annotations

import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import docx
import openpyxl
from openpyxl.styles import Font

DOCUMENTS = Path(__file__).resolve().parent.parent / "documents"
CREATED = datetime.datetime(2026, 11, 27, 10, 0, tzinfo=datetime.UTC)


def storage_agreement() -> None:
    document = docx.Document()
    document.core_properties.author = "Marcus Ilori"
    document.core_properties.title = "Storage Services Agreement"
    document.core_properties.created = document.core_properties.modified = CREATED.replace(tzinfo=None)
    document.add_heading("Storage Services Agreement", level=0)
    document.add_paragraph(
        "Agreement no. NWL-SSA-2026-031, effective 1 January 2027. Between Northwind Logistics, Inc., 2200 "
        "Meridian Parkway, Suite 400, Columbus, OH 43219 (\"Northwind\") and Tessaro Coffee Roasters, LLC, 2719 "
        "Elliott Mill Lane, Seattle, WA 98121 (\"Customer\"), following the parties' mutual non-disclosure "
        "agreement of 28 October 2026."
    )
    document.add_heading("1. Term", level=1)
    document.add_paragraph(
        "The agreement runs for twelve months, from 1 January 2027 to 31 December 2027. Either party may end it "
        "at the end of the term with 60 days' written notice. There is no automatic renewal."
    )
    document.add_heading("2. Services and rates", level=1)
    document.add_paragraph(
        "Northwind stores the Customer's green and roasted coffee at its Reno, NV site and, from its opening in "
        "mid-2027, at the Denver, CO temperature-controlled hub. Rates are in USD and exclude taxes."
    )
    rates = [
        ("Service", "Unit", "Rate (USD)"),
        ("Controlled-ambient storage (15–21 °C)", "pallet / month", "21.75"),
        ("Ambient storage", "pallet / month", "18.50"),
        ("Handling in or out", "pallet", "6.25"),
        ("Temperature log report", "month", "included"),
    ]
    table = document.add_table(rows=len(rates), cols=3)
    table.style = "Table Grid"
    for row, values in enumerate(rates):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
            if row == 0:
                table.cell(row, column).paragraphs[0].runs[0].bold = True
    document.add_heading("3. Temperature excursions", level=1)
    document.add_paragraph(
        "If a storage zone leaves 15–21 °C for more than 2 hours, Northwind notifies the Customer within 4 "
        "hours and follows policy QA-POL-007. Coffee spoiled by an excursion Northwind caused is credited at "
        "the Customer's documented cost, up to USD 25,000 per event."
    )
    document.add_heading("4. Liability", level=1)
    document.add_paragraph(
        "Each party's total liability under this agreement is capped at the storage fees paid in the 12 months "
        "before the claim, except for gross negligence or wilful misconduct."
    )
    signature = document.add_paragraph("Signed for Northwind: Marcus Ilori, Director, Key Accounts, 27 November 2026. ")
    signature.add_run("Signed for the Customer: Tomas Okafor, Operations Lead, 1 December 2026.")
    document.save(DOCUMENTS / "contracts" / "storage_agreement_tessaro_coffee.docx")


def rate_card() -> None:
    workbook = openpyxl.Workbook()
    workbook.properties.creator = "Northwind Pricing"
    workbook.properties.created = workbook.properties.modified = CREATED.replace(tzinfo=None)
    linehaul = workbook.active
    linehaul.title = "Linehaul"
    linehaul.append(["Rate card 2027, Brightwater Home Goods, Inc. (MSA NWL-MSA-2025-027, rate card rev. 2)"])
    linehaul.append([])
    linehaul.append(["Lane", "Equipment", "Miles", "Rate per load (USD)", "Fuel surcharge", "Valid from"])
    for lane in [
        ("Columbus OH -> Reno NV", "53 ft dry van", 2130, 4480.0, 0.185, datetime.date(2027, 1, 1)),
        ("Reno NV -> Columbus OH", "53 ft dry van", 2130, 3150.0, 0.185, datetime.date(2027, 1, 1)),
        ("Columbus OH -> Denver CO", "53 ft reefer", 1260, 3390.0, 0.185, datetime.date(2027, 3, 1)),
        ("Reno NV -> Denver CO", "53 ft reefer", 1030, 2875.5, 0.185, datetime.date(2027, 3, 1)),
    ]:
        linehaul.append(list(lane))
    for cell in linehaul[3]:
        cell.font = Font(bold=True)
    accessorials = workbook.create_sheet("Accessorials")
    accessorials.append(["Charge", "Unit", "Rate (USD)", "Note"])
    for charge in [
        ("Detention at consignee", "hour after 2 free hours", 75.0, None),
        ("Delivery appointment scheduling", "load", 25.0, None),
        ("Pallet build and stretch-wrap", "pallet", 6.75, "was 6.50 in 2026"),
        ("Cross-dock handling, floor-loaded cartons", "carton", 0.5, None),
        ("Layover", "day", 350.0, "driver held overnight at consignee's request"),
    ]:
        accessorials.append(list(charge))
    workbook.save(DOCUMENTS / "contracts" / "rate_card_2027_brightwater.xlsx")


def invoice_email() -> None:
    message = EmailMessage()
    message["From"] = "Northwind Billing <billing@northwind-logistics.example>"
    message["To"] = "Accounts Payable <ap@brightwater-home.example>"
    message["Cc"] = "Dana Whitfield <dana.whitfield@northwind-logistics.example>"
    message["Date"] = format_datetime(datetime.datetime(2026, 11, 9, 16, 42, tzinfo=datetime.timezone(
        datetime.timedelta(hours=-5))))
    message["Subject"] = "Invoice NWL-INV-2026-0188 – October linehaul, due 9 December 2026"
    message["Message-ID"] = "<nwl-inv-2026-0188.billing@northwind-logistics.example>"
    message.set_content(
        "Hello Brightwater team,\n\n"
        "please find attached invoice NWL-INV-2026-0188 for the three dedicated loads from Columbus to Reno in\n"
        "October (shipments NWL-SH-886301, -886302 and -886317), USD 17,644.05, due on 9 December 2026 (Net 30).\n\n"
        "The service credit of USD 627.00 for October on-time performance (MSA section 7.3) will follow\n"
        "separately as credit note NWL-CN-2026-0019, so please do not deduct it from this payment.\n\n"
        "Questions about the invoice: reply to this e-mail or call +1 (614) 555-0100, option 3.\n\n"
        "Kind regards,\n"
        "Northwind Logistics Billing\n"
    )
    pdf = (DOCUMENTS / "pdfs" / "invoice_NWL-INV-2026-0188.pdf").read_bytes()
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename="invoice_NWL-INV-2026-0188.pdf")
    message.set_boundary("=_northwind_billing_0188")
    (DOCUMENTS / "emails" / "invoice_with_pdf_NWL-INV-2026-0188.eml").write_bytes(message.as_bytes())


if __name__ == "__main__":
    storage_agreement()
    rate_card()
    invoice_email()
