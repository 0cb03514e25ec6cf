"""One run per output directory.

The lock is an advisory `flock` on `<out>/.lock`, held for the life of the run. The kernel drops it
when the process dies, however it dies, so a lock left by a killed run is stale by construction and
the next run simply takes it over; the file's contents (pid, host, start time) only serve to tell
the person who is holding it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO

from .errors import OutputLockedError

__all__ = ["OutputLock"]

LOCK_NAME = ".lock"


class OutputLock:
    """Exclusive, non-blocking lock on an output directory (a context manager)."""

    def __init__(self, out_dir: Path, *, run_id: str) -> None:
        self.path = out_dir / LOCK_NAME
        self.run_id = run_id
        self._handle: IO[str] | None = None
        self.took_over_stale = False

    def acquire(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The contents only tell a person who holds the lock: bytes that are not UTF-8 must not stop a run.
        handle = open(self.path, "a+", encoding="utf-8", errors="replace")  # noqa: SIM115
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputLockedError(
                f"{self.path.parent} is in use by another docpipe run ({holder}); "
                "wait for it to finish, or use another --out directory"
            ) from None
        handle.seek(0)
        self.took_over_stale = bool(handle.read().strip())
        handle.seek(0)
        handle.truncate()
        holder_info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": self.run_id,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        handle.write(json.dumps(holder_info))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.flush()
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
