"""The estimate against real runs when documents differ in size."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import SEED, TEST_KEY

import pipeline
from pipeline.cli import main
from pipeline.emulator import Emulator, EmulatorConfig

ROOT = Path(__file__).resolve().parent.parent
TRIAGE = ROOT / "jobs" / "triage.toml"


def cli(args: list[str], emulator: Emulator) -> Result:
    env = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url,
           "DOCPIPE_BATCH_POLL_S": "0.05"}
    return CliRunner().invoke(main, args, env=env)


def test_one_long_document_among_short_ones_is_priced_at_the_long_prompt_tier(tmp_path: Path) -> None:
    """One 110k-token document among ten short ones: Haiku 5.5's long-prompt tier applies to it alone,
    in the expected cost and in the worst case (what --max-cost would reserve, request by request)."""
    job = tmp_path / "long.toml"
    job.write_text(TRIAGE.read_text().replace("max_document_tokens = 60000", "max_document_tokens = 200000"))
    folder = tmp_path / "docs"
    folder.mkdir()
    words = random.Random(1).choices(["freight", "invoice", "Northwind", "pallet", "customs", "EUR"], k=90_000)
    (folder / "big.txt").write_text(" ".join(words))  # ~450 KB: ~112k tokens at the emulator's 4 bytes a token
    for i in range(10):
        (folder / f"small-{i}.txt").write_text(f"Invoice {i} from Contoso: 1,200 EUR due in 30 days.\n" * 10)
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED)) as emulator:
        estimated = cli(["estimate", str(job), str(folder), "--json"], emulator)
        assert 0 == estimated.exit_code, estimated.output
        ran = cli(["run", str(job), str(folder), "--out", str(out)], emulator)
        assert 0 == ran.exit_code, ran.output
    data = json.loads(estimated.output)
    (realtime,) = [p for p in data["projections"] if p["mode"] == "realtime"]
    actual = pipeline.load_results(out).cost_usd.sum()
    assert realtime["worst_usd"] >= actual, (realtime, actual)
    assert realtime["expected_usd"] == pytest.approx(actual, rel=0.3), (realtime, actual)
