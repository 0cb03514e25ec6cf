"""Stopping a run: why (fatal, environment, interrupted), and the SIGINT/SIGTERM handlers that ask for it."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["Stop", "install_signals", "restore_signals"]


class Stop:
    """Why and how the run is stopping: set from signal handlers, workers and the main task."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.reason: str | None = None
        self.signals = 0
        self.tasks: list[asyncio.Task[None]] = []

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.requested.set()

    def on_signal(self) -> None:
        self.signals += 1
        self.request("interrupted")
        if self.signals >= 2:  # a second Ctrl-C: stop now, finished rows are already safe
            for task in self.tasks:
                task.cancel()


def install_signals(loop: asyncio.AbstractEventLoop, stop: Stop) -> dict[int, Any]:
    """The run's own SIGINT/SIGTERM handlers; returns the handlers they replace, to put back after."""
    installed: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return installed
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        try:
            loop.add_signal_handler(signum, stop.on_signal)
            installed[int(signum)] = previous
        except (NotImplementedError, RuntimeError):
            pass
    return installed


def restore_signals(loop: asyncio.AbstractEventLoop, installed: Mapping[int, Any]) -> None:
    """Back to the handlers from before the run (the CLI's: a late signal still exits 130 cleanly)."""
    for signum, previous in installed.items():
        loop.remove_signal_handler(signum)
        if previous is not None:
            signal.signal(signum, previous)
