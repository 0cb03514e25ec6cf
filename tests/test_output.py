"""The Parquet output: typed columns, the write-ahead journal, recovery, the ledger and the readers."""



from __future__ import annotations

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

from pipeline.errors import ConfigError
from pipeline.jobs import Job, parse_job
from pipeline.output import ResultWriter, load_ledger, load_results, output_schema, recover

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
    return _row(
        job, doc_id, status="error", error_type="overloaded_error", error_message="try later", **fields, **changes
    )


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
    assert {b"docpipe.job": b"triage", b"docpipe.job_fingerprint": job.fingerprint.encode()} == metadata


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
