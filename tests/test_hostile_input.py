"""Hostile input: generated manifest rows (hypothesis) and two end-to-end runs. A clear error or a row, never a crash.

The generated manifests hold any Unicode (lone surrogates too, where the format can carry them),
control characters, NULs, byte-order marks, CRLF, duplicate keys, nested objects, odd types, huge
and empty values and very long ids. The property: reading yields exactly one ref per row, or a
`ManifestError` before any row; every string a ref carries can be written as UTF-8; the rows the
runner would make of the refs go into the journal and into Parquet; and the request built for any
ref is a body the SDK sends.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import duckdb
import httpx2 as httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TEST_KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_input import OK, Outcome, check_rows, failed, run_manifest
from test_cli_run import TRIAGE, billed, invoke
from test_sources import encodable, not_utf8_name, not_utf8_strings

from pipeline import manifest_jsonl, manifest_jsonl_blocks
from pipeline.batches import DocumentBatch
from pipeline.emulator import Emulator
from pipeline.errors import ManifestError
from pipeline.jobs import load_job
from pipeline.output import metadata_column_names, output_schema
from pipeline.requests import FENCE_ID_MAX_CHARS, build_params, estimate_document_tokens, estimate_tokens
from pipeline.sources import MAX_ID_CHARS, DocumentRef, manifest_metadata_columns, read_manifest

JOB = load_job(TRIAGE)
HOSTILE = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udce9", "\udfff"]
SPECIAL_CHARACTERS = ["\x00", "\r", "\n", "\t", '"', "'", ",", ";", "\\", "\ufeff", "\u2028", "\x85", "\x1b"]

# -- strategies ------------------------------------------------------------------------------------


def mostly(common: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually `common`, now and then `hostile`: hostile values among rows good enough to be read further."""
    return st.one_of(common, common, hostile)


def text_of(*, surrogates: bool, max_size: int) -> st.SearchStrategy[str]:
    """Short text of any characters (lone surrogates when asked), empty, blank, or very long."""
    characters = [st.characters(codec=None if surrogates else "utf-8"), st.sampled_from(SPECIAL_CHARACTERS)]
    if surrogates:
        characters.append(st.sampled_from(LONE_SURROGATES))
    short = st.text(st.one_of(*characters), max_size=max_size)
    long = st.sampled_from([MAX_ID_CHARS, MAX_ID_CHARS + 1, 100_000]).map(lambda size: "x" * size)
    return st.one_of(short, short, short, short, st.sampled_from(["", " ", "</document>"]), long)


HOSTILE_TEXT = text_of(surrogates=True, max_size=12)
HOSTILE_KEYS = text_of(surrogates=True, max_size=4)
VALID_TEXT = text_of(surrogates=False, max_size=12)  # what a CSV or Parquet file can hold
VALID_KEYS = text_of(surrogates=False, max_size=4)
PLAIN_TEXT = st.sampled_from(["Invoice 7 from Acme.", "Please call me back.", "Contract renewal, signed."])
PLAIN_IDS = st.integers(0, 50).map(lambda number: f"doc-{number}")
BIG_NUMBER = "\x00big number\x00"  # stands for a number Python refuses to read: replaced in the JSON text


def json_values(*, big_numbers: bool) -> st.SearchStrategy[Any]:
    """Any JSON value: nested, with hostile text, huge integers, NaN and infinities (and, if asked, BIG_NUMBER)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([2**63, -(2**63) - 1, 2**70]),
        st.floats(allow_nan=True, allow_infinity=True),
        HOSTILE_TEXT,
        st.just(BIG_NUMBER if big_numbers else ""),
    )

    def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.lists(children, max_size=3) | st.dictionaries(HOSTILE_KEYS, children, max_size=3)

    return st.recursive(scalars, containers, max_leaves=4)


JSON_VALUES = json_values(big_numbers=True)
ROW_FIELDS = {
    "id": mostly(PLAIN_IDS, JSON_VALUES),
    "body": mostly(PLAIN_TEXT, JSON_VALUES),
    "dept": mostly(st.sampled_from(["ops", "legal", None]), JSON_VALUES),
    "n": mostly(st.integers(0, 9), JSON_VALUES),
    "extra": st.lists(st.tuples(HOSTILE_KEYS, JSON_VALUES), max_size=1),  # an unknown or a duplicate key
}
FIRST_ROW_EXTRAS = st.dictionaries(
    mostly(st.sampled_from(["status", "doc_id"]), HOSTILE_KEYS), json_values(big_numbers=False), max_size=2
)


def json_text(value: Any, *, ascii_only: bool) -> bytes:
    """JSON for a value: surrogates as \\u escapes (ascii_only) or as their bytes, which are not UTF-8."""
    text = json.dumps(value, ensure_ascii=ascii_only).replace(json.dumps(BIG_NUMBER), "9" * 5000)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def jsonl_rows(draw: st.DrawFn) -> bytes:
    """A row as a JSON object: usually well formed, with hostile keys, values and duplicate keys now and then."""
    body = draw(st.sampled_from(["text", "path"]))
    pairs = [(name if name != "body" else body, draw(ROW_FIELDS[name])) for name in ("id", "body", "dept", "n")]
    for extra in draw(ROW_FIELDS["extra"]):
        pairs.insert(draw(st.integers(0, len(pairs))), extra)
    ascii_only = draw(mostly(st.just(True), st.just(False)))  # False: a surrogate is written as its bytes
    members = [json_text(key, ascii_only=ascii_only) + b": " + json_text(value, ascii_only=ascii_only)
               for key, value in pairs]
    return b"{" + b", ".join(members) + b"}"


JSONL_LINES = st.tuples(
    st.sampled_from([b"", b"", b"\xef\xbb\xbf", b" "]),
    mostly(
        jsonl_rows(),
        st.one_of(
            JSON_VALUES.map(lambda value: json_text(value, ascii_only=True)),
            st.binary(max_size=20).map(lambda junk: junk.replace(b"\n", b"")),
            st.sampled_from([b"", b"  ", b"\t\r"]),
        ),
    ),
    st.sampled_from([b"\n", b"\r\n"]),
).map(b"".join)


@st.composite
def jsonl_manifests(draw: st.DrawFn) -> bytes:
    """A JSONL manifest, mostly with a usable first row (it sets the columns) so the rows after it are reached."""
    first = {"id": "first", "text": "A first document.", "dept": "ops", "n": 1} | draw(FIRST_ROW_EXTRAS)
    head = draw(mostly(st.just(json_text(first, ascii_only=True) + b"\n"), JSONL_LINES))
    return head + b"".join(draw(st.lists(JSONL_LINES, max_size=8)))


CSV_FIELDS = {"id": PLAIN_IDS, "text": PLAIN_TEXT, "path": st.just(""), "dept": st.just("ops")}
CSV_HOSTILE = st.one_of(VALID_TEXT, st.just(""))


@st.composite
def csv_rows(draw: st.DrawFn, header: list[str]) -> list[str]:
    """A good row, one with a hostile field, or one of hostile fields and the wrong length."""
    row = [draw(CSV_FIELDS.get(name, VALID_TEXT)) for name in header]
    kind = draw(st.sampled_from(["good", "good", "one hostile field", "hostile row"]))
    if kind == "one hostile field":
        row[draw(st.integers(0, len(row) - 1))] = draw(CSV_HOSTILE)
    elif kind == "hostile row":
        row = draw(st.lists(CSV_HOSTILE, min_size=1, max_size=len(header) + 1))
    return row


@st.composite
def csv_manifests(draw: st.DrawFn) -> tuple[bytes, int]:
    """A CSV manifest written by the csv module with hostile names and fields, and its number of records."""
    names = ["id", "text", *draw(st.lists(st.just("path"), max_size=1)), "dept"]
    names += draw(mostly(st.just([]), st.lists(VALID_KEYS, max_size=1)))
    header = draw(st.permutations(names))
    rows = draw(st.lists(csv_rows(header), max_size=8))
    buffer = io.StringIO()
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    # The csv module quotes a bare "\r" only when it is part of the line terminator.
    quoting = csv.QUOTE_MINIMAL if terminator == "\r\n" else csv.QUOTE_ALL
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    csv.writer(buffer, delimiter=delimiter, lineterminator=terminator, quoting=quoting).writerows([header, *rows])
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + buffer.getvalue().encode("utf-8"), len(rows)


PARQUET_ROWS = 5
PARQUET_KINDS = ["string", "bad_string", "int64", "uint64", "float64", "bool", "binary", "timestamp", "date", "list",
                 "struct", "decimal", "null"]


def parquet_array(kind: str, data: st.DataObject) -> pa.Array:
    """A column of `PARQUET_ROWS` generated values of one kind: valid, odd, or that Python cannot hold."""

    def values(strategy: st.SearchStrategy[Any]) -> list[Any]:
        return data.draw(st.lists(strategy, min_size=PARQUET_ROWS, max_size=PARQUET_ROWS))

    if kind == "string":
        return pa.array(values(st.none() | mostly(PLAIN_IDS, VALID_TEXT)), pa.string())
    if kind == "bad_string":
        raw = st.none() | st.binary(max_size=6) | st.sampled_from([b"caf\xe9", b"\xed\xa0\x80", b"doc-1"])
        return not_utf8_strings(values(raw))
    if kind == "int64":
        return pa.array(values(st.integers(-(2**63), 2**63 - 1)), pa.int64())
    if kind == "uint64":
        return pa.array(values(st.integers(0, 2**64 - 1)), pa.uint64())
    if kind == "float64":
        return pa.array(values(st.floats()), pa.float64())
    if kind == "bool":
        return pa.array(values(st.none() | st.booleans()), pa.bool_())
    if kind == "binary":
        return pa.array(values(st.binary(max_size=6)), pa.binary())
    if kind == "timestamp":  # seconds far past Python's years 1 to 9999 either way
        return pa.array(values(st.integers(-(2**40), 2**40)), pa.timestamp("s"))
    if kind == "date":
        return pa.array(values(st.integers(-(2**31), 2**31 - 1)), pa.date32())
    if kind == "list":
        return pa.array(values(st.lists(st.none() | VALID_KEYS, max_size=3)), pa.list_(pa.string()))
    if kind == "struct":
        return pa.array(values(st.fixed_dictionaries({"a": st.integers(0, 9), "b": VALID_TEXT})))
    if kind == "decimal":
        return pa.array([Decimal("12.5")] * PARQUET_ROWS, pa.decimal128(38, 4))
    return pa.nulls(PARQUET_ROWS)


# -- the property ----------------------------------------------------------------------------------


class SentBodies:
    """The real SDK on a transport that keeps each request body and answers a minimal message."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.client = anthropic.Anthropic(
            api_key=TEST_KEY,
            base_url="http://docpipe.test",
            max_retries=0,
            http_client=httpx.Client(transport=httpx.MockTransport(self.answer)),
        )

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        usage = {"input_tokens": 1, "output_tokens": 1}
        message = {"id": "msg_1", "type": "message", "role": "assistant", "model": JOB.model, "content": [],
                   "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
        return httpx.Response(200, json=message)


@pytest.fixture(scope="module")
def sdk() -> Iterator[SentBodies]:
    """One SDK client for every generated example."""
    bodies = SentBodies()
    with bodies.client:
        yield bodies


def write_manifest(tmp_path_factory: pytest.TempPathFactory, name: str, data: bytes) -> Path:
    """A manifest in a folder of its own per example (the CSV reader remembers files it found to be UTF-8)."""
    path = tmp_path_factory.mktemp("example") / name
    path.write_bytes(data)
    return path


def read_all(path: Path) -> list[DocumentRef] | None:
    """Every ref of a manifest, or None for a ManifestError, which must come before any ref."""
    refs: list[DocumentRef] = []
    try:
        refs.extend(read_manifest(path))
    except ManifestError:
        assert [] == refs
        return None
    return refs


def check_refs(path: Path, refs: list[DocumentRef], sdk: SentBodies) -> None:
    """Refs are writable (journal and Parquet), distinct, bounded, errors name their row; requests are sent."""
    assert all(encodable(ref) for ref in refs)
    assert len(refs) == len({ref.doc_id for ref in refs})
    assert all(len(ref.doc_id) <= MAX_ID_CHARS for ref in refs if ref.error is None)
    assert all(ref.error.message.startswith(f"{path.name} ") for ref in refs if ref.error is not None)
    schema = output_schema(JOB, manifest_metadata_columns(path))
    columns = metadata_column_names([field for ref in refs for field in ref.metadata], JOB)
    rows = []
    for ref in refs:
        row = {"doc_id": ref.doc_id, "source": ref.source, "status": "ok" if ref.error is None else "error"}
        row["error_message"] = ref.error.message if ref.error is not None else None
        row |= {columns[name]: value for name, value in ref.metadata.items()}
        json.dumps(row, ensure_ascii=False).encode("utf-8")  # what ResultWriter.add journals
        rows.append(row)
    pa.Table.from_pylist(rows, schema=schema)  # what a part is made of
    for ref in refs:
        if ref.error is None:
            check_request(ref.doc_id, ref.text or "The text of a file.", sdk)


def check_request(document_id: str, text: str, sdk: SentBodies) -> None:
    """The params for a document: JSON the journal's rule accepts, sent as such by the SDK, the id bounded."""
    params = build_params(JOB, document_id, text)
    body = json.dumps(params, ensure_ascii=False).encode("utf-8")
    sdk.client.messages.create(**params)
    assert json.loads(body) == json.loads(sdk.bodies.pop())
    sent = params["messages"][0]["content"][0]["text"]
    shown_id = sent[len('<document id="') : sent.index('">')]
    assert len(shown_id) <= 6 * FENCE_ID_MAX_CHARS  # each character at most one 6-character escape
    assert estimate_tokens(sent) < estimate_document_tokens(document_id, text)


@HOSTILE
@given(data=jsonl_manifests())
def test_any_jsonl_manifest_gives_one_writable_ref_per_row(
    tmp_path_factory: pytest.TempPathFactory, sdk: SentBodies, data: bytes
) -> None:
    """A generated JSONL manifest: one ref per non-blank line, or a ManifestError before any; every ref writable."""
    path = write_manifest(tmp_path_factory, "m.jsonl", data)
    refs = read_all(path)
    if refs is not None:
        assert sum(1 for raw in io.BytesIO(data) if not raw.isspace()) == len(refs)
        check_refs(path, refs, sdk)


@HOSTILE
@given(manifest=csv_manifests())
def test_any_csv_manifest_gives_one_writable_ref_per_record(
    tmp_path_factory: pytest.TempPathFactory, sdk: SentBodies, manifest: tuple[bytes, int]
) -> None:
    """A generated CSV manifest: one ref per record, or a ManifestError (the header) before any; every ref writable."""
    data, records = manifest
    path = write_manifest(tmp_path_factory, "m.csv", data)
    refs = read_all(path)
    if refs is not None:
        assert records == len(refs)
        check_refs(path, refs, sdk)


@HOSTILE
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(lambda text: text.encode("utf-8")))
def test_any_bytes_as_a_csv_manifest_give_writable_refs_or_a_manifest_error(
    tmp_path_factory: pytest.TempPathFactory, sdk: SentBodies, data: bytes
) -> None:
    """Arbitrary bytes (unbalanced quotes, NULs, stray bytes) read as a CSV manifest never crash the reader."""
    path = write_manifest(tmp_path_factory, "m.csv", b"id,text,dept\n" + data)
    refs = read_all(path)
    if refs is not None:
        check_refs(path, refs, sdk)


PARQUET_NAMES = VALID_KEYS.filter(lambda name: name not in ("id", "text", "dept"))
PARQUET_ANY_KIND = st.sampled_from(PARQUET_KINDS)
PARQUET_ID_KINDS = mostly(st.just("string"), PARQUET_ANY_KIND)


@HOSTILE
@given(data=st.data())
def test_any_parquet_manifest_gives_one_writable_ref_per_row(
    tmp_path_factory: pytest.TempPathFactory, sdk: SentBodies, data: st.DataObject
) -> None:
    """A generated Parquet manifest (unreadable strings, out-of-range values, odd types): one ref per row."""
    names = ["id", "text", "dept", *data.draw(st.lists(PARQUET_NAMES, unique=True, max_size=2))]
    names = data.draw(st.permutations(data.draw(st.sampled_from([names, names, names, names[1:]]))))
    kinds = [data.draw(PARQUET_ID_KINDS if name in ("id", "text") else PARQUET_ANY_KIND) for name in names]
    rows = data.draw(st.sampled_from([PARQUET_ROWS, PARQUET_ROWS, PARQUET_ROWS, 0]))
    arrays = [parquet_array(kind, data).slice(0, rows) for kind in kinds]
    path = tmp_path_factory.mktemp("example") / "m.parquet"
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)
    refs = read_all(path)
    if refs is None:
        assert "id" not in names or rows == 0
    else:
        assert rows == len(refs)
        check_refs(path, refs, sdk)


@HOSTILE
@given(document_id=HOSTILE_TEXT, text=VALID_TEXT)
def test_any_id_and_text_build_a_body_the_sdk_sends(sdk: SentBodies, document_id: str, text: str) -> None:
    """Any id (lone surrogates and 100,000 characters included) and any valid text build a sendable body."""
    check_request(document_id, text, sdk)


# -- end to end ------------------------------------------------------------------------------------


def hostile_rows(folder: Path) -> list[tuple[bytes, str, Outcome]]:
    """(a manifest line, the row's doc_id, its outcome): hostile rows between good ones."""
    not_utf8_name(folder, b"facture-\xe9t\xe9.txt", b"Facture 12: 300 EUR dus le 1er mai.")
    (folder / "note.json").write_text('{"note": "caf\\ud800 cr\\u00e8me"}', encoding="utf-8")
    long_ok = "long-" * 800  # 4,000 characters: allowed, but shortened in the prompt
    lone = "a lone surrogate U+{} (half of a UTF-16 pair, not a character) at character {}"

    def line(row: dict[str, Any]) -> bytes:
        return json.dumps(row).encode("utf-8")

    return [
        (line({"id": "good-1", "text": "Invoice 7 from Acme: 120 EUR due in May.", "team": "ops"}), "good-1", OK),
        (
            line({"id": "bad-\udc00-id", "text": "Fine text.", "team": "ops"}),
            "h.jsonl:2",
            failed("document_error", "line 2: id 'bad-\\udc00-id' is not valid Unicode text", lone.format("DC00", 5)),
        ),
        (
            line({"id": "bad-text", "text": "Emoji cut in half: \ud83d!", "team": "ops"}),
            "bad-text",
            failed("document_error", "h.jsonl line 3: text is not valid Unicode text", lone.format("D83D", 20)),
        ),
        (
            line({"id": "bad-team", "text": "Fine text.", "team": {"k\udfff": 1}}),
            "bad-team",
            failed("document_error", "h.jsonl line 4: column 'team' is not valid Unicode text", lone.format("DFFF", 4)),
        ),
        (
            line({"id": "bad-path", "path": "x\ud800.txt"}),
            "bad-path",
            failed("document_error", "h.jsonl line 5: path is not a valid file name", lone.format("D800", 2)),
        ),
        (line({"id": "latin-name", "path": "facture-\udce9t\udce9.txt", "team": "fr"}), "latin-name", OK),
        (
            line({"id": "z" * 100_000, "text": "The id column holds a text.", "team": "ops"}),
            "h.jsonl:7",
            failed("document_error", "h.jsonl line 7: id 'zzz", "is 100,000 characters long, over the 4,096 allowed"),
        ),
        (line({"id": long_ok, "text": "Complaint: the pallet arrived damaged.", "team": "ops"}), long_ok, OK),
        (
            b'{"id": "long-number", "text": "x", "team": ' + b"9" * 5000 + b"}",
            "h.jsonl:9",
            failed("document_error", "h.jsonl line 9: a number has more than 4,300 digits"),
        ),
        (
            line({"id": "bad-json-doc", "path": "note.json"}),
            "bad-json-doc",
            failed("extraction_error", "undecodable text: it holds", lone.format("D800", 10)),
        ),
        (b"\xef\xbb\xbf" + line({"id": "bom", "text": "x"}), "h.jsonl:11", failed("document_error", "malformed JSON")),
        (line({"id": "good-2", "text": "Please reset my password.\r\nThanks.", "team": "it"}), "good-2", OK),
    ]


def test_a_manifest_of_hostile_rows_runs_to_the_end_and_reruns(emulator: Emulator, tmp_path: Path) -> None:
    """Each hostile row is one error row with its reason; good rows are ok once; a rerun adds none; readers read it."""
    folder = tmp_path / "input"
    folder.mkdir()
    lines = hostile_rows(folder)
    manifest = folder / "h.jsonl"
    manifest.write_bytes(b"".join(raw + b"\r\n" for raw, _, _ in lines))
    out = tmp_path / "out"
    first_dry = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out), "--dry-run"], emulator)
    assert 0 == first_dry.exit_code, first_dry.output
    assert "  error  h.jsonl:2: h.jsonl line 2: id 'bad-\\udc00-id' is not valid Unicode text" in first_dry.output
    rows = run_manifest(manifest, [(None, doc_id, outcome) for _, doc_id, outcome in lines], out, emulator)
    assert "facture-\\xe9t\\xe9.txt" == rows.loc["latin-name", "source"]
    assert "invoice" == rows.loc["good-1", "category"]
    long_id = next(doc_id for _, doc_id, _ in lines if doc_id.startswith("long-"))
    assert rows.loc[long_id, "input_tokens"] < 100  # its 4,000 characters would be 1,000 tokens in the prompt
    sent_before = billed(emulator)

    rerun = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out)], emulator)
    assert 1 == rerun.exit_code, rerun.output
    assert sent_before == billed(emulator)  # every row still failing fails before the API
    frame = pd.read_parquet(out)
    ok_ids = sorted(doc_id for _, doc_id, outcome in lines if outcome.error_type is None)
    assert ok_ids == sorted(frame[frame.status == "ok"].doc_id)  # one ok row each, over both runs
    # A row's own error (a pure function of the manifest line) is recorded once; an error reading the
    # file it names may change by itself, so each run records it again.
    errors = sorted(
        doc_id
        for _, doc_id, outcome in lines
        if outcome.error_type is not None
        for _ in range(2 if outcome.error_type == "extraction_error" else 1)
    )
    assert errors == sorted(frame[frame.status == "error"].doc_id)
    assert "7 errors unchanged (not written again)" in rerun.output
    counted = duckdb.sql(f"select status, count(*) from read_parquet('{out}/part-*.parquet') group by 1 order by 1")
    assert [("error", len(errors)), ("ok", len(ok_ids))] == counted.fetchall()
    dry = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out), "--dry-run"], emulator)
    assert 0 == dry.exit_code, dry.output
    assert "  7 errors unchanged since last recorded (same manifest row, same job): not written again" in dry.output
    assert "  error  bad-json-doc: undecodable text: it holds a lone surrogate U+D800" in dry.output


def not_utf8_folder(folder: Path) -> dict[str, Outcome]:
    """A folder of documents, some named with bytes that are not UTF-8; doc_id -> outcome."""
    folder.mkdir()
    (folder / "good.txt").write_text("Support ticket 4: the printer on floor 2 is jammed again.")
    not_utf8_name(folder, b"caf\xe9.txt", "Invoice 12 from Café Rouge: 80 EUR due Friday.".encode())
    not_utf8_name(folder, b"caf\xe8.txt", b"Contract renewal for Cafe Noir, signed in March.")
    not_utf8_name(folder, b"vide-\xff.txt", b"")
    not_utf8_name(folder, b"note-\xfe.json", b'{"note": "\\udfff"}')
    return {
        "caf\\xe8.txt": OK,
        "caf\\xe9.txt": OK,
        "good.txt": OK,
        "note-\\xfe.json": failed("extraction_error", "undecodable text: it holds a lone surrogate U+DFFF"),
        "vide-\\xff.txt": failed("extraction_error", "empty document"),
    }


def test_a_folder_with_file_names_not_utf8_runs_to_the_end_and_reruns(emulator: Emulator, tmp_path: Path) -> None:
    """Files named with bytes that are not UTF-8 are read, recorded under escaped ids, and done on a rerun."""
    folder = tmp_path / "inbox"
    expected = not_utf8_folder(folder)
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(folder), "--out", str(out)], emulator)
    assert 1 == result.exit_code, result.output
    rows = check_rows(out, expected)
    assert "caf\\xe9.txt" == rows.loc["caf\\xe9.txt", "source"]
    sent_before = billed(emulator)
    rerun = invoke(["run", str(TRIAGE), str(folder), "--out", str(out)], emulator)
    assert 1 == rerun.exit_code, rerun.output
    assert sent_before == billed(emulator)
    ok_rows = duckdb.sql(f"select doc_id from read_parquet('{out}/part-*.parquet') where status = 'ok' order by 1")
    assert [("caf\\xe8.txt",), ("caf\\xe9.txt",), ("good.txt",)] == ok_rows.fetchall()
    assert 3 == int((pd.read_parquet(out).status == "ok").sum())


# -- the JSONL fast paths agree with the full checks ------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(st.characters(exclude_categories=()), max_size=8),  # lone surrogates included
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)

FAST_PATHS = settings(HOSTILE, max_examples=300)


@FAST_PATHS
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=12),
            st.dictionaries(st.sampled_from(["id", "text", "a"]), _JSON_VALUES, max_size=3).map(
                lambda row: json.dumps(row).encode()
            ),
            st.sampled_from([b"", b"  ", b"\xef\xbb\xbf{}", b' {"a": 1}', b'{"a": 1} x', b"1e400", b"[1,", b"\t\r"]),
        ),
        max_size=6,
    )
)
def test_jsonl_lines_fast_path_reads_every_line_as_the_full_parse_does(lines: list[bytes]) -> None:
    """Each line's value (or reason, or blankness) is the one `_parse_line` alone gives it."""
    data = b"".join(line.replace(b"\n", b"") + b"\n" for line in lines)
    expected = []
    for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
        parsed = manifest_jsonl._parse_line(number, raw + b"\n")
        if parsed is not manifest_jsonl._BLANK:
            expected.append((number, parsed))
    actual = list(manifest_jsonl.jsonl_lines(io.BytesIO(data)))
    assert repr(expected) == repr(actual)


_SCALARS = st.one_of(
    st.sampled_from([None, True, 0, 1.5, "ok", "caf\u00e9", 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**1100]),
    st.sampled_from(LONE_SURROGATES).map(lambda surrogate: f"x{surrogate}"),
    st.integers(),
    _JSON_VALUES,
)


@FAST_PATHS
@given(
    first=st.fixed_dictionaries({"id": st.just("a"), "n": _SCALARS, "s": _SCALARS}),
    rows=st.lists(
        st.dictionaries(st.sampled_from(["id", "n", "s", "text", "extra"]), _SCALARS, max_size=3), max_size=6
    ),
)
def test_jsonl_plain_rows_get_the_metadata_the_full_check_gives(
    first: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    """A row the fast check takes gets exactly the metadata, and no problem, that the full check gives it."""
    fast, full = manifest_jsonl.JsonlSchema(first), manifest_jsonl.JsonlSchema(first)
    for row in [first, *rows]:
        assert repr(full._check(row)) == repr(fast.check(row))


# -- the block reader reads as the line-by-line reader does ----------------------------------------

# Manifests of rows pyarrow's JSON reader accepts, with, now and then, every value where it and
# Python's json might differ: ids of any character, blank or too long; texts of white space only, with
# carriage returns, NULs, line separators, surrogate pairs and lone surrogates; numbers of every form
# in columns of every type; duplicate ids; paths; keys given twice; two objects on a line; lines
# that are blank, `null`, indented or not JSON at all. Seeded, so that each odd value lands among
# clean rows (hypothesis, left to itself, makes nearly every block odd).
ODD_IDS = [" ", "\u3000", "\x1c", "a\x1c", "\x85", "\u2028", "", "x" * MAX_ID_CHARS, "y" * (MAX_ID_CHARS + 1), "é",
           "😀", "\ud800", "doc-\udce9", 7, -0, None, 1.5, True, ["a"], "doc-1\r"]
ODD_TEXTS = [" \u3000\u2028", "\x1c\x1d", "\u200b", "a\rb", "a\r\nb", "\r", "x\x00y", "😀", "\ud83d", "", None, 3,
             "\ufeffx", "\x85", "\xa0", "é à", {"a": 1}, "</document>"]
ODD_VALUES = [None, True, 0, -1, 2**63 - 1, -(2**63), 2**63, 10**30, 10**400, 1.5, -0.0, 0.0, 5e-324, 1e308,
              float("nan"), float("inf"), "", "x", "\ud800", [1], {"a": None}]
ODD_NUMBER_TEXT = ["-0", "-0.0", "0e0", "-0E-0", "1E2", "1e400", "1.5e-400", "12345678901234567890123", "NaN",
                   "-Infinity", "1.0"]
ODD_LINES = [b"null", b"{}", b"", b"  ", b"[1]", b'"text"', b"\xef\xbb\xbf{\"id\": \"bom\", \"text\": \"x\"}",
             b'{"id": "a", "text": "caf\xe9"}', b'{"id": "torn", "text": "x', b"\x00"]


def near_manifest(seed: int, *, odd_types: bool = False, rows: int = 300) -> bytes:
    """A JSONL manifest: a string, an integer and a float column, clean rows, odd values.

    With `odd_types`, the first row may leave a column untyped or make the float column an integer one.
    """
    rng = random.Random(seed)

    def odd(chance: float = 0.02) -> bool:
        return rng.random() < chance

    first = {"id": "first", "text": "A first document.", "dept": "ops", "n": 1, "score": 0.5}
    if odd_types:
        first |= {"dept": rng.choice(["ops", None]), "n": rng.choice([1, None]), "score": rng.choice([0.5, 2, None])}
    lines = [json.dumps(first).encode()]
    for _ in range(rows):
        if odd():
            lines.append(rng.choice(ODD_LINES))
            continue
        row: dict[str, Any] = {"id": f"doc-{rng.randrange(rows * 3)}", "text": f"Document {rng.random()}."}
        row |= {"dept": rng.choice(["ops", "legal", None]), "n": rng.randint(-3, 3), "score": rng.uniform(-9, 9)}
        for key, values in (("id", ODD_IDS), ("text", ODD_TEXTS), ("dept", ODD_VALUES), ("n", ODD_VALUES),
                            ("score", ODD_VALUES), ("path", [None, "", "a.txt"]), ("nested", ODD_VALUES)):
            if odd():
                row[key] = rng.choice(values)
        line = json_text(row, ascii_only=rng.random() < 0.5)
        if odd():  # a number in another form JSON allows (or Python's json does)
            line = line[: line.index(b'"score": ') + 9] + rng.choice(ODD_NUMBER_TEXT).encode() + b"}"
        if odd():
            line = line[:-1] + b', "id": "again"}'  # a key twice
        if odd():
            line += b" " + line  # two objects on one line
        if odd():
            line = rng.choice([b" ", b"\t"]) + line
        lines.append(line + (b"\r\n" if odd() else b"\n"))
    return b"\n".join(line.rstrip(b"\n") for line in lines) + b"\n"


def _refs_read_line_by_line(path: Path) -> list[DocumentRef] | str:
    return _refs_or_error(lambda: manifest_jsonl.read_jsonl(path))


def _refs_or_error(read: Callable[[], Iterator[DocumentRef]]) -> list[DocumentRef] | str:
    try:
        return list(read())
    except ManifestError as exc:
        return str(exc)


def _batches(path: Path) -> list[DocumentBatch]:
    return [piece for piece in manifest_jsonl_blocks.read_jsonl_blocks(path) if isinstance(piece, DocumentBatch)]


def _same_refs(expected: list[DocumentRef] | str, actual: list[DocumentRef] | str) -> bool:
    """Refs equal field by field (an error by its type and message; a NaN equal to itself)."""
    if isinstance(expected, str) or isinstance(actual, str):
        return expected == actual

    def comparable(ref: DocumentRef) -> tuple[Any, ...]:
        error = None if ref.error is None else (type(ref.error), ref.error.message, ref.error.document_id)
        metadata = {key: repr(value) for key, value in ref.metadata.items()}  # repr: NaN, -0.0 and 0.0 told apart
        return (*ref[:4], metadata, error)

    return [comparable(ref) for ref in expected] == [comparable(ref) for ref in actual]


def _same_readings(path: Path) -> None:
    """The refs of a manifest are the same read in blocks as read line by line."""
    expected, actual = _refs_read_line_by_line(path), _refs_or_error(lambda: read_manifest(path))
    assert _same_refs(expected, actual), (expected, actual)


@pytest.mark.parametrize("block_bytes", [64, 512, 1 << 20])
@pytest.mark.parametrize(("seed", "odd_types"), [(seed, seed >= 10) for seed in range(14)])
def test_the_block_reader_reads_as_the_line_by_line_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, odd_types: bool, block_bytes: int
) -> None:
    """Blocks parsed by pyarrow, inline rows built from its columns: the same refs, in order, as line by line."""
    monkeypatch.setattr(manifest_jsonl_blocks, "FIRST_BLOCK_BYTES", block_bytes)  # small: an odd line spoils few others
    monkeypatch.setattr(manifest_jsonl_blocks, "MAX_BLOCK_BYTES", block_bytes * 4)
    path = tmp_path / "m.jsonl"
    path.write_bytes(near_manifest(seed, odd_types=odd_types))
    _same_readings(path)
    inline = sum(len(batch.inline_rows()) for batch in _batches(path))
    assert odd_types or block_bytes > 64 or inline > 100  # the fast path ran (an odd row spoils a bigger block)


@settings(HOSTILE, max_examples=100)
@given(data=jsonl_manifests())
def test_the_block_reader_reads_any_hostile_jsonl_manifest_as_the_line_by_line_reader(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    """The generated hostile manifests too, in blocks of a line or two."""
    path = write_manifest(tmp_path_factory, "m.jsonl", data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(manifest_jsonl_blocks, "FIRST_BLOCK_BYTES", 64)
        patch.setattr(manifest_jsonl_blocks, "MAX_BLOCK_BYTES", 128)
        _same_readings(path)


@pytest.mark.parametrize("seed", range(6))
def test_an_inline_rows_id_and_text_hash_are_its_refs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """What the ledger is asked of an inline row (its id, the SHA-256 of its text) is what its ref would carry."""
    monkeypatch.setattr(manifest_jsonl_blocks, "FIRST_BLOCK_BYTES", 256)
    path = tmp_path / "m.jsonl"
    path.write_bytes(near_manifest(seed))
    for batch in _batches(path):
        inline = batch.inline_rows()
        refs = [batch.ref(index) for index in inline]
        assert [ref.doc_id for ref in refs] == batch.inline_ids(inline)
        assert [hashlib.sha256((ref.text or "").encode()).digest() for ref in refs] == batch.inline_sha256(inline)
        assert all(ref.error is None and ref.text and ref.text.strip() and ref.path is None for ref in refs)


EDGE_ROWS = [
    pytest.param(b'{"id": "e", "text": "a\\rb", "dept": "ops", "n": 1, "score": 0.5}', id="carriage-return"),
    pytest.param(b'{"id": "e", "text": "a\\r\\nb", "dept": "ops", "n": 1, "score": 0.5}', id="crlf-in-text"),
    pytest.param(b'{"id": "e", "text": "a\\u000Db", "dept": "ops", "n": 1, "score": 0.5}', id="escaped-cr"),
    pytest.param(b'{"id": "e", "text": " \\u3000\\u2028\\u0085", "dept": "ops", "n": 1}', id="blank-text"),
    pytest.param(b'{"id": "e", "text": "\\u001c", "dept": "ops", "n": 1, "score": 0.5}', id="separator-text"),
    pytest.param(b'{"id": "\\u001c", "text": "x", "dept": "ops", "n": 1, "score": 0.5}', id="separator-id"),
    pytest.param(b'{"id": "\\u00a0", "text": "x", "dept": "ops", "n": 1, "score": 0.5}', id="nbsp-id"),
    pytest.param(b'{"id": "e", "text": "x", "dept": "ops", "n": 1, "score": -0}', id="minus-zero"),
    pytest.param(b'{"id": "e", "text": "x", "dept": "ops", "n": -0, "score": -0.0}', id="minus-zero-float"),
    pytest.param(b'{"id": "e", "text": "x", "n": 1, "score": 123456789012345678901234567890}', id="huge"),
    pytest.param(b'{"id": "e", "text": "x", "n": 1, "score": 1' + b"0" * 400 + b"}", id="too-huge-for-a-float"),
    pytest.param(b'{"id": "e", "text": "x", "n": 1, "score": 9' + b"9" * 5000 + b"}", id="too-long-for-python"),
    pytest.param(b'{"id": "e", "text": "x", "n": 9' + b"9" * 5000 + b"}", id="too-long-integer"),
    pytest.param(b'{"id": "e", "text": "x", "n": 1, "score": Infinity}', id="infinity"),
    pytest.param(b'{"id": "e", "text": "x", "n": 1, "score": NaN}', id="nan"),
    pytest.param(b'{"id": "' + b"x" * 4096 + b'", "text": "x", "dept": "ops", "n": 1, "score": 0.5}', id="id-4096"),
    pytest.param(b'{"id": "' + b"x" * 4097 + b'", "text": "x", "dept": "ops", "n": 1, "score": 0.5}', id="id-4097"),
    pytest.param(b'{"id": "e", "text": "x", "path": "", "dept": "ops", "n": 1, "score": 0.5}', id="empty-path"),
    pytest.param(b'{"id": "e", "text": "x", "path": "a.txt", "dept": "ops", "n": 1, "score": 0.5}', id="both"),
    pytest.param(b'{"id": "d1", "text": "x", "dept": "ops", "n": 1, "score": 0.5}', id="duplicate"),
    pytest.param(b'{"id": "e", "text": "x"} {"id": "f", "text": "y"}', id="two-objects"),
    pytest.param(b'{"id": "e", "text": "x", "id": "f"}', id="key-twice"),
    pytest.param(b"null", id="null"),
    pytest.param(b"{}", id="empty-object"),
    pytest.param(b"", id="blank"),
    pytest.param(b' {"id": "e", "text": "x"}', id="indented"),
    pytest.param(b'{"id": "e", "text": "caf\xe9"}', id="latin-1"),
    pytest.param(b'{"id": "e", "text": "\\ud800"}', id="lone-surrogate"),
    pytest.param(b'{"id": "e", "text": "\\ud83d\\ude00", "dept": "\\u00e9", "n": 1, "score": 0.5}', id="emoji"),
]


@pytest.mark.parametrize("edge", EDGE_ROWS)
def test_each_edge_row_reads_alike_in_blocks_and_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edge: bytes
) -> None:
    """An odd row among clean ones, in a block of its own: both readings agree; its id and hash are its ref's."""
    monkeypatch.setattr(manifest_jsonl_blocks, "FIRST_BLOCK_BYTES", 16)  # a block a line
    monkeypatch.setattr(manifest_jsonl_blocks, "MAX_BLOCK_BYTES", 16)
    clean = [f'{{"id": "d{i}", "text": "Document {i}.", "dept": "ops", "n": {i}, "score": 1.5}}' for i in range(4)]
    lines = [b'{"id": "first", "text": "A first document.", "dept": "ops", "n": 1, "score": 0.5}']
    lines += [line.encode() for line in clean[:2]] + [edge] + [line.encode() for line in clean[2:]]
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    _same_readings(path)
    for batch in _batches(path):
        inline = batch.inline_rows()
        refs = [batch.ref(index) for index in inline]
        assert [ref.doc_id for ref in refs] == batch.inline_ids(inline)
        assert [hashlib.sha256((ref.text or "").encode()).digest() for ref in refs] == batch.inline_sha256(inline)
