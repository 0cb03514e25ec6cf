"""The README's promises: CI runs exactly its test command; its main command names real files."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """.ci/run's command line is, verbatim, the README's test command."""
    test_command = next(block for block in _bash_blocks() if "pytest" in block)
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert test_command in ci_lines


def test_main_command_runs_the_triage_job_offline_on_sample_data() -> None:
    """The first README command runs jobs/triage.toml over sample_data/documents/ with --offline."""
    main_command = _bash_blocks()[0]
    assert "docpipe run jobs/triage.toml sample_data/documents " in main_command and "--offline" in main_command
    assert (ROOT / "jobs" / "triage.toml").is_file() and (ROOT / "sample_data" / "documents").is_dir()
