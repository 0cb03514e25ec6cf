"""The done ledger as Arrow columns: batch answers, compact hashes, the latest row, colliding keys."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from test_output import _error_row, _job, _row, _write_rows

from pipeline import ledger
from pipeline.ledger import load_ledger


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_batch_answers_are_the_single_answers(tmp_path: Path) -> None:
    """are_done and unchanged_files answer each document as is_done and unchanged_file do, in order."""
    job = _job()
    rows = [_row(job, f"d{i}", doc_sha256=_sha(f"text {i}"), source_size=i, source_mtime_ns=10 * i) for i in range(20)]
    rows.append(_row(job, "no-stat", doc_sha256=_sha("x"), source_size=None, source_mtime_ns=None))
    _write_rows(tmp_path, job, rows)
    done = load_ledger(tmp_path, job)
    ids = [f"d{i}" for i in range(25)] + ["no-stat", "d3", "d3"]
    hashes = [_sha(f"text {i}") if i % 3 else _sha("changed") for i in range(25)] + [_sha("x"), _sha("text 3"), "d3"]
    sizes = [i if i % 4 else i + 1 for i in range(25)] + [0, 3, 3]
    mtimes = [10 * i for i in range(25)] + [0, 30, 31]
    single_done = [done.is_done(i, h) for i, h in zip(ids, hashes, strict=True)]
    single_same = [done.unchanged_file(i, s, m) for i, s, m in zip(ids, sizes, mtimes, strict=True)]
    assert single_done == done.are_done(ids, hashes)
    assert single_same == done.unchanged_files(ids, sizes, mtimes)
    assert 15 == sum(single_done)
    assert [True, False] == single_same[-2:]


@pytest.mark.parametrize("other_hash", [None, "sha-not-a-digest", "ABC" + "0" * 61])
def test_hashes_keep_their_exact_text_whatever_their_form(tmp_path: Path, other_hash: str | None) -> None:
    """Digests are kept as bytes, but a hash is matched by its exact text; one of another form keeps all as text."""
    job = _job()
    rows = [_row(job, "a", doc_sha256=_sha("a"))]
    _write_rows(tmp_path, job, rows, run_id="run-1")
    if other_hash is not None:
        _write_rows(tmp_path, job, [_row(job, "b", doc_sha256=other_hash)], run_id="run-2")
    done = load_ledger(tmp_path, job)
    assert (True, False) == (done.is_done("a", _sha("a")), done.is_done("a", _sha("a").upper()))
    assert [True, False] == done.are_done(["a", "a"], [_sha("a"), _sha("a").upper()])
    expected = {"a": (_sha("a"), 10, 1_000)} | ({"b": (other_hash, 10, 1_000)} if other_hash else {})
    assert expected == done.done
    if other_hash is not None:
        assert done.is_done("b", other_hash)
        assert [True] == done.are_done(["b"] * 9, [other_hash] * 9)[:1]


def test_the_latest_row_wins_within_one_part(tmp_path: Path) -> None:
    """An error then an answer: done, no error; an answer then an error: still done, and that error remembered."""
    job = _job()
    rows = [
        _error_row(job, "fixed", error_type="document_error", error_message="m.jsonl line 1: missing text"),
        _row(job, "fixed"),
        _row(job, "broke"),
        _error_row(job, "broke", error_type="document_error", error_message="m.jsonl line 2: missing text"),
    ]
    _write_rows(tmp_path, job, rows)
    done = load_ledger(tmp_path, job)
    assert ["broke", "fixed"] == sorted(done.done)
    assert {"broke": ("document_error", "m.jsonl line 2: missing text")} == done.errors
    assert not done.same_error("fixed", "document_error", "m.jsonl line 1: missing text")


def test_keys_sharing_a_hash_are_told_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ids of one 64-bit hash: each finds its own row, and an absent id of that hash finds none."""
    monkeypatch.setattr(ledger, "hash", len, raising=False)  # every id of one length collides
    job = _job()
    rows = [_row(job, doc_id, doc_sha256=_sha(doc_id)) for doc_id in ("aa", "bb", "cc", "d")]
    _write_rows(tmp_path, job, rows)
    done = load_ledger(tmp_path, job)
    ids = ["cc", "bb", "aa", "zz", "d", "e"]
    assert [True, True, True, False, True, False] == done.are_done(ids, [_sha(doc_id) for doc_id in ids])
    assert [True, True, True, False, True, False] == [done.is_done(i, _sha(i)) for i in ids]
    assert 4 == len(done)


def test_a_document_answered_twice_under_colliding_hashes_keeps_its_last_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated answers are reduced to the last one per document, also when other ids share their hash."""
    monkeypatch.setattr(ledger, "hash", len, raising=False)
    job = _job()
    _write_rows(tmp_path, job, [_row(job, "aa", doc_sha256="v1"), _row(job, "bb", doc_sha256="w")], run_id="run-1")
    _write_rows(tmp_path, job, [_row(job, "aa", doc_sha256="v2")], run_id="run-2")
    assert {"aa": ("v2", 10, 1_000), "bb": ("w", 10, 1_000)} == load_ledger(tmp_path, job).done


def test_a_ledger_sent_to_another_process_finds_its_documents(tmp_path: Path) -> None:
    """Pickled to a process of another hash seed (a Ray worker), the ledger still finds every document it holds."""
    job = _job()
    ids = [f"doc-{index}" for index in range(20)]
    _write_rows(tmp_path, job, [_row(job, doc_id, doc_sha256=_sha(doc_id)) for doc_id in ids])
    pickled = tmp_path / "ledger.pickle"
    pickled.write_bytes(pickle.dumps(load_ledger(tmp_path, job)))
    code = (
        "import pickle, sys, hashlib; done = pickle.loads(open(sys.argv[1], 'rb').read()); "
        "ids = [f'doc-{i}' for i in range(20)] + ['absent']; "
        "print(sum(done.are_done(ids, [hashlib.sha256(i.encode()).hexdigest() for i in ids])), "
        "sum(done.is_done(i, hashlib.sha256(i.encode()).hexdigest()) for i in ids))"
    )
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        found = subprocess.run([sys.executable, "-c", code, str(pickled)], env=env, capture_output=True, text=True)
        assert "20 20" == found.stdout.strip(), found.stderr


def test_the_ledger_of_a_new_output_imports_no_pandas() -> None:
    """pyarrow imports pandas (about 0.2 s) when it first converts a Python value; a first run's ledger, read
    before the first request, converts none. A fresh interpreter, since this one has pandas loaded already."""
    import subprocess
    import sys

    code = ("import sys; from pipeline.ledger import _empty; _empty(['doc_id', 'seq']); "
            "sys.exit('pandas' in sys.modules)")
    assert 0 == subprocess.run([sys.executable, "-c", code], check=False).returncode
