"""File descriptors for a run: enough of them, and the table sized before the first burst.

A run holds a socket per connection, and with `--offline` the emulator holds the other end of each
in the same process. Two things follow:

- The soft `RLIMIT_NOFILE` (often 1,024) can be below what `--concurrency` needs. It is raised
  toward the hard limit; if even that is too low, the run is refused before any request, instead of
  failing connections mid-run with "Too many open files".
- The kernel grows a process's descriptor table by doubling it, and in a process with threads each
  growth waits for an RCU grace period (10-30 ms on this kind of machine), in the middle of the first
  burst of connections: four such waits at 64, 128, 256 and 512 descriptors held back a 512-wide
  burst by about 70 ms. Taking one descriptor at the highest number needed grows it once, up front,
  on a thread of its own: its one wait overlaps the run's start-up instead of delaying it (while
  the table is being grown, other threads take descriptors below its old size as usual).
"""

from __future__ import annotations

import os
import threading

from .errors import ConfigError

try:  # POSIX only; elsewhere there is nothing to raise and nothing to grow
    import fcntl
    import resource
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    resource = None  # type: ignore[assignment]

__all__ = ["FILES_MARGIN", "descriptors_needed", "reserve_descriptors"]

FILES_MARGIN = 64  # the manifest, journal and part files, pyarrow, the interpreter's own


def descriptors_needed(connections: int, *, offline: bool) -> int:
    """Descriptors a run with this many connections may hold at once."""
    return connections * (2 if offline else 1) + FILES_MARGIN


def reserve_descriptors(needed: int) -> None:
    """Make `needed` descriptors available and grow the table to hold them.

    Raises ConfigError, with the limits unchanged, when the soft limit cannot be raised to `needed`.
    """
    if resource is None or fcntl is None:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        what = f"this run may hold about {needed:,} open files (sockets included), but may open only {soft:,}"
        advice = "Lower --concurrency, or raise the limit before running docpipe"
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise ConfigError(
                f"{what} (`ulimit -n`), and at most {hard:,} (`ulimit -Hn`). {advice}: the hard limit as root, "
                "or `LimitNOFILE=` for a systemd service."
            )
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        except (ValueError, OSError) as exc:  # e.g. above the system's per-process maximum
            raise ConfigError(f"{what}, and raising it failed ({exc}). {advice}.") from None
    threading.Thread(target=_grow_table, args=(needed - 1,), name="docpipe-descriptors", daemon=True).start()


def _grow_table(highest: int) -> None:
    """Take (and give back) the lowest free descriptor at or above `highest`: the table keeps its size."""
    assert fcntl is not None
    try:
        source = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.close(fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, highest))
    except OSError:
        pass
    finally:
        os.close(source)
