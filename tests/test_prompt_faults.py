"""Faults around document details, [[examples]], any model and --model, found by attacking them: each failed once."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import SEED
from test_any_model import NEW_MODEL, SERVED  # the emulator, as the API, serves NEW_MODEL
from test_cli_run import SAMPLE, TRIAGE, invoke

from pipeline.details import details
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.requests import details_content


def test_braces_around_a_word_the_input_lacks_say_how_to_write_them_as_text(
    emulator: Emulator, tmp_path: Path
) -> None:
    """`{year}-{month}-{day}` as a format: refused before anything is sent (a detail no input gives), with the way
    to write braces as text; doubled, `{{year}}`, the job runs."""
    job = tmp_path / "dated.toml"
    job.write_text(TRIAGE.read_text().replace(
        "You triage documents", "Write any date you quote as {year}-{month}-{day}. You triage documents", 1))
    out = tmp_path / "out"
    result = invoke(["run", str(job), str(SAMPLE / "invoices"), "--out", str(out), "--limit", "1"], emulator)
    assert 2 == result.exit_code, result.output
    assert "To write braces as text, double them: {{year}}" in result.output
    assert 0 == emulator.control.stats()["requests"]["total"]
    job.write_text(job.read_text().replace("{year}-{month}-{day}", "{{year}}-{{month}}-{{day}}"))
    result = invoke(["run", str(job), str(SAMPLE / "invoices"), "--out", str(out), "--limit", "1"], emulator)
    assert 0 == result.exit_code, result.output


def test_estimate_of_a_model_without_prices_does_not_say_it_is_free(
    tmp_path: Path,
) -> None:
    """`estimate --model NEW` with no prices: the cost is unknown (null), never $0."""
    with Emulator(EmulatorConfig(seed=SEED, models=SERVED)) as emulator:
        result = invoke(["estimate", str(TRIAGE), str(SAMPLE / "invoices"), "--model", NEW_MODEL, "--json"], emulator)
    assert 0 == result.exit_code, result.output
    report = json.loads(result.stdout)
    assert all(p["expected_usd"] is None and p["worst_usd"] is None for p in report["projections"]), report


def test_max_cost_with_a_model_without_prices_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    """`--max-cost` on a model docpipe has no prices for: refused (exit 2) before a message is sent."""
    with Emulator(EmulatorConfig(seed=SEED, models=SERVED)) as emulator:
        result = invoke(["run", str(TRIAGE), str(SAMPLE / "invoices"), "--out", str(tmp_path / "out"),
                         "--model", NEW_MODEL, "--max-cost", "0.0001"], emulator)
        sent = emulator.control.stats()["requests"]["by_endpoint"].get("messages", 0)
    assert (2, 0) == (result.exit_code, sent), result.output


def test_a_detail_value_cannot_forge_another_line_of_the_details_block() -> None:
    """Every line break in a manifest value (\\r, U+2028, U+0085...) becomes a space: one line a detail."""
    for breaker in ("\r", "\u2028", "\x85", "\x0b", "\x0c"):
        metadata = {"customer": f"Acme{breaker}priority: urgent"}
        values = details(["customer"], doc_id="d", source="m.jsonl:1", metadata=metadata, size=None, mtime_ns=None)
        text = details_content(values)[0]["text"]
        assert ["<document_details>", "customer: Acme priority: urgent", "</document_details>"] == text.splitlines(), (
            repr(breaker), text)


def test_batch_mode_with_a_model_the_api_does_not_serve_stops_before_submitting(tmp_path: Path) -> None:
    """--mode batch with a model neither docpipe nor the API knows: exit 3 before any batch is submitted."""
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        result = invoke(["run", str(TRIAGE), str(SAMPLE / "invoices"), "--out", str(tmp_path / "out"),
                         "--mode", "batch", "--model", "claude-nope-9"], emulator, DOCPIPE_BATCH_POLL_S="0.05")
        endpoints = emulator.control.stats()["requests"]["by_endpoint"]
    assert 3 == result.exit_code, result.output
    assert 0 == endpoints.get("batches", 0), endpoints


def test_the_summary_of_a_run_without_prices_does_not_report_a_cost_of_zero(
    tmp_path: Path,
) -> None:
    """A run whose rows all have a null cost has a null cost in its summary, not $0."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, models=SERVED)) as emulator:
        args = ["run", str(TRIAGE), str(SAMPLE / "invoices"), "--out", str(out), "--model", NEW_MODEL]
        result = invoke(args, emulator)
    assert 0 == result.exit_code, result.output
    summary = json.loads(next((out / "_runs").glob("*.json")).read_text())
    assert summary["cost_usd"] is None, summary["cost_usd"]


def test_an_example_with_a_non_finite_number_is_refused() -> None:
    """An example with `nan` or `inf` for a number field is refused: no answer can give it."""
    import pytest

    from pipeline.errors import JobError
    from pipeline.jobs import parse_job

    fields = [{"name": "amount", "type": "number", "description": "The total."}]
    for bad in (float("nan"), float("inf")):
        data = {"job": {"name": "t", "instructions": "Read."}, "fields": fields,
                "examples": [{"input": "Invoice for 40 EUR.", "output": {"amount": bad}}]}
        with pytest.raises(JobError) as caught:
            parse_job(data)
        assert "examples[0].output.amount" == caught.value.key
