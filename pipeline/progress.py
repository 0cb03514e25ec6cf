"""Progress of a run: a tqdm bar on a terminal, periodic plain log lines elsewhere (cron)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol

__all__ = ["LogProgress", "NullProgress", "Progress", "Tally", "TqdmProgress", "make_progress"]

DEFAULT_LOG_EVERY_S = 30.0


@dataclass
class Tally:
    """Running totals shown to the user."""

    done: int = 0
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0  # rows that used tokens at a price docpipe does not know: the cost shown is a floor
    in_batches: int = 0  # requests submitted in Message Batches and not yet collected


class Progress(Protocol):
    def update(self, tally: Tally) -> None: ...

    def close(self, tally: Tally) -> None: ...


class NullProgress:
    def update(self, tally: Tally) -> None:
        pass

    def close(self, tally: Tally) -> None:
        pass


def _describe(tally: Tally) -> str:
    batches = f" in_batches={tally.in_batches:,}" if tally.in_batches else ""
    cost = f"${tally.cost_usd:.4f}"
    if tally.unpriced:  # unknown prices: "$?" alone, or the known part and more ("$0.0123+?"); never a $0
        cost = "$?" if tally.cost_usd == 0 else f"{cost}+?"
    return f"ok={tally.ok} err={tally.errors} done_before={tally.skipped}{batches} tok={tally.tokens:,} {cost}"


class TqdmProgress:
    """A bar over this run's documents with errors, tokens and dollars so far; tqdm computes the ETA.

    Documents done by earlier runs are shown in the text (`done_before=`), not on the bar: they take
    no time, and counted as progress they would make the rate, and so the ETA, far too optimistic.
    """

    def __init__(self, total: int | None, *, stream: IO[str] | None = None) -> None:
        self._total = total
        from tqdm import tqdm  # paid by a run on a terminal only

        self._bar = tqdm(total=total, unit="doc", file=stream or sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def update(self, tally: Tally) -> None:
        if self._total is not None:
            self._bar.total = max(0, self._total - tally.skipped)
        self._bar.n = tally.done - tally.skipped
        self._bar.set_postfix_str(_describe(tally), refresh=False)
        self._bar.refresh()

    def close(self, tally: Tally) -> None:
        self.update(tally)
        self._bar.close()


class LogProgress:
    """One plain line every `every_s` seconds: what a cron log wants."""

    def __init__(
        self,
        total: int | None,
        *,
        every_s: float = DEFAULT_LOG_EVERY_S,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.every_s = every_s
        self.stream = stream or sys.stderr  # the stderr of when the run starts, not of when this module loaded
        self._clock = clock
        self._started = clock()
        self._last = self._started

    def _line(self, tally: Tally) -> str:
        elapsed = self._clock() - self._started
        of_total = f"/{self.total}" if self.total is not None else ""
        eta = ""
        processed = tally.done - tally.skipped  # this run's own: documents done before take no time
        if self.total and processed > 0 and tally.done < self.total:
            eta = f" eta={elapsed / processed * (self.total - tally.done):.0f}s"
        return f"docpipe: progress {tally.done}{of_total} docs {_describe(tally)} elapsed={elapsed:.0f}s{eta}"

    def update(self, tally: Tally) -> None:
        now = self._clock()
        if now - self._last >= self.every_s:
            self._last = now
            print(self._line(tally), file=self.stream, flush=True)

    def close(self, tally: Tally) -> None:
        print(self._line(tally), file=self.stream, flush=True)


def make_progress(mode: str, total: int | None, *, log_every_s: float = DEFAULT_LOG_EVERY_S) -> Progress:
    """`auto` picks the bar on a terminal and log lines otherwise; `bar`, `log` and `off` force one."""
    if mode == "off":
        return NullProgress()
    if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
        return TqdmProgress(total)
    return LogProgress(total, every_s=log_every_s)
