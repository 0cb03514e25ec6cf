"""Documents in: folder walks, manifests in three formats, row-level errors and bounded memory."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import manifest_csv, manifest_jsonl_blocks, sources
from pipeline.batches import DocumentBatch
from pipeline.errors import ConfigError, DocumentError, ExtractionError, ManifestError
from pipeline.manifest_jsonl_blocks import PYTHON_WHITESPACE
from pipeline.sources import (
    MANIFEST_SUFFIXES,
    DocumentRef,
    count_documents,
    count_non_blank_lines,
    manifest_metadata_columns,
    open_source,
    read_manifest,
    walk_folder,
)

SKIP_AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root can read files whatever their permissions")


def make_tree(root: Path, files: list[str]) -> Path:
    """Create `files` (relative POSIX paths) under root, each holding its own name."""
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name, encoding="utf-8")
    return root


def ids(refs: Iterator[DocumentRef]) -> list[str]:
    return [ref.doc_id for ref in refs]


def errors(refs: Iterator[DocumentRef]) -> list[tuple[str, str | None]]:
    """(doc_id, error message or None) for every ref."""
    return [(ref.doc_id, None if ref.error is None else str(ref.error)) for ref in refs]


def write_jsonl(path: Path, rows: list[dict[str, Any] | str]) -> Path:
    """A JSONL file: dicts are dumped, strings written as they are (to make broken lines)."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- folders ---------------------------------------------------------------------------------------


def test_walk_recursive_sorted(tmp_path: Path) -> None:
    """A folder is walked depth first in sorted order; ids and sources are relative POSIX paths."""
    make_tree(tmp_path, ["z.txt", "b/2.txt", "a.txt", "b/1.md", "b/c/deep.json", "aa/x.csv"])
    refs = list(walk_folder(tmp_path))
    assert ids(iter(refs)) == ["a.txt", "aa/x.csv", "b/1.md", "b/2.txt", "b/c/deep.json", "z.txt"]
    first = refs[2]
    assert DocumentRef("b/1.md", "b/1.md", tmp_path / "b" / "1.md", None, {}) == first
    assert first.path is not None and first.path.is_absolute()


def test_walk_skips_hidden(tmp_path: Path) -> None:
    """Hidden files and everything under hidden folders are skipped."""
    make_tree(tmp_path, ["keep.txt", ".secret.txt", ".git/config.txt", "sub/.hidden.md", "sub/ok.md"])
    assert ids(walk_folder(tmp_path)) == ["keep.txt", "sub/ok.md"]


def test_walk_skips_unsupported_types_unless_included(tmp_path: Path) -> None:
    """Without --include only supported types are taken; an included unsupported file is yielded (to fail visibly)."""
    make_tree(tmp_path, ["photo.jpeg", "notes.txt", "Makefile", "manifest.jsonl"])
    assert ["notes.txt"] == ids(walk_folder(tmp_path))
    assert ["photo.jpeg"] == ids(walk_folder(tmp_path, include=["*.jpeg"]))


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (["*.pdf"], [], ["a.pdf", "docs/b.pdf", "docs/old/c.pdf"]),
        (["**/*.pdf"], [], ["a.pdf", "docs/b.pdf", "docs/old/c.pdf"]),
        (["docs/*.pdf"], [], ["docs/b.pdf"]),
        (["docs/**/*.pdf"], [], ["docs/b.pdf", "docs/old/c.pdf"]),
        (["docs/**"], [], ["docs/b.pdf", "docs/notes.txt", "docs/old/c.pdf"]),
        (["*.pdf", "*.txt"], ["docs/old/**"], ["a.pdf", "docs/b.pdf", "docs/notes.txt", "readme.txt"]),
        ([], ["*.pdf"], ["docs/notes.txt", "readme.txt"]),
        ([], ["old"], ["a.pdf", "docs/b.pdf", "docs/notes.txt", "readme.txt"]),
        ([], ["docs"], ["a.pdf", "readme.txt"]),
        (["[ab].pdf"], [], ["a.pdf", "docs/b.pdf"]),
        (["?.pdf"], ["[!a]*"], ["a.pdf"]),
        (["readme.TXT"], [], []),
    ],
)
def test_walk_include_exclude(tmp_path: Path, include: list[str], exclude: list[str], expected: list[str]) -> None:
    """Globs match the relative path or the name; `**/` spans folders; excluded folders are pruned."""
    make_tree(tmp_path, ["a.pdf", "readme.txt", "docs/b.pdf", "docs/notes.txt", "docs/old/c.pdf"])
    assert expected == ids(walk_folder(tmp_path, include=include, exclude=exclude))


def test_walk_single_string_pattern(tmp_path: Path) -> None:
    """A lone string pattern is one glob, not a sequence of one-character globs."""
    make_tree(tmp_path, ["a.pdf", "b.txt"])
    assert ids(walk_folder(tmp_path, include="*.pdf")) == ["a.pdf"]


def test_walk_is_lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first document comes before later folders are listed: the tree is never listed whole."""
    make_tree(tmp_path, ["a/1.txt", "b/2.txt", "c/3.txt"])
    scanned: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path: str) -> Any:
        scanned.append(Path(path).name)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    walk = walk_folder(tmp_path)
    assert next(walk).doc_id == "a/1.txt"
    assert [tmp_path.name, "a"] == scanned


def test_walk_symlinked_file_inside_root(tmp_path: Path) -> None:
    """A symlink to a file inside the root is yielded under the link's path, reading the target."""
    make_tree(tmp_path, ["real/data.txt"])
    (tmp_path / "link.txt").symlink_to(tmp_path / "real" / "data.txt")
    refs = {ref.doc_id: ref for ref in walk_folder(tmp_path)}
    assert sorted(refs) == ["link.txt", "real/data.txt"]
    assert (tmp_path / "real" / "data.txt", None) == (refs["link.txt"].path, refs["link.txt"].error)


def test_walk_symlinked_folder_walked_once(tmp_path: Path) -> None:
    """A link to a folder the walk reaches anyway adds nothing; a link to a hidden folder is entered once."""
    make_tree(tmp_path, ["b/x.txt", ".stash/y.txt"])
    (tmp_path / "a-link").symlink_to(tmp_path / "b", target_is_directory=True)
    (tmp_path / "s1").symlink_to(tmp_path / ".stash", target_is_directory=True)
    (tmp_path / "s2").symlink_to(tmp_path / ".stash", target_is_directory=True)
    assert ids(walk_folder(tmp_path)) == ["b/x.txt", "s1/y.txt"]


def test_walk_symlink_to_ancestor_does_not_recurse(tmp_path: Path) -> None:
    """A link back to an enclosing folder is not followed, so the walk ends."""
    make_tree(tmp_path, ["sub/f.txt"])
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    assert errors(walk_folder(tmp_path)) == [("sub/f.txt", None)]


@pytest.mark.parametrize("target_is_directory", [False, True])
def test_walk_symlink_outside_root(tmp_path: Path, target_is_directory: bool) -> None:
    """A symlink leaving the root becomes an error ref, not a document."""
    outside = tmp_path / "outside"
    make_tree(outside, ["secret.txt"])
    root = make_tree(tmp_path / "root", ["ok.txt"])
    target = outside if target_is_directory else outside / "secret.txt"
    (root / "escape").symlink_to(target)
    refs = list(walk_folder(root))
    assert ids(iter(refs)) == ["escape", "ok.txt"]
    error = refs[0].error
    assert isinstance(error, ExtractionError)
    assert f"symlink points outside the input folder: escape -> {target}" == str(error)
    assert (refs[0].path, refs[0].text, error.document_id) == (None, None, "escape")


def test_walk_broken_symlink(tmp_path: Path) -> None:
    """A dangling symlink becomes an error ref naming its target."""
    make_tree(tmp_path, ["ok.txt"])
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    expected = [
        ("dangling.txt", f"broken symlink: dangling.txt points to {tmp_path / 'nowhere.txt'}, which does not exist"),
        ("ok.txt", None),
    ]
    assert expected == errors(walk_folder(tmp_path))


def test_walk_symlink_loop(tmp_path: Path) -> None:
    """Symlinks that resolve to each other, or to themselves, become error refs; the walk ends."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "self").symlink_to(tmp_path / "self")
    expected = [
        ("a", "symlink loop: a leads back to itself"),
        ("b", "symlink loop: b leads back to itself"),
        ("self", "symlink loop: self leads back to itself"),
    ]
    assert expected == errors(walk_folder(tmp_path))


def test_walk_filters_apply_to_symlink_errors(tmp_path: Path) -> None:
    """An excluded broken symlink is not reported."""
    make_tree(tmp_path, ["ok.txt"])
    (tmp_path / "dangling.tmp").symlink_to(tmp_path / "nowhere")
    assert ids(walk_folder(tmp_path, exclude=["*.tmp"])) == ["ok.txt"]


@SKIP_AS_ROOT
def test_walk_unreadable_folder(tmp_path: Path) -> None:
    """A folder that cannot be listed becomes an error ref; the rest of the walk goes on."""
    make_tree(tmp_path, ["locked/x.txt", "z.txt"])
    (tmp_path / "locked").chmod(0)
    try:
        assert errors(walk_folder(tmp_path)) == [
            ("locked", "cannot read folder locked: permission denied"),
            ("z.txt", None),
        ]
    finally:
        (tmp_path / "locked").chmod(0o700)


@pytest.mark.parametrize("name", ["missing", "file.txt"])
def test_walk_root_must_be_folder(tmp_path: Path, name: str) -> None:
    """Walking something that is not a folder is a configuration error, raised when iteration starts."""
    make_tree(tmp_path, ["file.txt"])
    walk = walk_folder(tmp_path / name)
    with pytest.raises(ConfigError):
        next(walk)


# -- manifests: the happy paths --------------------------------------------------------------------


def test_jsonl_manifest(tmp_path: Path) -> None:
    """A JSONL manifest yields file and inline documents, metadata typed by first value."""
    make_tree(tmp_path, ["docs/a.txt"])
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"id": "d1", "path": "docs/a.txt", "priority": 1, "score": 0.5, "vip": True, "tags": ["x"], "note": None},
            "",
            {"id": 2, "text": "Inline\r\ntext", "priority": 2, "score": 3, "vip": False, "note": "later"},
        ],
    )
    refs = list(read_manifest(manifest))
    meta1 = {"priority": 1, "score": 0.5, "vip": True, "tags": '["x"]', "note": None}
    meta2 = {"priority": 2, "score": 3.0, "vip": False, "tags": None, "note": "later"}
    assert [
        DocumentRef("d1", "docs/a.txt", tmp_path / "docs" / "a.txt", None, meta1),
        DocumentRef("2", "m.jsonl:3", None, "Inline\ntext", meta2),
    ] == refs
    assert isinstance(refs[1].metadata["score"], float)
    expected_columns = {"priority": "int64", "score": "float64", "vip": "bool", "tags": "string", "note": "string"}
    assert expected_columns == manifest_metadata_columns(manifest)


def test_ndjson_suffix(tmp_path: Path) -> None:
    """.ndjson is read as JSONL."""
    manifest = write_jsonl(tmp_path / "m.ndjson", [{"id": "a", "text": "hi"}])
    assert ids(read_manifest(manifest)) == ["a"]
    assert {".jsonl", ".ndjson", ".csv", ".parquet"} == MANIFEST_SUFFIXES


def test_jsonl_column_type_set_by_first_non_null(tmp_path: Path) -> None:
    """A column null in the first row takes the type of its first value, in both the schema and the rows."""
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"id": "a", "text": "x", "priority": None},
            {"id": "b", "text": "x", "priority": 5},
            {"id": "c", "text": "x", "priority": "high"},
        ],
    )
    assert manifest_metadata_columns(manifest) == {"priority": "int64"}
    assert errors(read_manifest(manifest)) == [
        ("a", None),
        ("b", None),
        ("c", "m.jsonl line 3: column 'priority' should be integer like earlier rows, got string"),
    ]


def test_csv_manifest(tmp_path: Path) -> None:
    """A CSV manifest yields string metadata (empty cells None); line numbers count the header as 1."""
    make_tree(tmp_path, ["docs/a.txt"])
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        '\ufeffid,path,text,dept,priority\nd1,docs/a.txt,,finance,1\nd2,,"multi\nline",,2\n\nd3,,third,ops,\n',
        encoding="utf-8",
    )
    expected = [
        DocumentRef("d1", "docs/a.txt", tmp_path / "docs" / "a.txt", None, {"dept": "finance", "priority": "1"}),
        DocumentRef("d2", "m.csv:3", None, "multi\nline", {"dept": None, "priority": "2"}),
        DocumentRef("d3", "m.csv:6", None, "third", {"dept": "ops", "priority": None}),
    ]
    assert expected == list(read_manifest(manifest))
    assert manifest_metadata_columns(manifest) == {"dept": "string", "priority": "string"}


def test_csv_inline_text_longer_than_the_csv_modules_default_field_limit(tmp_path: Path) -> None:
    """An inline document over 128 KiB is a document (too_long decides its fate), not a malformed row."""
    default = csv.field_size_limit(131_072)  # the csv module's default, whatever ran before
    try:
        long_text = "word " * 60_000
        manifest = tmp_path / "m.csv"
        manifest.write_text(f'id,text\nbig,"{long_text}"\nsmall,short\n', encoding="utf-8")
        refs = list(read_manifest(manifest))
    finally:
        csv.field_size_limit(default)
    assert [("big", long_text, None), ("small", "short", None)] == [(r.doc_id, r.text, r.error) for r in refs]


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_csv_manifest_other_delimiters(tmp_path: Path, delimiter: str) -> None:
    """Semicolon and tab separated manifests are recognised from their header."""
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id{delimiter}text{delimiter}dept\na{delimiter}hello, world{delimiter}x\n", encoding="utf-8")
    assert [DocumentRef("a", "m.csv:2", None, "hello, world", {"dept": "x"})] == list(read_manifest(manifest))


def test_parquet_manifest(tmp_path: Path) -> None:
    """A Parquet manifest keeps its types; types without a metadata kind become strings."""
    make_tree(tmp_path, ["a.txt"])
    table = pa.table(
        {
            "id": pa.array(["p1", "p2"]),
            "path": pa.array(["a.txt", None]),
            "text": pa.array([None, "inline"]),
            "priority": pa.array([1, None], type=pa.int32()),
            "score": pa.array([0.5, 2.0], type=pa.float32()),
            "vip": pa.array([True, False]),
            "received": pa.array([date(2026, 10, 13), None]),
            "dept": pa.array(["ops", "legal"]),
        }
    )
    manifest = tmp_path / "m.parquet"
    pq.write_table(table, manifest)
    meta1 = {"priority": 1, "score": 0.5, "vip": True, "received": "2026-10-13", "dept": "ops"}
    meta2 = {"priority": None, "score": 2.0, "vip": False, "received": None, "dept": "legal"}
    assert [
        DocumentRef("p1", "a.txt", tmp_path / "a.txt", None, meta1),
        DocumentRef("p2", "m.parquet:2", None, "inline", meta2),
    ] == list(read_manifest(manifest))
    expected = {"priority": "int64", "score": "float64", "vip": "bool", "received": "string", "dept": "string"}
    assert expected == manifest_metadata_columns(manifest)


def test_manifest_absolute_path_inside_folder(tmp_path: Path) -> None:
    """An absolute path inside the manifest's folder is accepted and shown relative."""
    make_tree(tmp_path, ["sub/a.txt"])
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "path": str(tmp_path / "sub" / "a.txt")}])
    ref = next(read_manifest(manifest))
    assert ("sub/a.txt", tmp_path / "sub" / "a.txt", None) == (ref.source, ref.path, ref.error)


def test_manifest_paths_relative_to_manifest_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths are resolved from the manifest's folder, not the working directory."""
    make_tree(tmp_path, ["data/docs/a.txt"])
    manifest = write_jsonl(tmp_path / "data" / "m.jsonl", [{"id": "a", "path": "./docs/../docs/a.txt"}])
    monkeypatch.chdir(tmp_path)
    ref = next(read_manifest(Path("data/m.jsonl")))
    assert ("docs/a.txt", manifest.parent / "docs" / "a.txt") == (ref.source, ref.path)


# -- manifests: row-level errors -------------------------------------------------------------------


def test_jsonl_row_errors(tmp_path: Path) -> None:
    """Every row problem becomes an error ref naming the line; the good rows still come through."""
    make_tree(tmp_path, ["m/ok.txt", "outside.txt"])
    (tmp_path / "m" / "link.txt").symlink_to(tmp_path / "outside.txt")
    manifest = write_jsonl(
        tmp_path / "m" / "m.jsonl",
        [
            {"id": "good1", "path": "ok.txt", "priority": 1, "score": 1.5},  # 1
            '{"id": "broken", ',  # 2
            "[1, 2]",  # 3
            {"path": "ok.txt"},  # 4
            {"id": 1.5, "text": "x"},  # 5
            {"id": True, "text": "x"},  # 6
            {"id": "good1", "text": "x"},  # 7
            {"id": "both", "path": "ok.txt", "text": "x"},  # 8
            {"id": "neither"},  # 9
            {"id": "missing", "path": "nope.txt"},  # 10
            {"id": "dotdot", "path": "../outside.txt"},  # 11
            {"id": "absolute", "path": str(tmp_path / "outside.txt")},  # 12
            {"id": "symlink", "path": "link.txt"},  # 13
            {"id": "typed", "text": "x", "priority": "high"},  # 14
            {"id": "extra", "text": "x", "surprise": 1},  # 15
            {"id": "path-type", "path": 7},  # 16
            {"id": "good2", "text": "fine", "priority": 2, "score": 2},  # 17
            {"id": "", "text": "x"},  # 18
            {"id": "huge", "text": "x", "priority": 2**70},  # 19
            {"id": "nul", "path": "a\u0000b.txt"},  # 20
        ],
    )
    expected = [
        ("good1", None),
        ("m.jsonl:2", "m.jsonl line 2: malformed JSON: Expecting property name enclosed in double quotes (column 18)"),
        ("m.jsonl:3", "m.jsonl line 3: not a JSON object (got array)"),
        ("m.jsonl:4", "m.jsonl line 4: missing id"),
        ("m.jsonl:5", "m.jsonl line 5: id must be a string, got float"),
        ("m.jsonl:6", "m.jsonl line 6: id must be a string, got boolean"),
        ("m.jsonl:7", "m.jsonl line 7: duplicate id 'good1': an earlier row has the same id"),
        ("both", "m.jsonl line 8: has both path and text; give exactly one"),
        ("neither", "m.jsonl line 9: has neither path nor text; give exactly one"),
        ("missing", "m.jsonl line 10: file not found: nope.txt"),
        ("dotdot", "m.jsonl line 11: path escapes the manifest folder: ../outside.txt"),
        ("absolute", f"m.jsonl line 12: path escapes the manifest folder: {tmp_path / 'outside.txt'}"),
        ("symlink", "m.jsonl line 13: path escapes the manifest folder: link.txt"),
        ("typed", "m.jsonl line 14: column 'priority' should be integer like earlier rows, got string"),
        ("extra", "m.jsonl line 15: column 'surprise' is not in the manifest's first row"),
        ("path-type", "m.jsonl line 16: path must be a string, got integer"),
        ("good2", None),
        ("m.jsonl:18", "m.jsonl line 18: missing id"),
        ("huge", f"m.jsonl line 19: column 'priority': {2**70} does not fit a 64-bit integer"),
        ("nul", "m.jsonl line 20: path contains a NUL character"),
        ("m.jsonl:21", "m.jsonl line 21: not valid UTF-8; save the manifest as UTF-8"),
    ]
    with open(manifest, "ab") as handle:
        handle.write(b'{"id": "bad-utf8", "text": "caf\xe9"}\n')  # 21: Latin-1, not UTF-8
    refs = list(read_manifest(manifest))
    assert expected == errors(iter(refs))
    assert all(ref.path is None and ref.text is None for ref in refs if ref.error is not None)
    assert refs[16].metadata == {"priority": 2, "score": 2.0}
    assert (refs[9].source, refs[4].source) == ("nope.txt", "m.jsonl:5")


@pytest.mark.parametrize(
    ("reason", "error_type"),
    [("file not found", ExtractionError), ("path escapes", ExtractionError), ("duplicate id", DocumentError)],
)
def test_row_error_types(tmp_path: Path, reason: str, error_type: type[DocumentError]) -> None:
    """File problems are ExtractionErrors (with the document's path); row problems are DocumentErrors."""
    make_tree(tmp_path, ["outside.txt"])
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"id": "a", "text": "x"},
            {"id": "a", "text": "x"},
            {"id": "b", "path": "gone.txt"},
            {"id": "c", "path": "../x.txt"},
        ],
    )
    error = next(ref.error for ref in read_manifest(manifest) if ref.error is not None and reason in str(ref.error))
    assert type(error) is error_type
    assert error.document_id in ("a", "b", "c")


def test_csv_row_errors(tmp_path: Path) -> None:
    """CSV rows with the wrong field count, a missing or duplicate id, or a missing file are error refs."""
    make_tree(tmp_path, ["a.txt"])
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "id,path,text,dept\n"
        "a,a.txt,,x\n"  # 2
        "b,a.txt,,x,extra\n"  # 3
        "c,a.txt\n"  # 4
        ",,hello,x\n"  # 5
        "a,,dup,x\n"  # 6
        "d,gone.txt,,x\n"  # 7
        'e,,"quoted\nnewline",x\n'  # 8-9
        "f,../a.txt,,x\n",  # 10
        encoding="utf-8",
    )
    expected = [
        ("a", None),
        ("m.csv:3", "m.csv line 3: has 5 fields, the header has 4 (id 'b')"),
        ("m.csv:4", "m.csv line 4: has 2 fields, the header has 4 (id 'c')"),
        ("m.csv:5", "m.csv line 5: missing id"),
        ("m.csv:6", "m.csv line 6: duplicate id 'a': an earlier row has the same id"),
        ("d", "m.csv line 7: file not found: gone.txt"),
        ("e", None),
        ("f", "m.csv line 10: path escapes the manifest folder: ../a.txt"),
    ]
    assert expected == errors(read_manifest(manifest))


def test_csv_malformed_row_does_not_stop_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row the csv module rejects (a field over its size limit) is an error ref; later rows still come."""
    monkeypatch.setattr(manifest_csv, "CSV_FIELD_LIMIT", 100_000)  # the real limit (2 GiB) is too big to write
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,text\na,x\nb," + "y" * 200_000 + "\nc,fine\n", encoding="utf-8")
    default = csv.field_size_limit()
    try:
        result = errors(read_manifest(manifest))
    finally:
        csv.field_size_limit(default)
    assert [doc_id for doc_id, _ in result] == ["a", "m.csv:3", "c"]
    assert (result[1][1] or "").startswith("m.csv line 3: malformed CSV row:")


def test_csv_reading_leaves_the_process_field_size_limit_alone(tmp_path: Path) -> None:
    """The csv module's limit is process-wide: reading a manifest with a long field leaves it as it was."""
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'id,text\nbig,"{"word " * 60_000}"\n', encoding="utf-8")
    default = csv.field_size_limit(131_072)
    try:
        refs = iter(read_manifest(manifest))
        first = next(refs)
        during = csv.field_size_limit()  # while the reader is suspended between rows
        rest = list(refs)
        after = csv.field_size_limit()
    finally:
        csv.field_size_limit(default)
    assert ("big", [], 131_072, 131_072) == (first.doc_id, rest, during, after)


def test_parquet_row_errors(tmp_path: Path) -> None:
    """Parquet row problems name the row number; an integer id column is accepted as strings."""
    table = pa.table({"id": pa.array([1, 2, 1, None]), "text": pa.array(["a", None, "c", "d"])})
    manifest = tmp_path / "m.parquet"
    pq.write_table(table, manifest)
    expected = [
        ("1", None),
        ("2", "m.parquet row 2: has neither path nor text; give exactly one"),
        ("m.parquet:3", "m.parquet row 3: duplicate id '1': an earlier row has the same id"),
        ("m.parquet:4", "m.parquet row 4: missing id"),
    ]
    assert expected == errors(read_manifest(manifest))


# -- manifests: whole-manifest errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "not found; give a folder of documents, a manifest"),
        ("list.txt", "id,text\n", "unsupported manifest type '.txt'"),
        ("m.jsonl", "", "empty manifest"),
        ("m.jsonl", "\n\n  \n", "empty manifest"),
        ("m.jsonl", '{"text": "no id"}\n{"id": "a", "text": "x"}\n', "line 1: the first row has no 'id' field"),
        ("m.jsonl", '{"id": \n', "line 1: the first row sets the manifest's columns but is unreadable"),
        ("m.jsonl", '\n["id"]\n', "line 2: the first row must be a JSON object"),
        ("m.csv", "", "empty manifest"),
        ("m.csv", "id,text\n", "empty manifest: a header but no rows"),
        ("m.csv", "name,text\na,b\n", "line 1: no 'id' column in the header (columns: name, text)"),
        ("m.csv", "id,text,id\na,b,c\n", "column 'id' appears twice in the header"),
        ("m.csv", "id,text,\na,b,\n", "column 3 of the header has no name"),
        ("m.csv", "id,text\na,caf\xe9\n".encode("latin-1"), "not UTF-8 text"),
        ("m.parquet", b"PAR1 this is not parquet", "cannot read the Parquet file"),
    ],
)
def test_manifest_errors(tmp_path: Path, name: str, content: str | bytes | None, message: str) -> None:
    """A manifest that cannot be used at all raises ManifestError when iteration starts."""
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    refs = read_manifest(path)
    with pytest.raises(ManifestError) as caught:
        next(refs)
    assert message in str(caught.value)
    assert path == caught.value.path


@pytest.mark.parametrize(
    "table",
    [
        pa.table({"name": ["a"], "text": ["x"]}),
        pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}),
        pa.Table.from_arrays([pa.array(["a"]), pa.array(["x"]), pa.array([1])], names=["id", "dept", "dept"]),
    ],
    ids=["no-id", "empty", "duplicate-column"],
)
def test_parquet_manifest_errors(tmp_path: Path, table: pa.Table) -> None:
    """A Parquet manifest without an id column, without rows, or with two columns of one name raises ManifestError."""
    path = tmp_path / "m.parquet"
    pq.write_table(table, path)
    with pytest.raises(ManifestError):
        next(read_manifest(path))
    with pytest.raises(ManifestError):
        manifest_metadata_columns(path)


def test_manifest_metadata_columns_errors(tmp_path: Path) -> None:
    """manifest_metadata_columns fails the same way as reading the manifest."""
    path = tmp_path / "m.csv"
    path.write_text("name\nx\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="no 'id' column"):
        manifest_metadata_columns(path)


@SKIP_AS_ROOT
def test_manifest_unreadable(tmp_path: Path) -> None:
    """A manifest without read permission raises ManifestError saying permission denied."""
    path = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "text": "x"}])
    path.chmod(0)
    try:
        with pytest.raises(ManifestError, match="permission denied"):
            next(read_manifest(path))
    finally:
        path.chmod(0o600)


# -- dispatch and counting -------------------------------------------------------------------------


def test_open_source_dispatch(tmp_path: Path) -> None:
    """A folder is walked, a file is read as a manifest, and folder metadata columns are empty."""
    make_tree(tmp_path, ["docs/a.txt"])
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "x", "path": "docs/a.txt", "dept": "ops"}])
    assert ids(open_source(tmp_path / "docs")) == ["a.txt"]
    assert ids(open_source(manifest)) == ["x"]
    assert manifest_metadata_columns(tmp_path / "docs") == {}


@pytest.mark.parametrize("name", ["memo.txt", "Report.DOCX", "page.html", "mail.eml", "rates.xlsx", "data.json"])
def test_one_document_as_input(tmp_path: Path, name: str) -> None:
    """A document file as the input is one ref, its id and source its name, with no metadata and a count of 1."""
    make_tree(tmp_path, [f"in/{name}"])
    document = tmp_path / "in" / name
    expected = [DocumentRef(name, name, document, None, {})]
    assert expected == list(open_source(tmp_path / "in" / ".." / "in" / name))
    assert (1, {}) == (count_documents(document), manifest_metadata_columns(document))


def test_a_csv_input_is_still_a_manifest_and_other_types_are_refused(tmp_path: Path) -> None:
    """`.csv` keeps its meaning as a manifest; a type docpipe does not read is refused, naming those it reads."""
    (tmp_path / "m.csv").write_text("id,text\na,hello\n", encoding="utf-8")
    assert ["a"] == ids(open_source(tmp_path / "m.csv"))
    (tmp_path / "scan.png").write_bytes(b"\x89PNG")
    with pytest.raises(ManifestError, match=r"unsupported manifest type '.png'; .* or one document \(.docx, .eml"):
        next(iter(open_source(tmp_path / "scan.png")))


def test_open_source_filters_only_for_folders(tmp_path: Path) -> None:
    """--include/--exclude with a manifest input is a configuration error."""
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "x", "text": "t"}])
    with pytest.raises(ConfigError, match="apply to a folder input"):
        open_source(manifest, include=["*.txt"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b" ", b"\n", b"\r", b"\t", b"{", b"\x0b", b"\x0c", b"\xe9"]), max_size=60),
    st.integers(1, 70),
)
def test_lines_are_counted_as_a_line_by_line_read_counts_them(pieces: list[bytes], chunk_bytes: int) -> None:
    """Blank and whitespace-only lines, a last line without a break, lines across chunk edges."""
    data = b"".join(pieces)
    expected = sum(1 for line in io.BytesIO(data) if not line.isspace())
    assert count_non_blank_lines(io.BytesIO(data), chunk_bytes) == expected


def test_count_documents(tmp_path: Path) -> None:
    """count_documents matches what open_source yields, for folders and every manifest format; a CSV
    cell holding a line break counts one more (the count reads lines, it does not parse)."""
    make_tree(tmp_path, ["docs/a.txt", "docs/b.pdf", "docs/.hidden"])
    write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "text": "x"}, "", "not json", {"id": "b", "text": "y"}])
    (tmp_path / "m.csv").write_text('id,text\na,"multi\nline"\nb,y\n', encoding="utf-8")
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["x", "y", "z"]}), tmp_path / "m.parquet")
    counts = [
        count_documents(tmp_path / "docs"),
        count_documents(tmp_path / "docs", include=["*.pdf"]),
        count_documents(tmp_path / "m.jsonl"),
        count_documents(tmp_path / "m.csv"),
        count_documents(tmp_path / "m.parquet"),
    ]
    assert counts == [2, 1, 3, 3, 3]
    assert count_documents(tmp_path / "missing.jsonl") is None


# -- streaming ---------------------------------------------------------------------------------------


def test_large_manifest_bounded_memory(tmp_path: Path) -> None:
    """A 200,000-row JSONL manifest streams through in bounded memory and quickly."""
    manifest = tmp_path / "big.jsonl"
    rows = 200_000
    with open(manifest, "w", encoding="utf-8") as handle:
        for start in range(0, rows, 10_000):
            handle.write(
                "".join(
                    f'{{"id": "doc-{index:07d}", "text": "Document number {index} with some words in it.", '
                    f'"priority": {index % 5}, "dept": "dept-{index % 7}"}}\n'
                    for index in range(start, start + 10_000)
                )
            )
    assert manifest.stat().st_size > 20_000_000
    started_cpu_s = time.process_time()
    tracemalloc.start()
    try:
        seen = failed = 0
        for ref in read_manifest(manifest):
            seen += 1
            failed += ref.error is not None
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    cpu_s = time.process_time() - started_cpu_s
    assert (rows, 0) == (seen, failed)
    assert peak_bytes < 40 * 1024 * 1024, f"peak {peak_bytes / 1e6:.1f} MB"
    # About 3 s of CPU under tracemalloc; the bound only catches a super-linear regression.
    assert cpu_s < 15.0, f"took {cpu_s:.1f} s of CPU"


# -- text UTF-8 cannot encode, and absurd ids ------------------------------------------------------


def encodable(ref: DocumentRef) -> bool:
    """Whether every string a ref carries (error message included) can be written as UTF-8."""
    strings = [ref.doc_id, ref.source, ref.text or "", *ref.metadata]
    strings += [value for value in ref.metadata.values() if isinstance(value, str)]
    strings += [ref.error.message] if ref.error is not None else []
    try:
        for string in strings:
            string.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def not_utf8_name(folder: Path, name: bytes, content: bytes = b"Bonjour, une facture.") -> Path:
    """A file whose name holds bytes that are not UTF-8; its Path (Python decodes them as surrogates)."""
    with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
        handle.write(content)
    return folder / os.fsdecode(name)


def test_jsonl_fields_utf8_cannot_encode_are_error_rows(tmp_path: Path) -> None:
    """A lone surrogate (a JSON \\ud800 escape) in any field, or an absurd id, costs its row alone."""
    long_id = "x" * (sources.MAX_ID_CHARS + 1)
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"id": "good1", "text": "fine", "dept": "ops"},  # 1
            {"id": "bad\udc00id", "text": "fine", "dept": "ops"},  # 2
            {"id": "text", "text": "caf\ud800 cr\u00e8me", "dept": "ops"},  # 3
            {"id": "meta", "text": "fine", "dept": "\udfff"},  # 4
            {"id": "nested", "text": "fine", "dept": {"k\ud83d": 1}},  # 5
            {"id": "path", "path": "a\ud800.txt", "dept": "ops"},  # 6
            {"id": long_id, "text": "fine", "dept": "ops"},  # 7
            {"id": "x" * sources.MAX_ID_CHARS, "text": "fine", "dept": "ops"},  # 8
            {"id": "good2", "text": "caf\u00e9 \U0001f600", "dept": "caf\u00e9"},  # 9
        ],
    )
    lone = "it holds a lone surrogate U+{} (half of a UTF-16 pair, not a character) at character {}"
    fix = "fix the manifest"
    expected = [
        ("good1", None),
        ("m.jsonl:2", f"m.jsonl line 2: id 'bad\\udc00id' is not valid Unicode text: {lone.format('DC00', 4)}; {fix}"),
        ("text", f"m.jsonl line 3: text is not valid Unicode text: {lone.format('D800', 4)}; {fix}"),
        ("meta", f"m.jsonl line 4: column 'dept' is not valid Unicode text: {lone.format('DFFF', 1)}"),
        ("nested", f"m.jsonl line 5: column 'dept' is not valid Unicode text: {lone.format('D83D', 4)}"),
        ("path", f"m.jsonl line 6: path is not a valid file name: {lone.format('D800', 2)}"),
        (
            "m.jsonl:7",
            f"m.jsonl line 7: id {'x' * 60!r}... is 4,097 characters long, over the 4,096 allowed; "
            "is the document's text in the id column?",
        ),
        ("x" * sources.MAX_ID_CHARS, None),
        ("good2", None),
    ]
    refs = list(read_manifest(manifest))
    assert expected == errors(iter(refs))
    assert all(encodable(ref) for ref in refs)
    assert [{"dept": None}, {"dept": None}] == [refs[3].metadata, refs[4].metadata]


def test_jsonl_value_utf8_cannot_encode_sets_no_column_type(tmp_path: Path) -> None:
    """A refused value counts as a null: the column takes its type from the next value, which is not refused."""
    rows: list[dict[str, Any] | str] = [{"id": "a", "text": "x", "n": "\ud800"}, {"id": "b", "text": "x", "n": 5}]
    manifest = write_jsonl(tmp_path / "m.jsonl", rows)
    assert {"n": "int64"} == manifest_metadata_columns(manifest)
    problem = "a lone surrogate U+D800 (half of a UTF-16 pair, not a character) at character 1"
    expected = [("a", f"m.jsonl line 1: column 'n' is not valid Unicode text: it holds {problem}"), ("b", None)]
    assert expected == errors(read_manifest(manifest))


def test_jsonl_first_row_column_name_utf8_cannot_encode_is_a_manifest_error(tmp_path: Path) -> None:
    """The first row's keys become output columns: one that is not valid text stops the manifest, naming it."""
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "text": "x", "de\udc80pt": "ops"}])
    with pytest.raises(ManifestError) as caught:
        list(read_manifest(manifest))
    expected = (
        f"{manifest}, line 1: column name 'de\\udc80pt' is not valid Unicode text: it holds a byte that is not "
        "UTF-8 (0x80) at character 3; the first row sets the output's columns"
    )
    assert expected == str(caught.value)
    with pytest.raises(ManifestError):
        manifest_metadata_columns(manifest)


def test_jsonl_number_too_long_for_python_is_one_malformed_row(tmp_path: Path) -> None:
    """A number Python refuses to read (over 4,300 digits) makes its line malformed, not the run crash."""
    manifest = write_jsonl(
        tmp_path / "m.jsonl", [{"id": "a", "text": "x"}, '{"id": "b", "text": "x", "n": ' + "9" * 5000 + "}"]
    )
    expected = [("a", None), ("m.jsonl:2", "m.jsonl line 2: a number has more than 4,300 digits")]
    assert expected == errors(read_manifest(manifest))


def test_manifest_path_with_bytes_not_utf8_reads_the_real_file(tmp_path: Path) -> None:
    """A manifest path naming a file whose bytes are not UTF-8 (as Python writes it: \\udce9) is read, shown escaped."""
    real = not_utf8_name(tmp_path, b"caf\xe9.txt")
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "path": "caf\udce9.txt"}, {"id": "b", "path": "\udce8"}])
    refs = list(read_manifest(manifest))
    assert DocumentRef("a", "caf\\xe9.txt", real, None, {}) == refs[0]
    missing = ("b", "\\xe8", "m.jsonl line 2: file not found: \\xe8")
    assert missing == (refs[1].doc_id, refs[1].source, str(refs[1].error))
    assert all(encodable(ref) for ref in refs)


def test_manifest_named_with_bytes_not_utf8_gives_encodable_locations(tmp_path: Path) -> None:
    """The manifest's own name is part of error ids and inline sources: shown escaped."""
    manifest = not_utf8_name(tmp_path, b"m\xe9.jsonl", b'{"id": "a", "text": "x"}\n[]\n')
    refs = list(read_manifest(manifest))
    assert [("a", "m\\xe9.jsonl:1"), ("m\\xe9.jsonl:2", "m\\xe9.jsonl:2")] == [(ref.doc_id, ref.source) for ref in refs]
    assert "m\\xe9.jsonl line 2: not a JSON object (got array)" == str(refs[1].error)


def test_walk_file_names_not_utf8_are_escaped_and_read_under_their_real_name(tmp_path: Path) -> None:
    """A folder file named with bytes that are not UTF-8 keeps a stable, distinct, encodable id; it is still read."""
    make_tree(tmp_path, ["ok.txt"])
    latin = not_utf8_name(tmp_path, b"caf\xe9.txt")
    grave = not_utf8_name(tmp_path, b"caf\xe8.txt")
    (tmp_path / "caf\\xe8.txt").write_text("A file really named with a backslash.")  # the escape of `grave`
    os.symlink(b"nowhere", os.path.join(os.fsencode(tmp_path), b"link\xff.txt"))
    refs = list(walk_folder(tmp_path))
    expected = [
        ("caf\\xe8.txt", "caf\\xe8.txt", tmp_path / "caf\\xe8.txt"),
        ("caf\\xe8.txt#2e25b3a6", "caf\\xe8.txt#2e25b3a6", grave),
        ("caf\\xe9.txt", "caf\\xe9.txt", latin),
        ("link\\xff.txt", "link\\xff.txt", None),
        ("ok.txt", "ok.txt", tmp_path / "ok.txt"),
    ]
    assert expected == [(ref.doc_id, ref.source, ref.path) for ref in refs]
    assert "broken symlink: link\\xff.txt points to nowhere, which does not exist" == str(refs[3].error)
    assert all(encodable(ref) for ref in refs)


def not_utf8_strings(values: list[bytes | None]) -> pa.Array:
    """A Parquet string column holding the given bytes as they are, valid UTF-8 or not (pyarrow does not check)."""
    binary = pa.array(values, pa.binary())
    return pa.Array.from_buffers(pa.string(), len(binary), binary.buffers(), null_count=binary.null_count)


def test_parquet_values_python_cannot_hold_cost_their_row_alone(tmp_path: Path) -> None:
    """Strings whose bytes are not UTF-8, dates out of Python's range, unsigned ints over int64: one error row each."""
    table = pa.table(
        {
            "text": not_utf8_strings([b"x", b"x\xff", b"caf\xe9", b"x", b"x", b"x", b"x"]),
            "id": not_utf8_strings([b"a", b"b\xff", b"c", b"d", b"e", b"f", b"g"]),
            "dept": not_utf8_strings([b"ops", b"ops", b"ops", b"\xed\xa0\x80", b"ops", b"ops", b"ops"]),
            "seen": pa.array([0, 0, 0, 0, 10**13, 0, 0], pa.timestamp("s")),
            "big": pa.array([1, 1, 1, 1, 1, 2**63, 2**64 - 1], pa.uint64()),
        }
    )
    manifest = tmp_path / "m.parquet"
    pq.write_table(table, manifest)
    expected = [
        ("a", None),
        ("m.parquet:2", "m.parquet row 2: column 'id' is not valid Unicode text: its bytes are not UTF-8"),
        ("c", "m.parquet row 3: column 'text' is not valid Unicode text: its bytes are not UTF-8"),
        ("d", "m.parquet row 4: column 'dept' is not valid Unicode text: its bytes are not UTF-8"),
        ("e", "m.parquet row 5: column 'seen' holds a value docpipe cannot read (date value out of range)"),
        ("f", f"m.parquet row 6: column 'big': {2**63} does not fit a 64-bit integer"),
        ("g", f"m.parquet row 7: column 'big': {2**64 - 1} does not fit a 64-bit integer"),
    ]
    refs = list(read_manifest(manifest))
    assert expected == errors(iter(refs))
    assert {"dept": "ops", "seen": "1970-01-01T00:00:00", "big": 1} == refs[0].metadata
    assert [None, None, None] == [refs[3].metadata["dept"], refs[4].metadata["seen"], refs[5].metadata["big"]]
    assert all(encodable(ref) for ref in refs)


def test_a_float_column_meeting_an_integer_too_large_for_a_float_fails_that_row_only(tmp_path: Path) -> None:
    """A JSONL float column, then a 401-digit integer: that row's error, the rows around it untouched."""
    manifest = tmp_path / "m.jsonl"
    rows = [
        {"id": "a", "text": "x", "score": 1.5},
        {"id": "b", "text": "y", "score": 10**400},
        {"id": "c", "text": "z"},
    ]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    refs = list(read_manifest(manifest))
    assert ["a", "b", "c"] == [ref.doc_id for ref in refs]
    assert refs[1].error is not None
    assert "column 'score': an integer of 1329 bits does not fit a float" in str(refs[1].error)
    assert (1.5, None) == (refs[0].metadata["score"], refs[2].metadata["score"])



def test_the_white_space_the_block_reader_knows_is_pythons() -> None:
    """PYTHON_WHITESPACE holds exactly the characters str.isspace() takes for white space."""
    assert {chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()} == set(PYTHON_WHITESPACE)


def test_a_stream_read_partly_ref_by_ref_hands_on_the_rest_in_its_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """next() and then pieces(): every ref once, in order, the batches' inline rows included."""
    monkeypatch.setattr(manifest_jsonl_blocks, "FIRST_BLOCK_BYTES", 128)
    rows = [{"id": f"d{i}", "text": f"Document {i}."} for i in range(30)]
    manifest = write_jsonl(tmp_path / "m.jsonl", [*rows[:9], "{broken", *rows[9:]])
    expected = list(read_manifest(manifest))
    stream = read_manifest(manifest)
    head = [next(stream) for _ in range(4)]
    pieces = list(stream.pieces())
    rest = [
        ref
        for piece in pieces
        for ref in ([piece] if isinstance(piece, DocumentRef) else map(piece.ref, range(len(piece))))
    ]
    shown = [(ref.doc_id, ref.source, ref.text, str(ref.error)) for ref in expected]
    assert shown == [(ref.doc_id, ref.source, ref.text, str(ref.error)) for ref in head + rest]
    assert any(isinstance(piece, DocumentBatch) and piece.inline_rows() for piece in pieces)
