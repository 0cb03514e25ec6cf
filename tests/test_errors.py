"""Exit codes: named once in errors.py; the exception tree, `docpipe run --help` and the README agree."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import errors
from pipeline.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
EXIT_CODES = {name: value for name, value in vars(errors).items() if name.startswith("EXIT_")}


def _error_classes() -> list[type[errors.PipelineError]]:
    return [cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.PipelineError)]


def test_exit_codes_are_distinct_and_exported() -> None:
    """Each EXIT_* constant has its own code and is in errors.__all__."""
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    assert set(EXIT_CODES) <= set(errors.__all__)


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_exits_with_a_named_code(cls: type[errors.PipelineError]) -> None:
    """An error class's exit_code is one of the EXIT_* constants, not a number of its own."""
    assert cls.exit_code in EXIT_CODES.values()


def test_the_exception_tree_drawing_shows_each_class_exit_code() -> None:
    """Every `(exit N)` in errors.py's docstring is the exit_code of the class on its line."""
    drawn = re.findall(r"(\w+Error|\w+Failure)\b.*?\(exit (\d+)\)", errors.__doc__ or "")
    assert drawn
    for name, code in drawn:
        assert (name, getattr(errors, name).exit_code) == (name, int(code))


def test_run_help_lists_every_exit_code() -> None:
    """`docpipe run --help` lists each exit code, and no code that is not named in errors.py."""
    result = CliRunner().invoke(main, ["run", "--help"])
    assert 0 == result.exit_code, result.output
    paragraph = " ".join(result.output.split("Exit codes:")[1].split("\n\n")[0].split())
    listed = {int(code) for code in re.findall(r"(?:^|; )(\d+) ", paragraph)}
    assert set(EXIT_CODES.values()) == listed


def test_readme_table_lists_every_exit_code() -> None:
    """The README's table of exit codes has a row for each EXIT_* code, and no other numbered row."""
    rows = re.findall(r"^\s*\| `(\d+)` \|", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert set(EXIT_CODES.values()) == {int(code) for code in rows}
