"""The Parquet output: typed columns, the write-ahead journal, recovery, the ledger and the readers."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipeline.errors import ConfigError, EnvironmentFailure
from pipeline.jobs import Job, parse_job
from pipeline.journal import JournalDamage, encode_row
from pipeline.ledger import load_ledger
from pipeline.output import output_schema
from pipeline.recovery import recover
from pipeline.results import load_results
from pipeline.writer import ResultWriter

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _job(name: str = "triage", instructions: str = "Sort it.") -> Job:
    return parse_job(
        {
            "job": {"name": name, "instructions": instructions},
            "fields": [
                {"name": "category", "type": "enum", "values": ["bill", "memo"]},
                {"name": "summary", "type": "string"},
                {"name": "due", "type": "date"},
                {"name": "tags", "type": "list"},
                {"name": "score", "type": "number"},
                {"name": "pages", "type": "integer"},
                {"name": "urgent", "type": "boolean", "required": False},
            ],
        }
    )


def _row(job: Job, doc_id: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "doc_id": doc_id,
        "source": f"{doc_id}.txt",
        "doc_sha256": f"sha-{doc_id}",
        "category": "bill",
        "summary": f"About {doc_id}.",
        "due": date(2026, 12, 1),
        "tags": ["a", "b"],
        "score": 0.5,
        "pages": 3,
        "urgent": None,
        "status": "ok",
        "error_type": None,
        "error_message": None,
        "model": job.model,
        "mode": "realtime",
        "stop_reason": "end_turn",
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.00002,
        "latency_ms": 12.5,
        "attempts": 1,
        "request_id": f"req_{doc_id}",
        "streamed": False,
        "truncated": False,
        "input_kind": "text",
        "input_pages": None,
        "request_count": 1,
        "job": job.name,
        "job_fingerprint": job.fingerprint,
        "run_id": "run-1",
        "backend": "emulator",
        "created_at": T0,
        "source_size": 10,
        "source_mtime_ns": 1_000,
    }
    row.update(changes)
    return row


def _error_row(job: Job, doc_id: str, **changes: Any) -> dict[str, Any]:
    fields = {name: None for name in ("category", "summary", "due", "tags", "score", "pages")}
    error = {"error_type": "overloaded_error", "error_message": "try later"}
    return _row(job, doc_id, status="error", **fields, **(error | changes))


def _write_rows(out: Path, job: Job, rows: list[dict[str, Any]], run_id: str = "run-1") -> None:
    writer = ResultWriter(out, output_schema(job), run_id)
    for row in rows:
        writer.add(row)
    writer.close()


def _all_rows(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = ds.dataset(out, format="parquet").to_table().to_pylist()
    return rows


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob("*") if p.name.endswith(".tmp"))


BASE_NAMES = ["doc_id", "source", "doc_sha256"]
TRAILING_NAMES = [
    "status",
    "error_type",
    "error_message",
    "model",
    "mode",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "latency_ms",
    "attempts",
    "request_id",
    "streamed",
    "truncated",
    "input_kind",
    "input_pages",
    "request_count",
    "job",
    "job_fingerprint",
    "run_id",
    "backend",
    "created_at",
    "source_size",
    "source_mtime_ns",
]
FIELD_NAMES = ["category", "summary", "due", "tags", "score", "pages", "urgent"]


def test_output_schema_orders_base_metadata_fields_then_bookkeeping() -> None:
    """Columns: doc_id, source, doc_sha256, metadata, the job's fields in order, then docpipe's own."""
    schema = output_schema(_job(), {"priority": "int64", "owner": "string"})
    assert [*BASE_NAMES, "priority", "owner", *FIELD_NAMES, *TRAILING_NAMES] == schema.names


def test_output_schema_types_the_job_fields() -> None:
    """enum -> dictionary string, date -> date32, list -> list<string>, number -> double, integer -> int64."""
    schema = output_schema(_job())
    expected = {
        "category": pa.dictionary(pa.int32(), pa.string()),
        "summary": pa.string(),
        "due": pa.date32(),
        "tags": pa.list_(pa.string()),
        "score": pa.float64(),
        "pages": pa.int64(),
        "urgent": pa.bool_(),
    }
    assert expected == {name: schema.field(name).type for name in FIELD_NAMES}


def test_output_schema_types_the_bookkeeping_columns() -> None:
    """status is a dictionary, tokens int64, attempts int32, created_at a UTC microsecond timestamp."""
    schema = output_schema(_job())
    expected = {
        "status": pa.dictionary(pa.int32(), pa.string()),
        "input_tokens": pa.int64(),
        "cache_write_tokens": pa.int64(),
        "cost_usd": pa.float64(),
        "latency_ms": pa.float64(),
        "attempts": pa.int32(),
        "streamed": pa.bool_(),
        "truncated": pa.bool_(),
        "input_kind": pa.dictionary(pa.int32(), pa.string()),
        "input_pages": pa.int32(),
        "request_count": pa.int32(),
        "created_at": pa.timestamp("us", tz="UTC"),
        "source_size": pa.int64(),
        "source_mtime_ns": pa.int64(),
        "job_fingerprint": pa.string(),
    }
    assert expected == {name: schema.field(name).type for name in expected}


def test_output_schema_types_metadata_columns() -> None:
    """Manifest metadata keeps its type (int64, float64, bool, string); anything else is a string."""
    schema = output_schema(
        _job(), {"priority": "int64", "weight": "float64", "vip": "bool", "owner": "string", "odd": "decimal128"}
    )
    expected = {
        "priority": pa.int64(),
        "weight": pa.float64(),
        "vip": pa.bool_(),
        "owner": pa.string(),
        "odd": pa.string(),
    }
    assert expected == {name: schema.field(name).type for name in expected}


def test_metadata_names_that_clash_get_a_meta_prefix() -> None:
    """A metadata column named like one of ours or like a job field is renamed meta_<name>."""
    schema = output_schema(_job(), {"status": "string", "category": "int64", "doc_id": "string", "region": "string"})
    assert [*BASE_NAMES, "meta_status", "meta_category", "meta_doc_id", "region"] == schema.names[:7]
    assert pa.int64() == schema.field("meta_category").type
    assert len(schema.names) == len(set(schema.names))


def test_metadata_names_that_would_share_an_output_column_are_refused() -> None:
    """`status` and `meta_status` would both be `meta_status`; readers refuse such a file, so the run does."""
    with pytest.raises(ConfigError) as caught:
        output_schema(_job(), {"status": "string", "meta_status": "string"})
    expected = (
        "two output columns would be named 'meta_status': rename the manifest column that becomes it "
        "(a manifest column named like one of docpipe's or the job's is prefixed meta_)"
    )
    assert expected == str(caught.value)


def test_output_schema_records_the_job_and_fingerprint() -> None:
    """The Parquet schema metadata names the job and its fingerprint."""
    job = _job()
    metadata = output_schema(job).metadata
    named = {key: metadata[key] for key in (b"docpipe.job", b"docpipe.job_fingerprint")}
    assert {b"docpipe.job": b"triage", b"docpipe.job_fingerprint": job.fingerprint.encode()} == named


def test_rows_round_trip_with_their_types(tmp_path: Path) -> None:
    """Rows written and closed read back with the same values: dates, lists, nulls, timestamps."""
    job = _job()
    rows = [_row(job, "a"), _row(job, "b", urgent=True, tags=[]), _error_row(job, "c")]
    _write_rows(tmp_path, job, rows)
    assert rows == sorted(_all_rows(tmp_path), key=lambda r: r["doc_id"])


def test_rows_are_in_the_journal_before_any_flush(tmp_path: Path) -> None:
    """Each added row is in the journal file (flushed to the OS) as soon as add() returns."""
    job = _job()
    writer = ResultWriter(tmp_path, output_schema(job), "run-1")
    for doc_id in ("a", "b", "c"):
        writer.add(_row(job, doc_id))
        segments = list((tmp_path / "_wal").glob("*.jsonl"))
        assert 1 == len(segments)
        # Read through another handle while the writer still holds its own: what a SIGKILL would leave.
        lines = segments[0].read_bytes().splitlines()
        assert doc_id == json.loads(lines[-1])["doc_id"]
    assert [] == list(tmp_path.glob("part-*.parquet"))
    writer.close()


def _killed_writer(out: Path, job: Job, doc_ids: list[str], run_id: str = "run-1") -> None:
    """Add rows and abandon the writer without flush or close, as a SIGKILL would."""
    writer = ResultWriter(out, output_schema(job), run_id)
    for doc_id in doc_ids:
        writer.add(_row(job, doc_id))
    writer._wal.close()  # the kernel closes the descriptor of a killed process; nothing is flushed here


def test_recover_turns_an_abandoned_journal_into_a_part(tmp_path: Path) -> None:
    """Rows of a writer never closed survive: recover() publishes them as a part and clears the journal."""
    job = _job()
    _killed_writer(tmp_path, job, ["a", "b", "c"])
    assert 3 == recover(tmp_path, output_schema(job))
    assert [_row(job, d) for d in ("a", "b", "c")] == _all_rows(tmp_path)
    assert [] == list((tmp_path / "_wal").iterdir())
    assert 0 == recover(tmp_path, output_schema(job))
    assert 3 == len(_all_rows(tmp_path))


def test_recover_drops_a_torn_last_line(tmp_path: Path) -> None:
    """A journal whose last line was cut mid-write keeps its whole lines and drops the torn one."""
    job = _job()
    _killed_writer(tmp_path, job, ["a", "b"])
    segment = next((tmp_path / "_wal").glob("*.jsonl"))
    torn = json.dumps({"doc_id": "c", "status": "ok"})[:15]
    with open(segment, "ab") as handle:
        handle.write(torn.encode())
    assert 2 == recover(tmp_path, output_schema(job))
    assert ["a", "b"] == [row["doc_id"] for row in _all_rows(tmp_path)]


def test_recover_deletes_a_segment_whose_part_exists(tmp_path: Path) -> None:
    """Killed between publishing a part and deleting its segment: the segment goes, no row is doubled."""
    job = _job()
    writer = ResultWriter(tmp_path, output_schema(job), "run-1")
    for doc_id in ("a", "b"):
        writer.add(_row(job, doc_id))
    segment = next((tmp_path / "_wal").glob("*.jsonl"))
    journal = segment.read_bytes()
    writer.flush()
    assert not segment.exists()
    segment.write_bytes(journal)  # as if the process died just before the unlink
    assert 0 == recover(tmp_path, output_schema(job))
    assert ["a", "b"] == [row["doc_id"] for row in _all_rows(tmp_path)]
    assert not segment.exists()


def test_a_part_and_its_segment_share_a_name(tmp_path: Path) -> None:
    """part-<run>-<seq>.parquet is named after the journal segment <run>-<seq>.jsonl it came from."""
    job = _job()
    writer = ResultWriter(tmp_path, output_schema(job), "run-9")
    writer.add(_row(job, "a"))
    segment_stem = next((tmp_path / "_wal").glob("*.jsonl")).stem
    writer.close()
    assert [f"part-{segment_stem}.parquet"] == [p.name for p in tmp_path.glob("part-*.parquet")]
    assert segment_stem.startswith("run-9-")


def test_flush_rows_publishes_a_part_every_n_rows(tmp_path: Path) -> None:
    """With flush_rows=2, every second row starts a new part; close() publishes the remainder."""
    job = _job()
    writer = ResultWriter(tmp_path, output_schema(job), "run-1", flush_rows=2)
    for doc_id in ("a", "b", "c", "d", "e"):
        writer.add(_row(job, doc_id))
    writer.close()
    parts = sorted(tmp_path.glob("part-*.parquet"))
    assert [["a", "b"], ["c", "d"], ["e"]] == [pq.read_table(p).column("doc_id").to_pylist() for p in parts]
    assert [] == list((tmp_path / "_wal").iterdir())


def test_flush_returns_with_every_row_published(tmp_path: Path) -> None:
    """flush() waits for the part being published in the background as well as the current segment."""
    job = _job()
    writer = ResultWriter(tmp_path, output_schema(job), "run-1", flush_rows=2)
    for doc_id in ("a", "b", "c"):
        writer.add(_row(job, doc_id))
    writer.flush()
    assert 3 == len(_all_rows(tmp_path))
    assert [] == list((tmp_path / "_wal").iterdir())
    writer.close()


def test_close_without_rows_writes_nothing(tmp_path: Path) -> None:
    """A writer closed without rows leaves no part and no journal."""
    ResultWriter(tmp_path, output_schema(_job()), "run-1").close()
    assert ["_wal"] == [p.name for p in tmp_path.iterdir()]
    assert [] == list((tmp_path / "_wal").iterdir())


def test_parts_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash while writing a part leaves no part (only the journal); recovery then writes it whole."""
    job = _job()
    schema = output_schema(job)
    real_write_table = pq.write_table

    def dying_write_table(table: pa.Table, where: Any, **options: Any) -> None:
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("No space left on device")

    writer = ResultWriter(tmp_path, schema, "run-1")
    writer.add(_row(job, "a"))
    monkeypatch.setattr(pq, "write_table", dying_write_table)
    with pytest.raises(OSError, match="No space"):
        writer.flush()
    assert [] == list(tmp_path.glob("*.parquet"))
    assert 0 == ds.dataset(tmp_path, format="parquet").count_rows()
    monkeypatch.setattr(pq, "write_table", real_write_table)
    assert 1 == recover(tmp_path, schema)
    assert [] == _leftovers(tmp_path)
    assert ["a"] == [row["doc_id"] for row in _all_rows(tmp_path)]


def test_a_failed_part_write_never_duplicates_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a part write fails, later rows go to a new part and recovery publishes the old segment once."""
    job = _job()
    schema = output_schema(job)
    real_write_table = pq.write_table

    def failing_write_table(table: pa.Table, where: Any, **options: Any) -> None:
        raise OSError("No space left on device")

    writer = ResultWriter(tmp_path, schema, "run-1")
    writer.add(_row(job, "a"))
    monkeypatch.setattr(pq, "write_table", failing_write_table)
    with pytest.raises(OSError):
        writer.flush()
    monkeypatch.setattr(pq, "write_table", real_write_table)
    writer.add(_row(job, "b"))
    writer.close()
    assert 1 == recover(tmp_path, schema)
    assert ["a", "b"] == sorted(row["doc_id"] for row in _all_rows(tmp_path))


def test_a_part_that_fails_in_the_background_is_raised_by_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part published in the background after a rotation fails: close() raises, the rows stay recoverable."""
    job = _job()
    schema = output_schema(job)
    real_write_table = pq.write_table

    def failing_write_table(table: pa.Table, where: Any, **options: Any) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(pq, "write_table", failing_write_table)
    writer = ResultWriter(tmp_path, schema, "run-1", flush_rows=2)
    for doc_id in ("a", "b"):
        writer.add(_row(job, doc_id))  # the second add rotates: the part is written on the publishing thread
    with pytest.raises(OSError, match="No space"):
        writer.close()
    monkeypatch.setattr(pq, "write_table", real_write_table)
    assert 2 == recover(tmp_path, schema)
    assert ["a", "b"] == sorted(row["doc_id"] for row in _all_rows(tmp_path))


def test_a_failed_background_part_does_not_hold_back_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first part fails on the publishing thread: the next segment is still published; recovery does the first."""
    job = _job()
    schema = output_schema(job)
    real_write_table = pq.write_table
    calls = []

    def first_fails(table: pa.Table, where: Any, **options: Any) -> None:
        calls.append(where)
        if len(calls) == 1:
            raise OSError("No space left on device")
        real_write_table(table, where, **options)

    monkeypatch.setattr(pq, "write_table", first_fails)
    writer = ResultWriter(tmp_path, schema, "run-1", flush_rows=2)
    writer.add(_row(job, "a"))
    writer.add(_row(job, "b"))  # rotates: part 1 is written (and fails) on the publishing thread
    writer.add(_row(job, "c"))
    with pytest.raises(OSError, match="No space"):
        writer.add(_row(job, "d"))  # rotates again: part 2 is queued, then part 1's failure is raised
    writer.close()
    assert ["c", "d"] == sorted(row["doc_id"] for row in _all_rows(tmp_path))
    monkeypatch.setattr(pq, "write_table", real_write_table)
    assert 2 == recover(tmp_path, schema)
    assert ["a", "b", "c", "d"] == sorted(row["doc_id"] for row in _all_rows(tmp_path))


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    """After writes, flushes and a recovery, no *.tmp file remains."""
    job = _job()
    _write_rows(tmp_path, job, [_row(job, "a"), _row(job, "b")], run_id="run-1")
    _killed_writer(tmp_path, job, ["c"], run_id="run-2")
    recover(tmp_path, output_schema(job))
    assert [] == _leftovers(tmp_path)
    assert 3 == len(_all_rows(tmp_path))


def test_ledger_holds_ok_rows_of_the_same_fingerprint_only(tmp_path: Path) -> None:
    """The ledger: ok rows under this job's fingerprint; error rows and other fingerprints are left out."""
    job = _job()
    rows = [
        _row(job, "ok"),
        _error_row(job, "failed"),
        _row(job, "old", job_fingerprint="0123456789abcdef"),
        _row(job, "sized", source_size=None, source_mtime_ns=None),
    ]
    _write_rows(tmp_path, job, rows)
    ledger = load_ledger(tmp_path, job)
    assert job.fingerprint == ledger.fingerprint
    assert {"ok": ("sha-ok", 10, 1_000), "sized": ("sha-sized", None, None)} == ledger.done
    assert (True, False, False, False) == (
        ledger.is_done("ok", "sha-ok"),
        ledger.is_done("ok", "sha-changed"),
        ledger.is_done("failed", "sha-failed"),
        ledger.is_done("old", "sha-old"),
    )
    assert (True, False) == (ledger.unchanged_file("ok", 10, 1_000), ledger.unchanged_file("ok", 10, 2_000))


def test_ledger_keeps_the_latest_ok_row_and_ignores_later_errors(tmp_path: Path) -> None:
    """A document answered twice keeps its last answer's hash; an error afterwards does not undo it."""
    job = _job()
    _write_rows(tmp_path, job, [_row(job, "a", doc_sha256="v1")], run_id="run-1")
    _write_rows(tmp_path, job, [_row(job, "a", doc_sha256="v2")], run_id="run-2")
    _write_rows(tmp_path, job, [_error_row(job, "a", doc_sha256="v3")], run_id="run-3")
    assert {"a": ("v2", 10, 1_000)} == load_ledger(tmp_path, job).done


def test_ledger_of_a_changed_job_is_empty(tmp_path: Path) -> None:
    """Editing the instructions changes the fingerprint: nothing counts as done any more."""
    job = _job()
    _write_rows(tmp_path, job, [_row(job, "a")])
    assert 0 == len(load_ledger(tmp_path, _job(instructions="Sort it differently.")))
    assert 1 == len(load_ledger(tmp_path, job))


def test_ledger_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    """No output directory yet: an empty ledger."""
    assert 0 == len(load_ledger(tmp_path / "absent", _job()))


def test_ledger_refuses_another_jobs_directory(tmp_path: Path) -> None:
    """An output directory holding another job's rows is refused with a ConfigError naming both jobs."""
    other = _job(name="contract_review")
    _write_rows(tmp_path, other, [_row(other, "a")])
    with pytest.raises(ConfigError, match="'contract_review', not 'triage'"):
        load_ledger(tmp_path, _job())


def _history(out: Path) -> Job:
    """Three runs: a fails then succeeds, b succeeds once; one row of another job."""
    job = _job()
    other = _job(name="other")
    _write_rows(out, job, [_error_row(job, "a"), _row(job, "b")], run_id="run-1")
    _write_rows(out, job, [_row(job, "a", created_at=T0 + timedelta(minutes=5), run_id="run-2")], run_id="run-2")
    _write_rows(out, other, [_row(other, "z", created_at=T0 + timedelta(minutes=9), run_id="run-3")], run_id="run-3")
    return job


def test_load_results_returns_the_latest_row_per_document(tmp_path: Path) -> None:
    """load_results gives one row per doc_id, the most recent, as a pandas DataFrame."""
    _history(tmp_path)
    frame = load_results(tmp_path, job="triage")
    assert isinstance(frame, pd.DataFrame)
    actual = sorted(zip(frame["doc_id"], frame["status"], frame["run_id"], strict=True))
    assert [("a", "ok", "run-2"), ("b", "ok", "run-1")] == actual


def test_load_results_all_rows(tmp_path: Path) -> None:
    """latest=False returns every row ever written, errors and superseded answers included."""
    _history(tmp_path)
    frame = load_results(tmp_path, latest=False)
    assert [("a", "error"), ("a", "ok"), ("b", "ok"), ("z", "ok")] == sorted(
        zip(frame["doc_id"], frame["status"], strict=True)
    )


def test_load_results_filters_by_job(tmp_path: Path) -> None:
    """job= keeps that job's rows only."""
    _history(tmp_path)
    assert ["z"] == list(load_results(tmp_path, job="other")["doc_id"])
    assert ["a", "b", "z"] == sorted(load_results(tmp_path)["doc_id"])


def test_load_results_types_survive_to_pandas(tmp_path: Path) -> None:
    """In the DataFrame, dates are dates, lists are lists and created_at is a UTC timestamp."""
    _history(tmp_path)
    frame = load_results(tmp_path, job="triage").sort_values("doc_id")
    first = frame.iloc[0]
    assert (date(2026, 12, 1), ["a", "b"]) == (first["due"], list(first["tags"]))
    assert T0 + timedelta(minutes=5) == first["created_at"].to_pydatetime()


def test_load_results_of_an_empty_directory_is_a_config_error(tmp_path: Path) -> None:
    """No parts yet: a ConfigError telling how to produce results."""
    with pytest.raises(ConfigError, match="docpipe run"):
        load_results(tmp_path)


@pytest.fixture
def busy_output(tmp_path: Path) -> Iterator[Path]:
    """An output dir with two parts, a live journal segment, a run summary and the lock file."""
    job = _job()
    _write_rows(tmp_path, job, [_row(job, "a"), _row(job, "b")], run_id="run-1")
    _write_rows(tmp_path, job, [_row(job, "c")], run_id="run-2")
    writer = ResultWriter(tmp_path, output_schema(job), "run-3")
    writer.add(_row(job, "in-flight"))
    (tmp_path / "_runs").mkdir()
    (tmp_path / "_runs" / "run-1.json").write_text('{"documents": 2}', encoding="utf-8")
    (tmp_path / ".lock").write_text('{"pid": 1}', encoding="utf-8")
    yield tmp_path
    writer.close()


def test_pandas_reads_the_directory(busy_output: Path) -> None:
    """pandas.read_parquet(dir) reads the parts and ignores _wal, _runs and .lock."""
    assert ["a", "b", "c"] == sorted(pd.read_parquet(busy_output)["doc_id"])


def test_duckdb_reads_the_parts(busy_output: Path) -> None:
    """DuckDB's read_parquet('dir/*.parquet') sees every published row and can group by the enum."""
    rows = duckdb.sql(
        f"select category, count(*) from read_parquet('{busy_output}/*.parquet') group by category"
    ).fetchall()
    assert [("bill", 3)] == rows


def test_polars_reads_the_parts(busy_output: Path) -> None:
    """polars.read_parquet('dir/*.parquet') reads the parts with the same rows."""
    frame = pl.read_parquet(f"{busy_output}/*.parquet")
    assert ["a", "b", "c"] == sorted(frame["doc_id"].to_list())


def test_pyarrow_dataset_reads_the_directory(busy_output: Path) -> None:
    """pyarrow.dataset.dataset(dir) sees exactly the part files."""
    dataset = ds.dataset(busy_output, format="parquet")
    assert 3 == dataset.count_rows()
    assert all(Path(f).name.startswith("part-") for f in dataset.files)
    assert 2 == len(dataset.files)


def test_parts_are_plain_zstd_parquet(busy_output: Path) -> None:
    """A part is an ordinary Parquet file with docpipe's schema."""
    part = next(busy_output.glob("part-*.parquet"))
    metadata = pq.ParquetFile(part).metadata
    assert "ZSTD" == metadata.row_group(0).column(0).compression
    assert output_schema(_job()).names == pq.read_schema(part).names


# -- the journal's header: a segment is published under the schema it was written with ------------


def _segment(out: Path) -> Path:
    segments = sorted((out / "_wal").glob("*.jsonl"))
    assert 1 == len(segments)
    return segments[0]


def _snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `out`: its bytes and mtime (what 'nothing was touched' compares)."""
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def test_a_segment_opens_with_a_header_naming_the_job_and_its_schema(tmp_path: Path) -> None:
    """The first journal line names the job, its fingerprint and the exact Arrow schema of the rows."""
    job = _job()
    schema = output_schema(job, {"priority": "int64"})
    writer = ResultWriter(tmp_path, schema, "run-1")
    writer.add(_row(job, "a", priority=1))
    header = json.loads(_segment(tmp_path).read_bytes().splitlines()[0])
    writer.close()
    encoded = pa.py_buffer(base64.b64decode(header["schema"]))
    assert (1, "triage", job.fingerprint) == (header["docpipe_journal"], header["job"], header["job_fingerprint"])
    assert schema == pa.ipc.read_schema(encoded)
    assert schema.metadata == pa.ipc.read_schema(encoded).metadata


def test_recover_publishes_a_segment_under_its_own_schema(tmp_path: Path) -> None:
    """A run whose job or manifest changed since the kill still publishes the old rows with all their columns."""
    job = _job()
    _killed_writer(tmp_path, job, ["a", "b"])
    edited = parse_job(
        {
            "job": {"name": "triage", "instructions": "Only label it."},
            "fields": [{"name": "label", "type": "string"}],
        }
    )
    assert 2 == recover(tmp_path, output_schema(edited, {"owner": "string"}))
    assert [_row(job, "a"), _row(job, "b")] == _all_rows(tmp_path)
    assert output_schema(job) == pq.read_schema(next(tmp_path.glob("part-*.parquet")))


def _old_segment(out: Path, rows: list[dict[str, Any]], name: str = "run-0-00001") -> Path:
    """A segment as the version before journal headers wrote it: rows only."""
    (out / "_wal").mkdir(parents=True, exist_ok=True)
    path = out / "_wal" / f"{name}.jsonl"
    path.write_bytes(b"".join(encode_row(row) for row in rows))
    return path


def test_a_segment_without_a_header_is_recovered_under_the_current_schema(tmp_path: Path) -> None:
    """A journal left by the previous version (no header) is recovered when its rows are the same job's."""
    job = _job()
    _old_segment(tmp_path, [_row(job, "a"), _row(job, "b")])
    assert 2 == recover(tmp_path, output_schema(job))
    assert [_row(job, "a"), _row(job, "b")] == _all_rows(tmp_path)
    assert [] == list((tmp_path / "_wal").iterdir())


def test_rows_of_a_headerless_segment_that_do_not_fit_are_kept_in_quarantine(tmp_path: Path) -> None:
    """An old segment whose rows carry columns the current schema lacks is not published short of them."""
    job = _job()
    segment = _old_segment(tmp_path, [_row(job, "a", priority=3), _row(job, "b", priority=4)])
    damaged: list[JournalDamage] = []
    assert 0 == recover(tmp_path, output_schema(job), damaged=damaged)
    reasons = ["column 'priority' is not in the segment's schema"] * 2
    assert [(segment.name, 1), (segment.name, 2)] == [(d.segment, d.line) for d in damaged]
    assert reasons == [d.reason for d in damaged]
    assert (tmp_path / "_wal" / "quarantine" / segment.name).read_bytes() == b"".join(
        encode_row(_row(job, d, priority=p)) for d, p in (("a", 3), ("b", 4))
    )


@pytest.mark.parametrize("header", [True, False], ids=["with-header", "without-header"])
def test_recover_refuses_another_jobs_journal_before_writing_anything(tmp_path: Path, header: bool) -> None:
    """Job B never publishes job A's journal: ConfigError naming A, and the directory is left as it was."""
    other = _job(name="contract_review")
    if header:
        _killed_writer(tmp_path, other, ["a", "b"])
    else:
        _old_segment(tmp_path, [_row(other, "a"), _row(other, "b")])
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError, match="holds results of job 'contract_review', not 'triage'"):
        recover(tmp_path, output_schema(_job()))
    with pytest.raises(ConfigError, match="holds results of job 'contract_review', not 'triage'"):
        load_ledger(tmp_path, _job())
    assert before == _snapshot(tmp_path)


def test_ledger_refuses_another_jobs_journal_next_to_this_jobs_parts(tmp_path: Path) -> None:
    """Parts of this job and a journal of another: refused all the same, naming the journal segment."""
    job, other = _job(), _job(name="other")
    _write_rows(tmp_path, job, [_row(job, "a")], run_id="run-1")
    _killed_writer(tmp_path, other, ["b"], run_id="run-2")
    with pytest.raises(ConfigError, match=r"job 'other', not 'triage' \(in its journal, _wal/run-2-00001.jsonl"):
        load_ledger(tmp_path, job, schema=output_schema(job))


# -- column types are fixed per output directory -------------------------------------------------


@pytest.mark.parametrize("where", ["part", "journal"])
def test_ledger_refuses_a_metadata_column_that_changed_type(tmp_path: Path, where: str) -> None:
    """priority was int64 (in a part, or a killed run's journal) and is now a string: ConfigError, nothing touched."""
    job = _job()
    before_schema = output_schema(job, {"priority": "int64"})
    writer = ResultWriter(tmp_path, before_schema, "run-1")
    writer.add(_row(job, "a", priority=2))
    if where == "part":
        writer.close()
    else:
        writer._wal.close()  # killed
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError) as refused:
        load_ledger(tmp_path, job, schema=output_schema(job, {"priority": "string"}))
    message = str(refused.value)
    assert "column 'priority' as int64" in message and "write it as string" in message
    assert "new --out directory" in message and "give the manifest's 'priority' int64 values again" in message
    assert before == _snapshot(tmp_path)


def test_ledger_refuses_a_job_field_that_changed_type(tmp_path: Path) -> None:
    """A job edit turning field `pages` from integer to string is refused, naming the field and both types."""
    job = _job()
    _write_rows(tmp_path, job, [_row(job, "a")])
    data = {
        "job": {"name": "triage", "instructions": "Sort it."},
        "fields": [{"name": "pages", "type": "string"}],
    }
    edited = parse_job(data)
    with pytest.raises(ConfigError, match=r"column 'pages' as int64 .* write it as string.* set field 'pages'"):
        load_ledger(tmp_path, edited, schema=output_schema(edited))


def test_ledger_accepts_metadata_columns_added_or_dropped(tmp_path: Path) -> None:
    """A manifest with a new column, or without an old one, changes no column's type: accepted."""
    job = _job()
    writer = ResultWriter(tmp_path, output_schema(job, {"priority": "int64", "owner": "string"}), "run-1")
    writer.add(_row(job, "a", priority=2, owner="ops"))
    writer.close()
    ledger = load_ledger(tmp_path, job, schema=output_schema(job, {"priority": "int64", "region": "string"}))
    assert ["a"] == list(ledger.done)


# -- damaged journals ------------------------------------------------------------------------------


def _replace_line(segment: Path, number: int, content: bytes) -> None:
    lines = segment.read_bytes().split(b"\n")
    lines[number - 1] = content
    segment.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"doc_id": "c", "status": "ok", "summ', "not valid JSON"),
        (b'{"doc_id": "c\xff\xfe", "status": "ok"}', "not valid UTF-8"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b"", "not valid JSON"),
        (b'{"hello": "world"}', "not a row: no doc_id"),
        (None, "a value does not fit the schema: Could not convert 'many' with type str: tried to convert to int64"),
        (None, "a date or timestamp that cannot be read"),
    ],
    ids=["torn-json", "bad-utf8", "not-an-object", "blank", "not-a-row", "wrong-type", "bad-date"],
)
def test_one_damaged_line_loses_that_line_only(tmp_path: Path, content: bytes | None, reason: str) -> None:
    """Every other line of the segment is recovered; the damaged one is named; the segment is quarantined."""
    job = _job()
    doc_ids = [f"d{i}" for i in range(10)]
    _killed_writer(tmp_path, job, doc_ids)
    segment = _segment(tmp_path)
    if content is None:
        bad = {"input_tokens": "many"} if "fit" in reason else {"due": "the first of December"}
        content = encode_row(_row(job, "d3", **bad)).rstrip(b"\n")
    _replace_line(segment, 5, content)  # line 1 is the header: line 5 holds d3
    journal = segment.read_bytes()
    damaged: list[JournalDamage] = []
    assert 9 == recover(tmp_path, output_schema(job), damaged=damaged)
    assert [d for d in doc_ids if d != "d3"] == [row["doc_id"] for row in _all_rows(tmp_path)]
    assert [f"{segment.name} line 5: {reason}"] == [str(d) for d in damaged]
    assert not segment.exists()
    assert journal == (tmp_path / "_wal" / "quarantine" / segment.name).read_bytes()
    assert 0 == recover(tmp_path, output_schema(job))  # quarantined: never read again
    assert 9 == len(_all_rows(tmp_path))


def test_a_truncated_segment_recovers_everything_before_the_cut_silently(tmp_path: Path) -> None:
    """Cut anywhere (the SIGKILL case): the whole lines are recovered, the torn one dropped without a report."""
    job = _job()
    _killed_writer(tmp_path, job, [f"d{i}" for i in range(6)])
    segment = _segment(tmp_path)
    journal = segment.read_bytes()
    segment.write_bytes(journal[: journal.index(b'"d4"') + 10])
    damaged: list[JournalDamage] = []
    assert 4 == recover(tmp_path, output_schema(job), damaged=damaged)
    assert ["d0", "d1", "d2", "d3"] == [row["doc_id"] for row in _all_rows(tmp_path)]
    assert ([], []) == (damaged, list((tmp_path / "_wal").iterdir()))


def test_a_damaged_header_falls_back_to_the_rows_job_and_the_current_schema(tmp_path: Path) -> None:
    """An unreadable header is damage: the rows are still recovered, under the current schema, and kept."""
    job = _job()
    _killed_writer(tmp_path, job, ["a", "b"])
    segment = _segment(tmp_path)
    _replace_line(segment, 1, b'{"docpipe_journal": 1, "job": "triage", "job_fing')
    damaged: list[JournalDamage] = []
    assert 2 == recover(tmp_path, output_schema(job), damaged=damaged)
    assert [_row(job, "a"), _row(job, "b")] == _all_rows(tmp_path)
    assert [f"{segment.name} line 1: not valid JSON"] == [str(d) for d in damaged]
    assert (tmp_path / "_wal" / "quarantine" / segment.name).exists()


def test_a_damaged_segment_whose_part_exists_is_quarantined_not_deleted(tmp_path: Path) -> None:
    """Killed after publishing a damaged segment's part but before moving it: the next recovery moves it."""
    job = _job()
    _killed_writer(tmp_path, job, ["a", "b"])
    segment = _segment(tmp_path)
    _replace_line(segment, 2, b"garbage")
    journal = segment.read_bytes()
    recover(tmp_path, output_schema(job))
    (tmp_path / "_wal" / "quarantine" / segment.name).rename(segment)  # as if killed before the move
    damaged: list[JournalDamage] = []
    assert 0 == recover(tmp_path, output_schema(job), damaged=damaged)
    assert ["b"] == [row["doc_id"] for row in _all_rows(tmp_path)]
    assert journal == (tmp_path / "_wal" / "quarantine" / segment.name).read_bytes()


# -- the ledger reads the journal too, without recovering it --------------------------------------


def test_ledger_counts_ok_rows_still_in_the_journal_and_touches_nothing(tmp_path: Path) -> None:
    """After a kill, the journal's ok rows are done; the ledger leaves the journal where it is."""
    job = _job()
    _write_rows(tmp_path, job, [_row(job, "a")], run_id="run-1")
    writer = ResultWriter(tmp_path, output_schema(job), "run-2")
    writer.add(_row(job, "b"))
    writer.add(_error_row(job, "c"))
    writer._wal.close()  # killed
    before = _snapshot(tmp_path)
    ledger = load_ledger(tmp_path, job, schema=output_schema(job))
    assert (["a", "b"], 2) == (sorted(ledger.done), ledger.journal_rows)
    assert before == _snapshot(tmp_path)


def test_ledger_reads_parts_and_journal_in_the_order_they_were_written(tmp_path: Path) -> None:
    """A journal segment older than a part (a publish that failed) does not override the part's newer answer."""
    job = _job()
    _old_segment(tmp_path, [_row(job, "a", doc_sha256="v1")], name="run-1-00001")
    _write_rows(tmp_path, job, [_row(job, "a", doc_sha256="v2")], run_id="run-2")
    assert {"a": ("v2", 10, 1_000)} == load_ledger(tmp_path, job).done


# -- errors that cannot change are recorded once ---------------------------------------------------


def test_ledger_remembers_each_documents_latest_error_under_this_fingerprint(tmp_path: Path) -> None:
    """same_error: the latest row is this error under this fingerprint; an ok row or an edit of the job ends it."""
    job = _job()
    dup = "m.jsonl line 4: duplicate id 'a': an earlier row has the same id"
    rows = [
        _error_row(job, "m.jsonl:4", error_type="document_error", error_message=dup),
        _error_row(job, "b", error_type="document_error", error_message="m.jsonl line 5: missing id"),
        _error_row(job, "old", job_fingerprint="0123456789abcdef", error_type="document_error", error_message="x"),
    ]
    _write_rows(tmp_path, job, rows, run_id="run-1")
    _write_rows(tmp_path, job, [_row(job, "b")], run_id="run-2")
    ledger = load_ledger(tmp_path, job)
    assert ["m.jsonl:4"] == list(ledger.errors)
    assert (True, False, False, False) == (
        ledger.same_error("m.jsonl:4", "document_error", dup),
        ledger.same_error("m.jsonl:4", "document_error", dup.replace("'a'", "'b'")),
        ledger.same_error("b", "document_error", "m.jsonl line 5: missing id"),
        ledger.same_error("old", "document_error", "x"),
    )
    assert not load_ledger(tmp_path, _job(instructions="Sort it again.")).errors


# -- part sizing -----------------------------------------------------------------------------------


class _FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_a_slow_run_publishes_few_parts_and_its_first_rows_soon(tmp_path: Path) -> None:
    """A row every 20 s for 2 h: a first part within 30 s, then parts at most 10 minutes apart, not 120 tiny ones."""
    job = _job()
    clock = _FakeClock()
    writer = ResultWriter(tmp_path, output_schema(job), "run-1", flush_s=30, max_flush_s=600, clock=clock)
    for index in range(360):
        clock.now_s = index * 20.0
        writer.add(_row(job, f"d{index:03d}", created_at=T0 + timedelta(seconds=clock.now_s)))
        if index == 2:  # the row added at 40 s: the first rows have waited 30 s
            writer._wait()
            assert 1 == len(list(tmp_path.glob("part-*.parquet")))
    writer.close()
    spans_s = []
    for part in sorted(tmp_path.glob("part-*.parquet")):
        created = pq.read_table(part).column("created_at").to_pylist()
        spans_s.append((max(created) - min(created)).total_seconds())
    assert [40.0, 60.0, 120.0, 240.0, 480.0] == spans_s[:5]
    assert all(span_s <= 600 for span_s in spans_s)
    assert 15 == len(spans_s)
    assert [f"d{index:03d}" for index in range(360)] == [row["doc_id"] for row in _all_rows(tmp_path)]


def test_a_fast_run_publishes_a_part_every_flush_rows(tmp_path: Path) -> None:
    """Rows arriving faster than the timer: parts of exactly flush_rows rows, the timer never cuts one short."""
    job = _job()
    clock = _FakeClock()
    writer = ResultWriter(tmp_path, output_schema(job), "run-1", flush_rows=50, flush_s=30, clock=clock)
    for index in range(200):
        clock.now_s = index * 0.1
        writer.add(_row(job, f"d{index:03d}"))
    writer.close()
    assert [50, 50, 50, 50] == [pq.read_metadata(p).num_rows for p in sorted(tmp_path.glob("part-*.parquet"))]


# -- corrupt or foreign files among the parts ------------------------------------------------------


def _corrupt(good: bytes, kind: str) -> bytes:
    """A damaged copy of a good part's bytes, or a file that was never a docpipe part."""
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "garbled-footer":
        return good[:-300] + bytes((37 + 7 * index) % 256 for index in range(292)) + good[-8:]
    if kind == "garbled-pages":
        return good[:4] + b"\xab" * (len(good) // 3) + good[4 + len(good) // 3 :]
    if kind == "empty":
        return b""
    if kind == "not-parquet":
        return b"doc_id,status\na,ok\n"
    assert kind == "foreign-schema"
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"doc_id": [1, 2], "value": ["x", "y"]}), sink)
    return bytes(sink.getvalue().to_pybytes())


CORRUPTIONS = ["truncated", "garbled-footer", "garbled-pages", "empty", "not-parquet", "foreign-schema"]


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_corrupt_or_foreign_part_is_an_environment_failure_naming_it(tmp_path: Path, kind: str) -> None:
    """load_ledger and load_results raise EnvironmentFailure: the file, the cause, the command that sets it aside."""
    job = _job()
    _write_rows(tmp_path, job, [_row(job, "a"), _row(job, "b")])
    bad = tmp_path / "part-run-9-00001.parquet"
    bad.write_bytes(_corrupt(next(tmp_path.glob("part-*.parquet")).read_bytes(), kind))
    before = _snapshot(tmp_path)
    command = f"mkdir -p {tmp_path}/_quarantine && mv {bad} {tmp_path}/_quarantine/"
    for read in (lambda: load_ledger(tmp_path, job, schema=output_schema(job)), lambda: load_results(tmp_path)):
        with pytest.raises(EnvironmentFailure) as failed:
            read()
        message = str(failed.value)
        assert message.startswith(f"{bad} is not a readable docpipe part: ")
        assert message.endswith(command) and "\n" not in message
        assert bad == failed.value.path
    assert before == _snapshot(tmp_path)
    (tmp_path / "_quarantine").mkdir()
    bad.rename(tmp_path / "_quarantine" / bad.name)
    assert ["a", "b"] == sorted(load_results(tmp_path)["doc_id"])
