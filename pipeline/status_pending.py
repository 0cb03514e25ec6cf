"""What waits in an output directory: journal rows to publish, batches to collect, pieces and uploads left.

Read for `docpipe status` and `docpipe report` without changing anything: the journal is counted,
never recovered; a record that cannot be read becomes a line in `problems`, not a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PipelineError
from .journal import QUARANTINE_DIR, WAL_DIR, read_segment, segment_paths
from .pieces import PIECES_FILE
from .submissions import SubmissionStore
from .uploads import FILES_RECORD

__all__ = ["Pending", "collect_pending", "pending_lines"]


@dataclass(slots=True)
class Pending:
    """What is waiting: journal rows to publish, batches to collect, pieces and uploads left by a run."""

    journal_rows: int = 0
    journal_segments: int = 0
    journal_damaged_lines: int = 0
    journal_quarantined: int = 0  # damaged segments set aside in _wal/quarantine/, kept for a person
    batches: list[dict[str, Any]] = field(default_factory=list)  # {"tag", "batch_id", "state", "requests", "run_id"}
    pieces_documents: int | None = None  # None: no pieces journal
    pieces_answers: int | None = None
    uploads_not_deleted: int | None = None  # None: no uploads record


def _journal(out_dir: Path, pending: Pending, problems: list[str]) -> None:
    """Rows in journal segments whose part is not yet published: counted, nothing recovered."""
    for path in segment_paths(out_dir):
        if (out_dir / f"part-{path.stem}.parquet").exists():
            continue  # published; the next run deletes the segment
        try:
            segment = read_segment(path)
        except OSError as exc:
            problems.append(f"journal segment {WAL_DIR}/{path.name} unreadable: {exc.strerror or exc}")
            continue
        pending.journal_segments += 1
        pending.journal_rows += len(segment.rows)
        pending.journal_damaged_lines += len(segment.damage)
    quarantined = out_dir / WAL_DIR / QUARANTINE_DIR
    pending.journal_quarantined = sum(1 for _ in quarantined.glob("*.jsonl")) if quarantined.is_dir() else 0


def _batches(out_dir: Path, pending: Pending, problems: list[str]) -> None:
    try:
        submissions = SubmissionStore(out_dir).load()
    except PipelineError as exc:
        problems.append(str(exc))
        return
    pending.batches = [
        {"tag": s.tag, "batch_id": s.batch_id, "state": s.state, "requests": s.requests, "run_id": s.run_id}
        for s in submissions
        if s.pending
    ]


def _json_lines(path: Path) -> list[dict[str, Any]] | None:
    """The JSON objects of a JSONL record, unreadable lines (a torn last one) skipped; None when absent."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    lines = []
    for raw in data.splitlines():
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


def _pieces(out_dir: Path, pending: Pending) -> None:
    entries = _json_lines(out_dir / PIECES_FILE)
    if entries is not None:
        pending.pieces_answers = len(entries)
        pending.pieces_documents = len({str(entry.get("doc_id")) for entry in entries})


def _uploads(out_dir: Path, pending: Pending) -> None:
    steps = _json_lines(out_dir / FILES_RECORD)
    if steps is None:
        return
    state: dict[str, str] = {}
    for step in steps:
        if isinstance(step.get("sha256"), str):
            state[step["sha256"]] = str(step.get("state"))
    pending.uploads_not_deleted = sum(1 for value in state.values() if value != "deleted")


def collect_pending(out_dir: Path, problems: list[str]) -> Pending:
    """What waits in the directory: journal rows, batches, pieces and uploads; unreadable records go to `problems`."""
    pending = Pending()
    _journal(out_dir, pending, problems)
    _batches(out_dir, pending, problems)
    _pieces(out_dir, pending)
    _uploads(out_dir, pending)
    return pending


def pending_lines(pending: Pending) -> list[str]:
    lines = []
    if pending.journal_rows or pending.journal_damaged_lines:
        damaged = f", {pending.journal_damaged_lines} damaged lines" if pending.journal_damaged_lines else ""
        lines.append(
            f"  journal: {pending.journal_rows} rows in {pending.journal_segments} segment(s) not yet published"
            f"{damaged} (the next run publishes them)"
        )
    if pending.journal_quarantined:
        lines.append(
            f"  journal: {pending.journal_quarantined} damaged segment(s) kept in {WAL_DIR}/{QUARANTINE_DIR}/ "
            "(their readable rows were published; the run summary names the lines lost)"
        )
    for batch in pending.batches:
        lines.append(
            f"  batch {batch['tag']}  {batch['batch_id'] or '(no batch id yet)'}  {batch['state']}  "
            f"{batch['requests']:,} requests (the next run collects it; `docpipe batches` asks the API)"
        )
    if pending.pieces_answers:
        lines.append(
            f"  pieces: {pending.pieces_answers} answered pieces of {pending.pieces_documents} chunked document(s) "
            "waiting for the rest (the next run asks only the missing pieces)"
        )
    if pending.uploads_not_deleted:
        files = pending.uploads_not_deleted
        lines.append(f"  uploads: {files} file(s) recorded and not deleted (the next run deletes them)")
    return lines or ["  nothing"]
