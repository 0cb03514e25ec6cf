"""The pieces journal: answered pieces kept across runs, for the same cut of the same document only."""

from __future__ import annotations

from pathlib import Path

from pipeline.pieces import PIECES_FILE, PieceAnswer, PieceJournal
from pipeline.pricing import TokenUsage

KEY = ("report.md", "sha-of-the-text", "fingerprint")


def answer(part: int, piece_sha256: str, *, pieces: int = 2) -> PieceAnswer:
    return PieceAnswer(
        part=part, pieces=pieces, piece_sha256=piece_sha256, values={"summary": f"part {part}"},
        usage=TokenUsage(input_tokens=100, output_tokens=10), cost_usd=0.001, request_id=f"req_{part}", attempts=1,
    )


def test_an_answer_is_kept_across_runs_for_the_same_cut_only(tmp_path: Path) -> None:
    """A new journal reads back what the last one recorded; another cut (other piece hashes) gets nothing."""
    PieceJournal(tmp_path).record(KEY, answer(1, "h1"))
    again = PieceJournal(tmp_path)
    assert {1: answer(1, "h1")} == again.answered(KEY, ["h1", "h2"])
    assert {} == again.answered(KEY, ["other", "h2"])  # the same part number, cut elsewhere
    assert {} == again.answered(KEY, ["h1", "h2", "h3"])  # cut into more pieces
    assert {} == again.answered(("report.md", "edited", "fingerprint"), ["h1", "h2"])  # the document changed


def test_a_torn_last_line_is_ignored_and_a_garbled_one_counted(tmp_path: Path) -> None:
    """A kill while appending leaves a torn last line: ignored; a garbled line elsewhere is counted, the rest read."""
    journal = PieceJournal(tmp_path)
    journal.record(KEY, answer(1, "h1"))
    journal.record(KEY, answer(2, "h2"))
    path = tmp_path / PIECES_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b'{"garbled\n' + lines[0] + lines[1][:40])
    again = PieceJournal(tmp_path)
    assert {1: answer(1, "h1")} == again.answered(KEY, ["h1", "h2"])
    assert 1 == again.damaged


def test_close_drops_the_pieces_of_documents_that_have_their_row(tmp_path: Path) -> None:
    """Once a document's row is written its pieces go; another document's stay; none left, no file."""
    other = ("memo.md", "sha-memo", "fingerprint")
    journal = PieceJournal(tmp_path)
    journal.record(KEY, answer(1, "h1"))
    journal.record(other, answer(1, "m1"))
    journal.finished(KEY)
    journal.close()
    again = PieceJournal(tmp_path)
    assert {} == again.answered(KEY, ["h1", "h2"])
    assert {1: answer(1, "m1")} == again.answered(other, ["m1", "m2"])
    again.finished(other)
    again.close()
    assert not (tmp_path / PIECES_FILE).exists()
