"""Preparation in batches: the same answers as one ref at a time, in order, lazily, and through a failing input."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_output import _error_row, _job, _row, _write_rows

from pipeline import manifest_jsonl_blocks
from pipeline.errors import DocumentError, ManifestError
from pipeline.ledger import load_ledger
from pipeline.prepare import BATCH_MAX_WAIT_S, Preparer, Work
from pipeline.sources import DocumentRef, read_manifest


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text_ref(doc_id: str, text: str) -> DocumentRef:
    return DocumentRef(doc_id, f"m.jsonl:{doc_id}", None, text, {})


def _refs_and_ledger(tmp_path: Path) -> tuple[list[DocumentRef], Preparer]:
    """A mix: text done, changed and new; files unchanged and changed; errors recorded and new; an empty text."""
    job = _job()
    docs = tmp_path / "docs"
    docs.mkdir()
    unchanged, changed = docs / "same.txt", docs / "changed.txt"
    unchanged.write_text("Same invoice.", encoding="utf-8")
    changed.write_text("A new contract.", encoding="utf-8")
    same = os.stat(unchanged)
    dup = "m.jsonl line 9: duplicate id 'a': an earlier row has the same id"
    rows = [_row(job, f"t{i}", doc_sha256=_sha(f"text {i}"), source_size=None, source_mtime_ns=None) for i in range(30)]
    rows += [
        _row(job, "same.txt", doc_sha256="sha-old", source_size=same.st_size, source_mtime_ns=same.st_mtime_ns),
        _row(job, "changed.txt", doc_sha256="sha-old", source_size=1, source_mtime_ns=1),
        _error_row(job, "m.jsonl:9", error_type="document_error", error_message=dup),
    ]
    _write_rows(tmp_path / "out", job, rows)
    refs = [_text_ref(f"t{i}", f"text {i}" if i % 4 else f"edited {i}") for i in range(40)]
    refs.insert(7, DocumentRef("same.txt", "same.txt", unchanged, None, {}))
    refs.insert(12, DocumentRef("changed.txt", "changed.txt", changed, None, {}))
    refs.insert(20, _text_ref("blank", "  \n"))
    for position, line, message in ((3, 9, dup), (25, 10, "m.jsonl line 10: missing id")):
        error = DocumentError(message, document_id=None, path=tmp_path / "m.jsonl")
        refs.insert(position, DocumentRef(f"m.jsonl:{line}", f"m.jsonl:{line}", None, None, {}, error))
    return refs, Preparer(job, load_ledger(tmp_path / "out", job))


def _shown(work: Work) -> tuple[str, str | None, str | None, bool]:
    return (work.ref.doc_id, work.sha256, work.error.message if work.error else None, work.truncated)


def test_batches_give_the_work_and_counts_of_one_ref_at_a_time(tmp_path: Path) -> None:
    """works() yields what prepare() gives ref by ref, in the same order, and counts the same skips."""
    refs, batched = _refs_and_ledger(tmp_path)
    one_by_one = Preparer(batched.job, batched.ledger)
    expected = [_shown(work) for ref in refs if (work := one_by_one.prepare(ref)) is not None]
    assert expected == [_shown(work) for work in batched.works(refs)]
    counts = (batched.already_done, batched.errors_unchanged, batched.refs_read)
    assert (one_by_one.already_done, one_by_one.errors_unchanged, len(refs)) == counts
    assert (23, 1) == counts[:2]
    assert ["blank", "changed.txt", "m.jsonl:10"] == sorted({w[0] for w in expected} - {f"t{i}" for i in range(40)})


def test_the_first_document_does_not_wait_for_a_batch(tmp_path: Path) -> None:
    """The first work comes out once its ref is read, before the input is asked for the next one."""
    _, preparer = _refs_and_ledger(tmp_path)
    asked: list[int] = []

    def source() -> Iterator[DocumentRef]:
        for index in range(100):
            asked.append(index)
            yield _text_ref(f"new{index}", f"new text {index}")

    works = preparer.works(source())
    assert "new0" == next(works).ref.doc_id
    assert [0] == asked


def test_a_batch_is_cut_short_when_its_input_is_slow(tmp_path: Path) -> None:
    """A ref read after the batch's wait has run out is prepared before the input is asked for more."""
    _refs_and_ledger(tmp_path)  # the output directory and its ledger
    now = [0.0]
    asked: list[int] = []
    job = _job()
    preparer = Preparer(job, load_ledger(tmp_path / "out", job), clock=lambda: now[0])

    def slow_source() -> Iterator[DocumentRef]:
        for index in range(100):
            asked.append(index)
            if index == 5:
                now[0] += BATCH_MAX_WAIT_S * 2  # a folder listing that takes its time
            yield _text_ref(f"new{index}", f"new text {index}")

    works = preparer.works(slow_source())
    taken = [next(works).ref.doc_id for _ in range(6)]
    assert [f"new{index}" for index in range(6)] == taken
    assert 6 == len(asked)  # batches of 1, 2, then 4 cut after its third ref: nothing read ahead


def test_an_input_failing_midway_has_the_refs_before_it_prepared_first(tmp_path: Path) -> None:
    """The refs read before the input failed come out, then the failure, with the count of refs read."""
    _, preparer = _refs_and_ledger(tmp_path)

    def failing() -> Iterator[DocumentRef]:
        for index in range(5):
            yield _text_ref(f"new{index}", f"new text {index}")
        raise ManifestError("cannot read the Parquet file after row 5", path=tmp_path / "m.parquet")

    taken: list[str] = []
    with pytest.raises(ManifestError, match="after row 5"):
        for work in preparer.works(failing()):
            taken.append(work.ref.doc_id)
    assert ([f"new{index}" for index in range(5)], 5) == (taken, preparer.refs_read)


def test_a_stop_ends_the_work_at_the_next_batch(tmp_path: Path) -> None:
    """Once `stop` is set, no further batch is prepared."""
    _, preparer = _refs_and_ledger(tmp_path)
    stop = threading.Event()
    works = preparer.works((_text_ref(f"new{index}", "text") for index in range(100)), stop=stop)
    assert "new0" == next(works).ref.doc_id
    stop.set()
    assert [] == [work.ref.doc_id for work in works]


def _manifest_and_ledger(tmp_path: Path) -> tuple[Path, Preparer]:
    """A JSONL manifest of 600 rows, most answered already, some changed, new, odd or failing."""
    job = _job()
    lines, rows = [], []
    for i in range(600):
        text = f"text {i}" if i % 7 else f"edited {i}"
        lines.append(json.dumps({"id": f"t{i}", "text": text, "dept": "ops"}))
        if i % 11:
            rows.append(_row(job, f"t{i}", doc_sha256=_sha(f"text {i}"), source_size=None, source_mtime_ns=None))
    lines[40] = json.dumps({"id": "t3", "text": "a duplicate"})
    lines[41] = json.dumps({"id": "blank", "text": " \u3000 "})
    lines[42] = '{"id": "torn", "text": "x'
    lines[43] = json.dumps({"id": "t43", "text": "line\r\nbreak", "dept": "ops"})
    _write_rows(tmp_path / "out", job, rows)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest, Preparer(job, load_ledger(tmp_path / "out", job))


@pytest.mark.parametrize("block_bytes", [256, 1 << 20])
def test_a_manifests_blocks_give_the_work_and_counts_of_one_ref_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    """Inline rows checked without their refs: the same work, order and counts as each ref prepared alone."""
    monkeypatch.setattr(manifest_jsonl_blocks, "FIRST_BLOCK_BYTES", block_bytes)
    manifest, batched = _manifest_and_ledger(tmp_path)
    one_by_one = Preparer(batched.job, batched.ledger)
    expected = [_shown(work) for ref in read_manifest(manifest) if (work := one_by_one.prepare(ref)) is not None]
    assert expected == [_shown(work) for work in batched.works(read_manifest(manifest))]
    counts = (batched.already_done, batched.errors_unchanged, batched.refs_read)
    assert (one_by_one.already_done, one_by_one.errors_unchanged, 600) == counts
    assert 450 < counts[0] < 600


def test_the_skipped_rows_of_a_block_are_counted_only_up_to_the_work_taken(tmp_path: Path) -> None:
    """A consumer that stops after some work (a --limit) has counted the done rows before it, not after."""
    manifest, batched = _manifest_and_ledger(tmp_path)
    works = batched.works(read_manifest(manifest))
    first = next(works)
    assert ("t0", 0) == (first.ref.doc_id, batched.already_done)  # t0: never answered
    second = next(works)
    assert ("t7", 6) == (second.ref.doc_id, batched.already_done)  # t1 to t6 answered; t7 edited
