"""The long sample report: Northwind's 2026 network review, over one request's budget for the triage job.

    python sample_data/scripts/long_report.py sample_data/documents/reports/network_review_2026_full.md

Deterministic (a seeded generator): the committed file is what this script writes. About 260 KB of
Markdown in numbered sections, so that `too_long = "chunk"` cuts it at section boundaries.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

SITES = ["Columbus OH", "Reno NV", "Hamburg DE", "Denver CO", "Memphis TN", "Rotterdam NL"]
CUSTOMERS = ["Brightwater Home Goods", "Calder & Finch Outfitters", "Pinecrest Medical Supply",
             "Halvorsen Marine Parts", "Tessaro Coffee Roasters"]
TOPICS = ["inbound receiving", "pick accuracy", "cold chain", "linehaul on-time", "dock scheduling",
          "returns processing", "safety", "energy use", "staffing", "WMS migration"]


def section(rng: random.Random, number: int) -> str:
    site = SITES[number % len(SITES)]
    topic = TOPICS[number % len(TOPICS)]
    customer = CUSTOMERS[number % len(CUSTOMERS)]
    lines = [f"## {number}. {site}: {topic}", ""]
    for paragraph in range(rng.randint(5, 8)):
        figure = rng.randint(82, 99) + rng.randint(0, 9) / 10
        cost = rng.randint(12, 480) * 1000
        lines.append(
            f"{number}.{paragraph + 1} In Q{rng.randint(1, 4)} the {site} site reported {topic} at {figure}% against a "
            f"target of {rng.randint(90, 99)}%. The shortfall traces to {rng.choice(['late carrier arrivals', 'a conveyor fault', 'seasonal temporary staff', 'the WMS cut-over', 'a cooling unit failure'])}, "
            f"which affected {customer} orders for {rng.randint(2, 19)} days. Remediation cost USD {cost:,} and is "
            f"{rng.choice(['complete', 'under way', 'planned for Q1 2027', 'awaiting budget approval'])}. The site lead "
            f"committed to a review by {rng.choice(['31 January 2027', '15 February 2027', '30 March 2027'])}."
        )
        lines.append("")
    lines += ["| Month | Orders | On time | Incidents |", "|---|---|---|---|"]
    for month in ("Jan", "Apr", "Jul", "Oct"):
        lines.append(f"| {month} | {rng.randint(8, 60) * 1000:,} | {rng.randint(88, 99)}% | {rng.randint(0, 7)} |")
    lines.append("")
    return "\n".join(lines)


def report() -> str:
    rng = random.Random(2026)
    head = [
        "# Northwind Logistics: Network Operations Review 2026 (full edition)",
        "",
        "Prepared by Network Operations for the Executive Committee. Confidential: internal use only.",
        "This edition collects every site's quarterly findings, remediation costs and commitments for 2027.",
        "",
    ]
    body = [section(rng, number) for number in range(1, 121)]
    tail = [
        "## 121. Decisions requested",
        "",
        "The committee is asked to approve USD 2.4 million of remediation for 2027, to confirm the Reno cold-chain",
        "upgrade by 28 February 2027, and to sign off the carrier scorecard that takes effect on 1 April 2027.",
        "",
    ]
    return "\n".join(head + body + tail)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    Path(sys.argv[1]).write_text(report(), encoding="utf-8")
