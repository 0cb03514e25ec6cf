"""--mode auto's choice and its reason."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from conftest import SEED, TEST_KEY

from pipeline.cli import main
from pipeline.emulator import Emulator, EmulatorConfig

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "sample_data" / "manifest.jsonl"
DOCUMENTS_DIR = ROOT / "sample_data" / "documents"
TRIAGE = ROOT / "jobs" / "triage.toml"


def invoke(emulator: Emulator, *args: str) -> Result:
    env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url,
           "DOCPIPE_BATCH_POLL_S": "0.05"}
    return CliRunner().invoke(main, ["run", str(TRIAGE), *args], env=env)


def last_summary(out: Path) -> dict:
    saved = sorted((out / "_runs").glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
    return json.loads(saved[-1].read_text())


def test_auto_never_sends_in_realtime_what_an_earlier_run_has_in_a_batch(tmp_path: Path) -> None:
    """Documents still in a batch of this directory: auto takes batch mode, and nothing is paid twice."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=3600)) as emulator:
        submitted = invoke(emulator, str(MANIFEST), "--out", str(out), "--mode", "batch", "--no-wait")
        assert 0 == submitted.exit_code, submitted.output
        auto = invoke(emulator, str(MANIFEST), "--out", str(out), "--mode", "auto", "--no-wait")
        billed = emulator.control.stats()["messages_billed"]
    assert 0 == billed, (auto.exit_code, auto.output)  # the batch is still in progress: nothing to send now
    assert 5 == auto.exit_code, auto.output


def test_auto_counts_what_is_to_send_not_every_row_in_the_output_directory(tmp_path: Path) -> None:
    """Auto decides on the input's size, not on rows of other inputs in the output directory."""
    out = tmp_path / "out"
    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(8):
        (folder / f"new-{i}.txt").write_text(f"Invoice {i} from Contoso, 1,200 EUR due in 30 days.\n" * 20)
    with Emulator(EmulatorConfig(seed=SEED, batch_processing_s=0.1)) as emulator:
        assert 0 == invoke(emulator, str(MANIFEST), "--out", str(out)).exit_code
        auto = invoke(emulator, str(folder), "--out", str(out), "--mode", "auto", "--batch-above", "5")
    assert 0 == auto.exit_code, auto.output
    summary = last_summary(out)
    assert "batch" == summary["mode"], (summary.get("mode_reason"), auto.output)
