"""`docpipe estimate`: counted with the API's count_tokens, held against what runs then cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import SEED, TEST_KEY

import pipeline
from pipeline.cli import main
from pipeline.emulator import Emulator, EmulatorConfig

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "sample_data" / "manifest.jsonl"
TRIAGE = ROOT / "jobs" / "triage.toml"


def cli(args: list[str], emulator: Emulator | None, **env: str) -> Result:
    environment = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY if emulator else "",
                   "DOCPIPE_BATCH_POLL_S": "0.05", **env}
    if emulator is not None:
        environment["ANTHROPIC_BASE_URL"] = emulator.base_url
    return CliRunner().invoke(main, args, env=environment)


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_the_estimate_is_within_15_percent_of_what_the_run_costs(tmp_path: Path, mode: str) -> None:
    """Estimated before a run on an output directory with this job's earlier rows; then the run's rows' cost."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:  # the first 7 documents
        assert 0 == cli(["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--limit", "7"], emulator).exit_code
        estimated = cli(["estimate", str(TRIAGE), str(MANIFEST), "--out", str(out), "--json"], emulator)
        assert 0 == estimated.exit_code, estimated.output
        data = json.loads(estimated.output)
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:  # a cold cache, as estimated
        ran = cli(["run", str(TRIAGE), str(MANIFEST), "--out", str(out), "--mode", mode], emulator)
        assert 0 == ran.exit_code, ran.output
    assert 7 == data["documents"] and 7 == data["already_done"]
    assert "count_tokens on 7 request(s)" in data["input_counted_by"]
    assert "earlier ok row" in data["output_source"]
    saved = sorted((out / "_runs").glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
    second_run = json.loads(saved[-1].read_text())["run_id"]
    rows = pipeline.load_results(out, latest=False)
    actual = rows[rows.run_id == second_run]
    assert 7 == len(actual) and {mode} == set(actual["mode"])
    (projection,) = [p for p in data["projections"] if p["mode"] == mode]
    assert projection["expected_usd"] == pytest.approx(actual.cost_usd.sum(), rel=0.15)
    assert projection["worst_usd"] >= actual.cost_usd.sum()


def test_without_the_api_the_estimate_says_it_is_local(tmp_path: Path) -> None:
    result = cli(["estimate", str(TRIAGE), str(MANIFEST)], None)
    assert 0 == result.exit_code, result.output
    assert "14 document(s) to send" in result.output
    assert "docpipe's local estimate (no API reachable" in result.output
    assert "assumed: 25% of max_tokens" in result.output
    assert "realtime: expected $" in result.output and "batch: expected $" in result.output
