"""One run per output directory: the advisory lock, its holder, and a dead holder's stale lock."""



from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import OutputLockedError
from pipeline.lock import OutputLock

HOLDER = """
import sys, time
from pathlib import Path
from pipeline.lock import OutputLock
lock = OutputLock(Path(sys.argv[1]), run_id="run-crashed").acquire()
print("READY", flush=True)
time.sleep(120)
"""


def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    """The next line of the child's stdout, or "" when none arrives within the timeout."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=timeout_s):
            return ""
    return process.stdout.readline().strip()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A real process holding the lock on tmp_path/out, ready when the fixture returns."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert "READY" == _read_line(process, timeout_s=30)
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


def test_a_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    """While one run holds the directory, another OutputLock raises OutputLockedError naming the holder."""
    with OutputLock(tmp_path, run_id="run-first"), pytest.raises(OutputLockedError) as excinfo:
        OutputLock(tmp_path, run_id="run-second").acquire()
    message = str(excinfo.value)
    assert "run-first" in message
    assert f'"pid": {os.getpid()}' in message
    assert str(tmp_path) in message


def test_the_lock_file_names_the_holder(tmp_path: Path) -> None:
    """The lock file holds the pid, host, run id and start time of the run holding it."""
    with OutputLock(tmp_path, run_id="run-7"):
        info = json.loads((tmp_path / ".lock").read_text(encoding="utf-8"))
    assert {"pid", "host", "run_id", "started_at"} == set(info)
    assert (os.getpid(), "run-7") == (info["pid"], info["run_id"])


def test_release_lets_the_next_run_in(tmp_path: Path) -> None:
    """After release, the next acquire succeeds and is not a stale takeover."""
    first = OutputLock(tmp_path, run_id="run-1").acquire()
    first.release()
    with OutputLock(tmp_path, run_id="run-2") as second:
        assert second.took_over_stale is False
    assert "" == (tmp_path / ".lock").read_text(encoding="utf-8")


def test_the_context_manager_releases_on_error(tmp_path: Path) -> None:
    """Leaving the with-block by an exception releases the lock."""
    with pytest.raises(RuntimeError), OutputLock(tmp_path, run_id="run-1"):
        raise RuntimeError("boom")
    OutputLock(tmp_path, run_id="run-2").acquire().release()


def test_a_missing_output_directory_is_created(tmp_path: Path) -> None:
    """Acquiring creates the output directory when it does not exist yet."""
    out = tmp_path / "a" / "b"
    with OutputLock(out, run_id="run-1"):
        assert (out / ".lock").is_file()


def test_a_live_process_holds_the_lock(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    """A lock held by another live process is refused, naming that process's run and pid."""
    with pytest.raises(OutputLockedError) as excinfo:
        OutputLock(tmp_path / "out", run_id="run-new").acquire()
    assert "run-crashed" in str(excinfo.value)
    assert f'"pid": {holder.pid}' in str(excinfo.value)


def test_a_killed_holders_lock_is_taken_over(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    """After the holder is killed with SIGKILL, the lock is acquired and reported as a stale takeover."""
    holder.kill()
    holder.wait()
    with OutputLock(tmp_path / "out", run_id="run-new") as lock:
        assert lock.took_over_stale is True
        info = json.loads((tmp_path / "out" / ".lock").read_text(encoding="utf-8"))
    assert (os.getpid(), "run-new") == (info["pid"], info["run_id"])


def test_a_lock_file_of_bytes_that_are_not_text_is_taken_over(tmp_path: Path) -> None:
    """The lock's contents only inform a person: garbage in them never stops the next run."""
    (tmp_path / ".lock").write_bytes(b"\xff\xfe\x00garbage\x80")
    lock = OutputLock(tmp_path, run_id="run-2").acquire()
    try:
        assert lock.took_over_stale
        assert "run-2" == json.loads((tmp_path / ".lock").read_text())["run_id"]
    finally:
        lock.release()
