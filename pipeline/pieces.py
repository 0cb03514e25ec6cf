"""The pieces journal: the answered pieces of chunked documents, kept until their document has its row.

A chunked document takes several requests (its pieces, then one that combines their answers), and a
run may stop between them: a kill, a fatal error, a piece that fails for good. What a piece's
answer cost is paid for by then, so each answer is appended to `OUT/_pieces.jsonl` (a `_` name,
which dataset readers skip) and flushed to disk before the document goes on; the next run asks only
the pieces that have no answer there. An answer counts for the same document only (the same id,
content hash and job fingerprint) and for the same piece of the same cut (its number, the number of
pieces, and the hash of the piece's own content): a document cut otherwise asks its new pieces.

Lines are JSON objects. A torn last line (a kill while appending) is ended before the next append
and ignored when read; any other unreadable line is counted in `damaged` and skipped, its piece
asked again. Once a document's row is written its entries are no longer needed, and `close`
rewrites the file without them, and without those of documents the ledger says are done (a run
killed between a row and its `close`): write to a temporary file, fsync, rename.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .pricing import TokenUsage

__all__ = ["PIECES_FILE", "PieceAnswer", "PieceJournal", "append_line"]

PIECES_FILE = "_pieces.jsonl"
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens")

DocumentKey = tuple[str, str, str]  # doc_id, doc_sha256, job fingerprint


@dataclass(frozen=True, slots=True)
class PieceAnswer:
    """One piece's answer, what it cost, and which request gave it."""

    part: int
    pieces: int
    piece_sha256: str  # of the piece's own content (text, or the bytes of its page range)
    values: dict[str, Any]  # the job's fields as JSON values (dates as ISO text)
    usage: TokenUsage
    cost_usd: float | None
    request_id: str | None
    attempts: int

    def to_json(self, key: DocumentKey) -> dict[str, Any]:
        return {
            "doc_id": key[0], "doc_sha256": key[1], "job_fingerprint": key[2], "part": self.part,
            "pieces": self.pieces, "piece_sha256": self.piece_sha256, "values": self.values,
            "usage": {name: getattr(self.usage, name) for name in _USAGE_FIELDS},
            "cost_usd": self.cost_usd, "request_id": self.request_id, "attempts": self.attempts,
        }  # fmt: skip

    @classmethod
    def from_json(cls, line: dict[str, Any]) -> tuple[DocumentKey, PieceAnswer]:
        """An entry read back; `KeyError`, `TypeError` or `ValueError` for one docpipe did not write."""
        key = (line["doc_id"], line["doc_sha256"], line["job_fingerprint"])
        usage = line["usage"]
        if not all(isinstance(part, str) for part in key) or not isinstance(usage, dict):
            raise TypeError("not a piece entry")
        answer = cls(
            part=int(line["part"]), pieces=int(line["pieces"]), piece_sha256=str(line["piece_sha256"]),
            values=dict(line["values"]),
            usage=TokenUsage(**{name: int(usage.get(name, 0)) for name in _USAGE_FIELDS}),
            cost_usd=None if line["cost_usd"] is None else float(line["cost_usd"]),
            request_id=line["request_id"], attempts=int(line["attempts"]),
        )  # fmt: skip
        return key, answer


class PieceJournal:
    """The answered pieces of one output directory (read on first use, appended as pieces are answered)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / PIECES_FILE
        self.damaged = 0  # lines that could not be read (a torn last line is not counted)
        self._answers: dict[DocumentKey, dict[int, PieceAnswer]] | None = None
        self._finished: set[DocumentKey] = set()

    def answered(self, key: DocumentKey, piece_hashes: list[str]) -> dict[int, PieceAnswer]:
        """The pieces of this document already answered, by part (1-based), for the cut whose pieces hash so."""
        if self._answers is None:
            self._answers = self._load()
        return {
            part: answer
            for part, answer in self._answers.get(key, {}).items()
            if answer.pieces == len(piece_hashes) and 0 < part <= len(piece_hashes)
            and answer.piece_sha256 == piece_hashes[part - 1]
        }

    def record(self, key: DocumentKey, answer: PieceAnswer) -> None:
        """Keep a piece's answer on disk (flushed and fsynced) before the document goes on."""
        if self._answers is None:
            self._answers = self._load()
        line = json.dumps(answer.to_json(key), ensure_ascii=False, default=str) + "\n"
        append_line(self.path, line.encode("utf-8"))
        self._answers.setdefault(key, {})[answer.part] = answer

    def finished(self, key: DocumentKey) -> None:
        """The document has its row: its pieces may go at `close`."""
        self._finished.add(key)

    def close(self, *, stale: Callable[[DocumentKey], bool] | None = None) -> None:
        """Rewrite the journal without the pieces no run will ask for again (nothing to do if there are none).

        Those are the pieces of documents whose row this run wrote (`finished`) and, where `stale` is
        given, of documents it says are done or no longer the job's (a row written by a run killed
        before it closed the journal, another job fingerprint). The pieces of a document edited since
        stay until that document is done under its new content.
        """
        if self._answers is None:
            if stale is None or not self.path.exists():
                return
            self._answers = self._load()
        drop = {key for key in self._answers if key in self._finished or (stale is not None and stale(key))}
        if not drop:
            return
        keep = [
            answer.to_json(key)
            for key, answers in self._answers.items()
            if key not in drop
            for answer in answers.values()
        ]
        for key in drop:
            del self._answers[key]
        self._finished.clear()
        if not keep:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(entry, ensure_ascii=False, default=str) + "\n" for entry in keep)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def _load(self) -> dict[DocumentKey, dict[int, PieceAnswer]]:
        answers: dict[DocumentKey, dict[int, PieceAnswer]] = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return answers
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                key, answer = PieceAnswer.from_json(json.loads(raw))
            except (ValueError, KeyError, TypeError, AttributeError):
                if number < len(lines) or data.endswith(b"\n"):  # not a torn last line
                    self.damaged += 1
                continue
            answers.setdefault(key, {})[answer.part] = answer
        return answers

def append_line(path: Path, line: bytes) -> None:
    """Append one line (flushed and fsynced); a torn last line a kill left is ended first, never glued onto."""
    with open(path, "ab+") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell():
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                line = b"\n" + line
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
