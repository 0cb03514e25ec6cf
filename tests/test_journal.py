"""The write-ahead journal: its line format, and recovery of any content a crash or a disk can leave."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_output import _job, _row

from pipeline.journal import JournalDamage, JournalHeader, encode_header, encode_row, read_segment
from pipeline.ledger import load_ledger
from pipeline.output import output_schema
from pipeline.recovery import recover

JOB = _job()
SCHEMA = output_schema(JOB)


def test_read_segment_ignores_a_torn_last_line_and_reports_the_others(tmp_path: Path) -> None:
    """A last line without its newline is the kill's: silent. Any other bad line is listed with its number."""
    segment = tmp_path / "run-1-00001.jsonl"
    header = encode_header(JournalHeader("triage", "f" * 16, "c2NoZW1h"))
    segment.write_bytes(header + b'{"doc_id": "a"}\nnot json\n[1]\n' + header + b'{"doc_id": "b"}\n{"doc_id": "c", "st')
    read = read_segment(segment)
    assert JournalHeader("triage", "f" * 16, "c2NoZW1h") == read.header
    assert [(2, {"doc_id": "a"}), (6, {"doc_id": "b"})] == read.rows
    expected = [
        "run-1-00001.jsonl line 3: not valid JSON",
        "run-1-00001.jsonl line 4: not a JSON object",
        "run-1-00001.jsonl line 5: an unreadable or misplaced journal header",
    ]
    assert expected == [str(damage) for damage in read.damage]


def test_read_segment_of_a_headerless_journal_reads_its_rows(tmp_path: Path) -> None:
    """A segment written before headers existed: no header, every row."""
    segment = tmp_path / "old.jsonl"
    segment.write_bytes(b'{"doc_id": "a"}\n{"doc_id": "b"}\n')
    read = read_segment(segment)
    assert (None, ["a", "b"], []) == (read.header, [row["doc_id"] for _, row in read.rows], read.damage)


# -- any content: recovery never raises, recovers exactly the intact lines, keeps damaged segments --

HEADER = encode_header(JournalHeader("triage", JOB.fingerprint, base64.b64encode(SCHEMA.serialize()).decode()))
JUNK_KINDS = ("bytes", "cut-row", "bad-utf8", "wrong-type", "not-a-row")
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_junk_lines = st.tuples(st.sampled_from(JUNK_KINDS), st.binary(max_size=30), _json_values)
_lines = st.lists(st.just(("row", b"", None)) | _junk_lines, max_size=20)


def _junk(kind: str, seed: bytes, value: Any, number: int) -> bytes:
    """A line that is never an intact row, of the given kind (without its newline)."""
    row = encode_row(_row(JOB, f"junk{number}")).rstrip(b"\n")
    if kind == "bytes":
        return seed.replace(b"\n", b"")
    if kind == "cut-row":  # its closing brace is gone, whatever is kept
        return row[: len(seed) % len(row)]
    if kind == "bad-utf8":
        at = len(seed) % len(row)
        return row[:at] + b"\xff" + row[at:]
    if kind == "wrong-type":
        return encode_row(_row(JOB, f"junk{number}", input_tokens="many")).rstrip(b"\n")
    return json.dumps(value).encode()  # any JSON value; an object's keys are too short to be "doc_id"


@settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(lines=_lines, header=st.booleans(), cut=st.none() | st.integers(min_value=0))
def test_recovery_of_any_journal_content(lines: list[tuple[str, bytes, Any]], header: bool, cut: int | None) -> None:
    """Garbled, truncated or junk-laced: recovery never raises, keeps exactly the intact lines, never deletes damage."""
    content = bytearray(HEADER if header else b"")
    first = 2 if header else 1
    ends: list[tuple[int, str, int]] = []  # (offset after its newline, kind, line number)
    for index, (kind, seed, value) in enumerate(lines):
        number = index + first
        line = encode_row(_row(JOB, f"d{number:02d}")) if kind == "row" else _junk(kind, seed, value, number) + b"\n"
        content += line
        ends.append((len(content), kind, number))
    if cut is not None:  # a crash anywhere, mid-header included: what is after the last newline is torn
        del content[cut % (len(content) + 1) :]
    whole = [(kind, number) for end, kind, number in ends if end <= len(content)]
    expected_ids = [f"d{number:02d}" for kind, number in whole if kind == "row"]
    expected_damage = [number for kind, number in whole if kind != "row"]

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "_wal").mkdir()
        segment = out / "_wal" / "run-1-00001.jsonl"
        segment.write_bytes(bytes(content))
        assert expected_ids == sorted(load_ledger(out, JOB, schema=SCHEMA).done)
        damaged: list[JournalDamage] = []
        assert len(expected_ids) == recover(out, SCHEMA, damaged=damaged)
        assert expected_damage == [damage.line for damage in damaged]
        published = ds.dataset(out, format="parquet").to_table() if expected_ids else None
        assert expected_ids == (published.column("doc_id").to_pylist() if published is not None else [])
        kept = out / "_wal" / "quarantine" / segment.name
        assert (bytes(content) if expected_damage else None) == (kept.read_bytes() if kept.exists() else None)
        assert not segment.exists()
