"""File descriptors: the soft limit raised for --concurrency, a clear refusal past the hard limit, the table grown once.

Limits are changed inside child processes (first thing in the child's own code), so the test process keeps its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

resource = pytest.importorskip("resource")
ROOT = Path(__file__).resolve().parent.parent
HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)"),
    pytest.mark.skipif(HARD != resource.RLIM_INFINITY and HARD < 4096, reason="needs a hard open-file limit >= 4096"),
]


def _python(code: str, *, soft: int, hard: int, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `code` in a child that first sets its RLIMIT_NOFILE to (soft, hard)."""
    prelude = f"import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )


def test_the_soft_limit_is_raised_to_what_the_run_needs() -> None:
    child = _python(
        "from pipeline.descriptors import descriptors_needed, reserve_descriptors\n"
        "reserve_descriptors(descriptors_needed(520, offline=True))\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])",
        soft=256,
        hard=4096,
    )
    assert 0 == child.returncode, child.stderr
    assert str(2 * 520 + 64) == child.stdout.strip()


def test_a_hard_limit_too_low_refuses_the_run_before_any_request(tmp_path: Path) -> None:
    """Through the CLI: exit 2 with what is needed and what to do, nothing written, the limits unchanged."""
    manifest = tmp_path / "docs.jsonl"
    manifest.write_text('{"id": "a", "text": "An invoice for 10 EUR."}\n', encoding="utf-8")
    out = tmp_path / "out"
    env = dict(os.environ, ANTHROPIC_API_KEY="sk-test", ANTHROPIC_BASE_URL="http://127.0.0.1:9")
    argv = ["docpipe", "run", "jobs/triage.toml", str(manifest), "--out", str(out), "--concurrency", "512"]
    child = _python(
        "import atexit, sys, runpy\n"
        "atexit.register(lambda: print(resource.getrlimit(resource.RLIMIT_NOFILE)))\n"
        f"sys.argv = {argv!r}\n"
        "runpy.run_module('pipeline', run_name='__main__')",
        soft=200,
        hard=300,
        env=env,
    )
    assert 2 == child.returncode, child.stderr
    assert "584 open files" in child.stderr  # 512 connections + 8 spare + 64 files
    assert "may open only 200" in child.stderr
    assert "at most 300" in child.stderr
    assert "Lower --concurrency" in child.stderr
    assert "(200, 300)" == child.stdout.strip()
    assert not out.exists()


def test_the_descriptor_table_is_grown_in_one_step() -> None:
    """After the reservation the kernel's table (FDSize) already holds every descriptor the run needs."""
    child = _python(
        "import threading\n"
        "from pipeline.descriptors import reserve_descriptors\n"
        "def fdsize():\n"
        "    line = next(l for l in open('/proc/self/status') if l.startswith('FDSize:'))\n"
        "    return int(line.split()[1])\n"
        "before = fdsize()\n"
        "reserve_descriptors(1500)\n"
        "for thread in threading.enumerate():\n"
        "    if thread.name == 'docpipe-descriptors':\n"
        "        thread.join()\n"
        "print(before, fdsize())",
        soft=4096,
        hard=4096,
    )
    assert 0 == child.returncode, child.stderr
    before, after = map(int, child.stdout.split())
    assert before < 1500 <= after
