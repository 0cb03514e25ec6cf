"""`docpipe batches OUT`: the Message Batches of an output directory, as recorded and as the API sees them.

The record (`submissions.py`) says what was submitted and what was collected, with its counts and
cost; for a batch not yet collected the API is asked for its live state when a key is at hand.
`--cancel` asks the API to cancel every batch not yet collected: requests already processed keep
their answers, and the next run collects them (the canceled ones become error rows it retries).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .errors import ConfigError, PipelineError
from .submissions import Submission, SubmissionStore
from .transport import BatchInfo, TransportFactory, TransportOptions, batches_of

__all__ = ["report_batches"]


def _counts(counts: dict[str, int]) -> str:
    shown = [f"{kind} {number:,}" for kind, number in counts.items() if number]
    return ", ".join(shown) or "-"


def _line(submission: Submission, live: BatchInfo | str | None) -> str:
    state = submission.state
    counts = _counts(submission.counts)
    if isinstance(live, BatchInfo):
        state = f"{submission.state}; API: {live.processing_status}"
        counts = _counts(dict(live.counts))
    elif isinstance(live, str):
        state = f"{submission.state}; API: {live}"
    cost = f"${submission.cost_usd:.4f}" if submission.state == "collected" else "-"
    if submission.adopted:
        state += " (adopted from the batch list after a lost create)"
    follow = f", follow-up #{submission.round} of {submission.parent}" if submission.parent else ""
    return (
        f"  {submission.tag}  {submission.batch_id or '(no batch)'}  {state}  {submission.requests:,} requests{follow}"
        f"  results: {counts}  cost: {cost}"
        + (f"\n      {submission.note}" if submission.note else "")
    )


async def _ask(submissions: list[Submission], transport: TransportFactory, cancel: bool) -> dict[str, BatchInfo | str]:
    opened = transport(TransportOptions(max_connections=4))
    live: dict[str, BatchInfo | str] = {}
    try:
        api = batches_of(opened)
        for submission in submissions:
            if submission.batch_id is None:
                continue
            if cancel and submission.adopted:  # taken from the batch list after a lost create: maybe not ours
                live[submission.tag] = (
                    "not canceled: adopted from the batch list after a lost create, and not yet known to be this "
                    "directory's (the next run checks it against its results)"
                )
                continue
            try:
                live[submission.tag] = await (api.cancel if cancel else api.retrieve)(submission.batch_id)
            except PipelineError as exc:
                live[submission.tag] = f"not reachable ({exc})"
    finally:
        await opened.aclose()
    return live


def report_batches(out_dir: Path, *, transport: TransportFactory | None, cancel: bool = False) -> str:
    """The text `docpipe batches` prints; `transport` None reads the record alone."""
    if not out_dir.is_dir():
        raise ConfigError(f"no output directory at {out_dir}")
    submissions = SubmissionStore(out_dir).load()
    if not submissions:
        return f"docpipe: no message batches in {out_dir} (a run with --mode batch creates them)"
    pending = [s for s in submissions if s.pending]
    if cancel and transport is None:
        raise ConfigError("--cancel needs the API: set ANTHROPIC_API_KEY")
    live = asyncio.run(_ask(pending, transport, cancel)) if transport is not None and pending else {}
    lines = [f"docpipe: {len(submissions)} message batches in {out_dir}, oldest first"]
    lines += [_line(s, live.get(s.tag)) for s in submissions]
    cost = sum(s.cost_usd for s in submissions)
    lines.append(f"  collected cost: ${cost:.4f}; not yet collected: {len(pending)}")
    if pending and transport is None:
        lines.append("  (set ANTHROPIC_API_KEY to see the API's live state of the batches not yet collected)")
    asked = sum(1 for s in pending if s.batch_id is not None and not s.adopted)
    if cancel and asked:
        lines.append(f"  asked the API to cancel {asked} batch(es): the next run collects what they answered")
    elif pending:
        lines.append("  the next `docpipe run` with --mode batch on this directory collects them")
    return "\n".join(lines)
