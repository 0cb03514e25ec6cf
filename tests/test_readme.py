"""The README's promises: CI runs its test command, and what it tells a user to do next works."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SEED

from pipeline import cli
from pipeline.emulator import Emulator, EmulatorConfig

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


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_notebook_snippets_work_right_after_the_main_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's main command, then each of its notebook snippets, in the same folder, warnings as errors.

    The command runs in-process (its process's exit codes are the cron test's subject); each snippet
    runs in a fresh interpreter, as in a new notebook, so that warnings at import time count too.
    """
    main = _bash_blocks()[0].split("&& .venv/bin/docpipe ", 1)[1].split()
    main = [str(ROOT / arg) if arg.startswith(("jobs/", "sample_data/")) else arg for arg in main]
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.main, main, env={"DOCPIPE_PROGRESS": "off"}, catch_exceptions=False)
    assert 0 == result.exit_code, result.output
    for snippet in _python_blocks()[:2]:
        if "pipeline.load_results" not in snippet and "read_parquet" not in snippet:
            continue
        done = subprocess.run(
            [sys.executable, "-W", "error", "-c", snippet], cwd=tmp_path, capture_output=True, text=True
        )
        assert 0 == done.returncode, done.stderr


def _cron_line() -> str:
    block = re.search(r"```cron\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    assert block is not None
    line = next(line for line in block.group(1).splitlines() if not line.startswith("#"))
    command = line.split(None, 5)[5]  # after the five time fields
    return command.replace("\\%", "%")  # what cron hands to /bin/sh


@pytest.mark.parametrize(
    ("situation", "exit_code", "alerted"),
    [("ok", 0, False), ("bad key", 3, True), ("locked", 75, False), ("bad job", 2, True)],
)
def test_the_cron_line_alerts_on_exactly_the_codes_that_need_a_person(
    tmp_path: Path, situation: str, exit_code: int, alerted: bool
) -> None:
    """The README's crontab line, run by /bin/sh: a log of its own per run, mail only for 2, 3, 4 and the unknown."""
    logs, inbox, out, bin_dir = tmp_path / "logs", tmp_path / "inbox", tmp_path / "out", tmp_path / "bin"
    for folder in (logs, inbox, bin_dir):
        folder.mkdir()
    (inbox / "note.txt").write_text("Invoice 7 from Ridgeline Pallet Co.: 1,200 EUR, due in 30 days.")
    (tmp_path / "key").write_text("sk-docpipe-offline" if situation != "bad key" else "sk-ant-revoked")
    mailbox = tmp_path / "mailbox"
    (bin_dir / "mail").write_text(f'#!/bin/sh\necho "mail $*" >> {mailbox}\ncat >> {mailbox}\n')
    (bin_dir / "mail").chmod(0o755)
    job = ROOT / "jobs" / "triage.toml"
    if situation == "bad job":
        job = tmp_path / "bad.toml"
        job.write_text("[job]\nname = 'broken'\n")
    command = (
        _cron_line()
        .replace("cd /srv/docpipe", f"cd {ROOT}")
        .replace("/var/log/docpipe", str(logs))
        .replace("/etc/docpipe/key", str(tmp_path / "key"))
        .replace("jobs/triage.toml", str(job))
        .replace("/srv/inbox", str(inbox))
        .replace("/srv/results/triage", str(out))
        .replace(".venv/bin/docpipe", f"{sys.executable} -m pipeline")
    )
    with Emulator(EmulatorConfig(seed=SEED, api_keys=frozenset({"sk-docpipe-offline"}))) as emulator:
        env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "ANTHROPIC_BASE_URL": emulator.base_url,
            "HOME": str(tmp_path),
        }
        holder = None
        if situation == "locked":
            out.mkdir()
            holder = open(out / ".lock", "a")  # noqa: SIM115
            fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            subprocess.run(["/bin/sh", "-c", command], env=env, check=True, timeout=60)
        finally:
            if holder is not None:
                holder.close()
    run_logs = list(logs.glob("triage-*.log"))
    assert 1 == len(run_logs)
    log = run_logs[0].read_text()
    if exit_code:
        assert "docpipe: error: " in log
    if alerted:
        assert mailbox.read_text().startswith(f"mail -s docpipe triage failed (exit {exit_code}) ops@example.com\n")
        assert log in mailbox.read_text()  # the run's log is the mail's body
    else:
        assert not mailbox.exists()


def test_the_init_and_check_excerpt_is_what_the_commands_print(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's `docpipe init myjob` / `docpipe check` console block, line for line, as run today."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```\n$ docpipe init myjob\n") + 4
    block = readme[start:readme.index("\n```", start)]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    printed: list[str] = []
    for line in block.splitlines():
        if line.startswith("$ docpipe "):
            result = CliRunner().invoke(cli.main, line.removeprefix("$ docpipe ").split(), catch_exceptions=False)
            assert 0 == result.exit_code, result.output
            printed += [f"$ {line.removeprefix('$ ')}", *result.output.splitlines()]
    assert block.splitlines() == printed
