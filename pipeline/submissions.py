"""The output directory's record of its Message Batches: what was submitted, as which batch, what came of it.

A batch is paid for once it is created, so the record is written *before* the create call and the
batch id right after it; a run killed anywhere in between is picked up by the next one:

    OUT/_batches/<tag>.docs.jsonl     line i: the document of request `<tag>-<i>` (id, source, hash,
                                      size, mtime, truncated, metadata): enough to write its row
    OUT/_batches/<tag>.params.jsonl   line i: the Messages params of request `<tag>-<i>`, to resubmit it
    OUT/_batches/<tag>.json           the submission's state, replaced atomically at each step

States: `submitting` (recorded, create not known to have succeeded) -> `submitted` (batch id known)
-> `collected` (every result written as a row or resubmitted); or `submitting` -> `abandoned` (the
API's batch list shows no batch was created: its documents are free to be sent again).

Every file is written to a temporary name, fsynced and renamed, then the directory is fsynced: a
file is whole or absent. `custom_id`s are `<tag>-<i>`, within the API's `^[a-zA-Z0-9_-]{1,64}$`
whatever the document ids are, and unique across the directory because tags are.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import EnvironmentFailure

__all__ = ["BATCH_DIR", "DocEntry", "Submission", "SubmissionStore", "custom_id", "request_index"]

BATCH_DIR = "_batches"
STATES = ("submitting", "submitted", "collected", "abandoned")
_TAG = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
_CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def custom_id(tag: str, index: int) -> str:
    return f"{tag}-{index}"


def request_index(tag: str, value: str) -> int | None:
    """The request number a `custom_id` of submission `tag` names, or None when it is not one of its ids."""
    prefix = f"{tag}-"
    if not value.startswith(prefix) or not value[len(prefix) :].isdigit():
        return None
    return int(value[len(prefix) :])


@dataclass(frozen=True, slots=True)
class DocEntry:
    """The document behind one request: what its row needs that the answer does not carry."""

    doc_id: str
    source: str
    sha256: str | None
    truncated: bool = False
    size: int | None = None
    mtime_ns: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # manifest columns, dates as ISO 8601 text
    attempts: int = 1  # batches this document has been in, this one included
    spent: dict[str, int] = field(default_factory=dict)  # `TokenUsage` of its earlier answers (a schema retry)
    reserved: float = 0.0  # the worst case this run's --max-cost reserved for it (0: none, or another run's)
    input_kind: str | None = None  # "text" or "pdf" (None in records written before docpipe kept it)
    pages: int | None = None  # a PDF's page count

    @classmethod
    def from_json(cls, value: Any) -> DocEntry:
        """A line of a docs file; TypeError for one docpipe did not write."""
        entry = cls(**value) if isinstance(value, dict) else None
        if entry is None or not _typed(entry, _DOC_TYPES) or not set(entry.spent) <= _USAGE_FIELDS:
            raise TypeError(f"not a document entry: {str(value)[:200]}")
        if not all(type(number) is int for number in entry.spent.values()):
            raise TypeError(f"token counts must be integers: {entry.spent}")
        return entry


_USAGE_FIELDS = frozenset(
    {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"}
)
_OPTIONAL_STR, _OPTIONAL_INT = (str, type(None)), (int, type(None))
_DOC_TYPES: dict[str, Any] = {
    "doc_id": str, "source": str, "sha256": _OPTIONAL_STR, "truncated": bool, "size": _OPTIONAL_INT,
    "mtime_ns": _OPTIONAL_INT, "metadata": dict, "attempts": int, "spent": dict, "reserved": (int, float),
    "input_kind": _OPTIONAL_STR, "pages": _OPTIONAL_INT,
}
_SUBMISSION_TYPES: dict[str, Any] = {
    "tag": str, "state": str, "requests": int, "bytes": int, "recorded_at": (int, float), "run_id": str,
    "batch_id": _OPTIONAL_STR, "round": int, "parent": _OPTIONAL_STR, "counts": dict, "cost_usd": (int, float),
    "note": _OPTIONAL_STR, "adopted": bool, "job_fingerprint": _OPTIONAL_STR,
}


def _typed(value: Any, types: dict[str, Any]) -> bool:
    """Whether each field has its type (a bool is no int here)."""
    for name, kind in types.items():
        field_value = getattr(value, name)
        if isinstance(field_value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else ()):
            return False
        if not isinstance(field_value, kind):
            return False
    return True


@dataclass(slots=True)
class Submission:
    """One batch: its tag, where it stands, and (once collected) what it came to."""

    tag: str
    state: str
    requests: int
    bytes: int
    recorded_at: float  # wall clock (epoch seconds) when recorded, before the create call
    run_id: str
    batch_id: str | None = None
    round: int = 0  # 0 a first submission; n the n-th follow-up of errored or expired requests
    parent: str | None = None  # the submission a follow-up resubmits requests of
    counts: dict[str, int] = field(default_factory=dict)  # by result type, once collected
    cost_usd: float = 0.0  # of the rows written from it
    note: str | None = None  # why it was abandoned or how it was found
    adopted: bool = False  # found in the API's batch list after a lost create: checked when its results are read
    job_fingerprint: str | None = None  # the job its requests were built from: its rows say so

    @property
    def pending(self) -> bool:
        """Created (or maybe created) and not yet collected."""
        return self.state in ("submitting", "submitted")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _durable_write(path: Path, chunks: Iterator[bytes] | list[bytes]) -> int:
    """Write `chunks` to `path` so that it is whole or absent; return the bytes written."""
    temporary = path.with_name(f".{path.name}.tmp")
    written = 0
    with open(temporary, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
            written += len(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)
    return written


class SubmissionStore:
    """`OUT/_batches/`: read and written by the batch executor and `docpipe batches`."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.folder = out_dir / BATCH_DIR

    def _failure(self, exc: OSError, doing: str) -> EnvironmentFailure:
        return EnvironmentFailure.from_os_error(exc, doing=doing, path=self.folder)

    def load(self) -> list[Submission]:
        """Every submission of the directory, oldest first. A state file that cannot be read stops the run."""
        if not self.folder.is_dir():
            return []
        submissions = []
        try:
            for path in sorted(self.folder.glob("*.json")):
                try:
                    value = json.loads(path.read_text(encoding="utf-8"))
                    submission = Submission(**value)
                    if not _typed(submission, _SUBMISSION_TYPES):
                        raise TypeError("a field of the wrong type")
                    if submission.state in ("submitted", "collected") and submission.batch_id is None:
                        raise TypeError(f"state {submission.state!r} without a batch_id")
                    if submission.requests < 1:
                        raise TypeError("no requests")
                    if not all(isinstance(k, str) and type(v) is int for k, v in submission.counts.items()):
                        raise TypeError("counts must be whole numbers by result type")
                except (ValueError, TypeError) as exc:
                    raise EnvironmentFailure(
                        f"the batch record {path} is unreadable ({exc}); it names a batch that may be paid for: "
                        "look at `docpipe batches` and the API's batch list before removing it",
                        path=path,
                    ) from None
                if submission.state not in STATES or not _TAG.match(submission.tag):
                    raise EnvironmentFailure(f"the batch record {path} is not one docpipe wrote", path=path)
                submissions.append(submission)
        except OSError as exc:
            raise self._failure(exc, "read the batch records in") from None
        return sorted(submissions, key=lambda s: (s.recorded_at, s.tag))

    def record(
        self, submission: Submission, docs: list[DocEntry], params: Iterator[bytes] | list[bytes]
    ) -> None:
        """Write a new submission's documents and params, then its state: all before the create call."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lines = [json.dumps(asdict(doc), ensure_ascii=False).encode("utf-8") + b"\n" for doc in docs]
            _durable_write(self.folder / f"{submission.tag}.docs.jsonl", lines)
            _durable_write(self.folder / f"{submission.tag}.params.jsonl", params)
        except OSError as exc:
            raise self._failure(exc, "record a batch before submitting it in") from None
        self.save(submission)

    def save(self, submission: Submission) -> None:
        """Replace the submission's state file atomically."""
        try:
            text = json.dumps(asdict(submission), ensure_ascii=False, indent=1).encode("utf-8")
            _durable_write(self.folder / f"{submission.tag}.json", [text])
        except OSError as exc:
            raise self._failure(exc, "record a batch's state in") from None

    def docs(self, submission: Submission) -> list[DocEntry]:
        """The documents of a submission, request i at index i."""
        path = self.folder / f"{submission.tag}.docs.jsonl"
        try:
            with open(path, encoding="utf-8") as handle:
                docs = [DocEntry.from_json(json.loads(line)) for line in handle]
        except OSError as exc:
            raise self._failure(exc, "read a batch's documents in") from None
        except (ValueError, TypeError) as exc:
            raise EnvironmentFailure(f"the batch record {path} is damaged ({exc})", path=path) from None
        if len(docs) != submission.requests:  # documents not listed would be sent, and paid, a second time
            raise EnvironmentFailure(
                f"the batch record {path} lists {len(docs)} documents where its batch holds {submission.requests}; "
                "restore it from a backup, or look at `docpipe batches` before removing the batch's records",
                path=path,
            )
        return docs

    def params(self, submission: Submission, wanted: set[int]) -> Iterator[tuple[int, bytes]]:
        """The params lines (without the newline) of the requests numbered in `wanted`, in order.

        A params file that is gone yields nothing: the caller accounts for the requests it lacks.
        """
        path = self.folder / f"{submission.tag}.params.jsonl"
        if not path.exists():
            return
        try:
            with open(path, "rb") as handle:
                for index, line in enumerate(handle):
                    if index in wanted:
                        yield index, line.rstrip(b"\n")
        except OSError as exc:
            raise self._failure(exc, "read a batch's requests in") from None

    def discard_params(self, submission: Submission) -> None:
        """A collected submission's params are not needed again: the largest file goes."""
        with contextlib.suppress(OSError):  # a file left behind costs disk, never correctness
            (self.folder / f"{submission.tag}.params.jsonl").unlink(missing_ok=True)


def valid_custom_id(value: str) -> bool:
    return bool(_CUSTOM_ID.match(value))
