"""`docpipe export OUT` end to end: a run through the CLI against the emulator, its rows read back as CSV and JSONL."""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from test_cli_run import TRIAGE, invoke
from test_status import _run_triage

import pipeline
from pipeline.emulator import Emulator
from pipeline.export import csv_cell, write_rows


def test_csv_round_trips_through_pandas_with_the_same_ids_and_statuses(emulator: Emulator, tmp_path: Path) -> None:
    """--format csv --to FILE: pandas reads the same documents, statuses, lists as JSON and ISO timestamps."""
    out = _run_triage(emulator, tmp_path)
    target = tmp_path / "rows.csv"
    result = invoke(["export", str(out), "--format", "csv", "--to", str(target)])
    assert 0 == result.exit_code, result.output
    assert f"docpipe: 4 rows written to {target}\n" == result.stderr
    expected = pipeline.load_results(out)
    exported = pd.read_csv(target, encoding="utf-8")
    assert list(expected.columns) == list(exported.columns)
    assert list(expected.doc_id) == list(exported.doc_id)
    assert list(expected.status) == list(exported.status)
    ok = exported[exported.status == "ok"]
    assert [list(points) for points in expected[expected.status == "ok"].key_points] == [
        json.loads(text) for text in ok.key_points
    ]
    assert list(expected.created_at) == list(pd.to_datetime(exported.created_at, format="ISO8601"))
    assert exported.error_message.isna().sum() == 3  # an empty cell for a missing value


def test_a_file_written_into_the_output_directory_must_not_break_its_readers(
    emulator: Emulator, tmp_path: Path
) -> None:
    """export --to, eval/compare --json and report --to inside OUT: refused unless the name starts with _."""
    out = _run_triage(emulator, tmp_path)
    truth = tmp_path / "truth.csv"
    truth.write_text("doc_id,category\nx,invoice\n")
    for args in (["export", str(out), "--format", "csv", "--to", str(out / "rows.csv")],
                 ["eval", str(out), "--truth", str(truth), "--json", str(out / "sub" / "eval.json")],
                 ["compare", str(out), str(out), "--json", str(out / "c.json")],
                 ["report", str(out), "--to", str(out / "page.html")]):
        result = invoke(args)
        assert 2 == result.exit_code, result.output
        assert "would read it as part of the dataset" in result.output and f"{out}/_" in result.output
    assert not (out / "rows.csv").exists() and not (out / "sub").exists()
    kept = invoke(["export", str(out), "--format", "csv", "--to", str(out / "_rows.csv")])
    assert 0 == kept.exit_code and (out / "_rows.csv").is_file()
    assert 4 == len(pd.read_parquet(out)) == len(pipeline.load_results(out))  # readers leave _ names out


def test_the_inside_check_sees_through_uris_symlinks_and_other_output_directories(
    emulator: Emulator, tmp_path: Path
) -> None:
    """OUT as file://, a symlink at the target, another output directory, docpipe's own `_runs/`: all refused."""
    out = _run_triage(emulator, tmp_path)
    other = tmp_path / "other"
    shutil.copytree(out, other)
    outside = tmp_path / "outside.csv"
    outside.write_text("")
    (out / "link.csv").symlink_to(outside)
    cases = {
        (f"file://{out}", out / "rows.csv"): "part of the dataset",
        (str(out), out / "link.csv"): "part of the dataset",  # the write would replace the link with a file in OUT
        (str(out), other / "rows.csv"): "part of the dataset",  # another output directory breaks alike
        (str(out), out / "_runs" / "rows.csv"): "among docpipe's own files",  # `status` reads every _runs/*.json
        (str(out), out): "a directory; name a file",
    }
    for (source, target), message in cases.items():
        result = invoke(["export", source, "--format", "csv", "--to", str(target)])
        assert 2 == result.exit_code and message in result.output, (source, target, result.output)
    assert outside.read_text() == "" and (out / "link.csv").is_symlink() and not (other / "rows.csv").exists()
    (out / "link.csv").unlink()  # the test's own stray file
    assert 4 == len(pd.read_parquet(out)) == len(pd.read_parquet(other))


def test_the_names_docpipe_keeps_in_an_output_directory_are_the_modules_own() -> None:
    """cli_output.OWN_NAMES is written out to keep the CLI's imports light; it must not drift from the modules."""
    from pipeline import journal, lock, parts, pieces, remote_inputs, stores, submissions, summary, uploads
    from pipeline.cli_output import OWN_NAMES

    assert OWN_NAMES == {journal.WAL_DIR, parts.PARTS_QUARANTINE_DIR, pieces.PIECES_FILE, remote_inputs.INPUTS_DIR,
                         stores.OWNER_RECORD, stores.STATE_MARKER, submissions.BATCH_DIR, summary.RUNS_DIR,
                         uploads.FILES_RECORD, lock.LOCK_NAME}


def test_jsonl_to_stdout_round_trips_through_pandas(emulator: Emulator, tmp_path: Path) -> None:
    """--format jsonl on stdout: one object per document, the same ids and statuses, nulls and ISO text."""
    out = _run_triage(emulator, tmp_path)
    result = invoke(["export", str(out), "--format", "jsonl"])
    assert 0 == result.exit_code, result.output
    expected = pipeline.load_results(out)
    exported = pd.read_json(io.StringIO(result.stdout), lines=True, dtype=False)
    assert list(expected.doc_id) == list(exported.doc_id)
    assert list(expected.status) == list(exported.status)
    [bad] = [json.loads(line) for line in result.stdout.splitlines() if '"empty.txt"' in line]
    assert (None, "extraction_error", "empty document") == (bad["key_points"], bad["error_type"], bad["error_message"])
    assert datetime.fromisoformat(bad["created_at"]).tzinfo is not None


def test_all_exports_every_row_the_latest_only_the_last(emulator: Emulator, tmp_path: Path) -> None:
    """After a second run retries the bad file: --all has its two rows, the default one."""
    out = _run_triage(emulator, tmp_path)
    assert 1 == invoke(["run", str(TRIAGE), str(tmp_path / "docs"), "--out", str(out)], emulator).exit_code
    latest = pd.read_json(io.StringIO(invoke(["export", str(out), "--format", "jsonl"]).stdout), lines=True)
    every = pd.read_json(io.StringIO(invoke(["export", str(out), "--format", "jsonl", "--all"]).stdout), lines=True)
    assert 4 == len(latest)
    assert sorted(pipeline.load_results(out, latest=False).doc_id) == sorted(every.doc_id)
    assert 2 == (every.doc_id == "empty.txt").sum()


def test_an_output_without_rows_is_a_clear_message(tmp_path: Path) -> None:
    """A docpipe directory with no part yet: exit 2, 'no rows in OUT to export', no file written."""
    out = tmp_path / "out"
    (out / "_runs").mkdir(parents=True)
    result = invoke(["export", str(out), "--format", "csv", "--to", str(tmp_path / "rows.csv")])
    assert 2 == result.exit_code
    assert f"no rows in {out} to export" in result.stderr
    assert not (tmp_path / "rows.csv").exists()


def test_values_are_written_as_text_every_tool_reads() -> None:
    """Lists as JSON in a cell, dates ISO 8601, None empty, NaN null, non-ASCII kept as UTF-8."""
    rows = [{
        "doc_id": "é.txt", "points": ["a", "b,c"], "day": date(2026, 1, 2),
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "score": float("nan"), "none": None, "flag": True,
    }]  # fmt: skip
    columns = list(rows[0])
    csv_text, jsonl_text = io.StringIO(), io.StringIO()
    assert 1 == write_rows(rows, columns, csv_text, format="csv")
    assert 1 == write_rows(rows, columns, jsonl_text, format="jsonl")
    header, line = csv_text.getvalue().splitlines()
    assert ",".join(columns) == header
    assert 'é.txt,"[""a"", ""b,c""]",2026-01-02,2026-01-02T03:04:05+00:00,,,True' == line
    expected = {
        "doc_id": "é.txt", "points": ["a", "b,c"], "day": "2026-01-02", "at": "2026-01-02T03:04:05+00:00",
        "score": None, "none": None, "flag": True,
    }  # fmt: skip
    assert expected == json.loads(jsonl_text.getvalue())


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (None, ""), ([], "[]"), ({"k": 1}, '{"k": 1}'), (0.5, "0.5"), (3, "3"), (-3, "-3"),
        ("=HYPERLINK(\"http://x.example\")", "'=HYPERLINK(\"http://x.example\")"),  # a formula: shown as text
        ("+1 555", "'+1 555"), ("@SUM(A1)", "'@SUM(A1)"), ("- a bullet", "'- a bullet"), ("plain", "plain"),
    ],
)
def test_a_csv_cell(value: object, cell: str) -> None:
    """One value as a CSV cell; text a spreadsheet would run as a formula opens with an apostrophe."""
    assert cell == csv_cell(value)


def test_a_target_that_cannot_be_written_is_exit_4_naming_it(emulator: Emulator, tmp_path: Path) -> None:
    """--to in a folder that does not exist: exit 4, one line naming the path, nothing left behind."""
    out = _run_triage(emulator, tmp_path)
    target = tmp_path / "missing" / "rows.csv"
    result = invoke(["export", str(out), "--format", "csv", "--to", str(target)])
    assert 4 == result.exit_code
    assert result.stderr.startswith("docpipe: error: cannot write the export to ") and "rows.csv" in result.stderr
    assert not (tmp_path / "missing").exists()
