"""`docpipe init` writes a job to start from; `docpipe check` checks a job and its input without a request."""

from __future__ import annotations

import json
import re
from pathlib import Path

from test_cli_run import SAMPLE, TRIAGE, invoke

from pipeline.jobs import JOB_KEYS, load_job


def test_init_writes_a_job_that_checks_and_names_every_key(tmp_path: Path) -> None:
    """The starter job loads as it is, names every [job] key, and loads with its commented keys turned on."""
    path = tmp_path / "invoices.toml"
    result = invoke(["init", "invoices", "--to", str(path)])
    assert 0 == result.exit_code, result.output
    text = path.read_text()
    assert "invoices" == load_job(path).name
    named = set(re.findall(r"^#? ?([a-z_]+) = ", text, re.MULTILINE))
    assert JOB_KEYS <= named | {"name"}, JOB_KEYS - named  # every key the code accepts is in the starter
    uncommented = re.sub(r"^# (\[\[examples\]\]|input = |output = |too_long|truncate|pdf|schema_retries)", r"\1",
                         text, flags=re.MULTILINE)
    path.write_text(uncommented)
    job = load_job(path)
    assert 1 == len(job.examples)
    checked = invoke(["check", str(path)])
    assert 0 == checked.exit_code and "is valid" in checked.output and "1 example(s)" in checked.output


def test_init_never_overwrites_a_job_file(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text("mine")
    result = invoke(["init", "--to", str(path)])
    assert 2 == result.exit_code and "exists" in result.output
    assert "mine" == path.read_text()


def test_check_reads_the_input_as_a_run_does_and_sends_nothing(tmp_path: Path) -> None:
    """A duplicate id and a row without text or path: counted, listed, exit 1 as a run's would be; nothing sent."""
    manifest = tmp_path / "m.jsonl"
    rows = [{"id": "a", "text": "An invoice."}, {"id": "a", "text": "Again."}, {"id": "b"}]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = invoke(["check", str(TRIAGE), str(manifest)], ANTHROPIC_BASE_URL="http://127.0.0.1:9")
    assert 1 == result.exit_code, result.output
    assert "3 document(s)" in result.output and "2 would be error rows" in result.output
    assert "duplicate id" in result.output
    folder = invoke(["check", str(TRIAGE), str(SAMPLE)])
    assert 0 == folder.exit_code and "50 document(s); no row in error" in folder.output


def test_check_refuses_a_broken_job_or_a_detail_the_input_lacks(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(TRIAGE.read_text().replace("max_tokens = 1024", 'max_tokens = "lots"'))
    result = invoke(["check", str(broken)])
    assert 2 == result.exit_code and "[job.max_tokens]" in result.output
    regional = tmp_path / "regional.toml"
    regional.write_text(TRIAGE.read_text().replace("You triage documents", "For the {region} office: you triage"))
    result = invoke(["check", str(regional), str(SAMPLE.parent / "manifest.csv")])
    assert 2 == result.exit_code and "{region}" in result.output and "customer" in result.output


def test_check_counts_blank_text_and_empty_files_as_a_run_would(tmp_path: Path) -> None:
    """A row of blank text and an empty file are "empty document" error rows in a run: check says so, exit 1."""
    manifest = tmp_path / "m.jsonl"
    rows = [{"id": "blank", "text": " \n\t"}, {"id": "ok", "text": "A bill."}]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = invoke(["check", str(TRIAGE), str(manifest)])
    assert 1 == result.exit_code and "1 would be error rows (extraction_error: 1)" in result.output
    assert "error  blank: empty document" in result.output
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "empty.txt").write_bytes(b"")
    (folder / "letter.txt").write_text("Dear team, the invoice is attached.")
    result = invoke(["check", str(TRIAGE), str(folder)])
    assert 1 == result.exit_code and "error  empty.txt: empty document" in result.output
