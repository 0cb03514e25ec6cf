"""What the command line prints when a command fails, the JSON files it writes, and a number it reads."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import click

from .errors import ConfigError, PipelineError

__all__ = ["FiniteFloat", "fail", "refuse_inside_dataset", "write_json"]


class FiniteFloat(click.FloatRange):
    """A FloatRange that refuses nan and infinities, which pass click's range comparisons."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def fail(error: PipelineError) -> None:
    """docpipe's one line for an error, then its exit code."""
    click.echo(f"docpipe: error: {error}", err=True)
    sys.exit(error.exit_code)


def write_json(path: Path, text: str) -> None:
    """`--json FILE`: the text written there, or docpipe's error when it cannot be."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(ConfigError(f"cannot write {path}: {exc.strerror or exc}"))
    click.echo(f"docpipe: JSON in {path}", err=True)


# What docpipe keeps in an output directory beside the parts (held equal to the modules' constants by a test).
OWN_NAMES = frozenset({"_runs", "_wal", "_quarantine", "_batches", "_inputs", "_pieces.jsonl", "_files.jsonl",
                       "_state.json", "_out.json", ".lock"})


def refuse_inside_dataset(path: Path | None, option: str) -> None:
    """A ConfigError when a file a command writes would land in an output directory as data, or among its own files.

    pandas and pyarrow read an output directory as one dataset and fail on any file in it that is not
    Parquet; they leave out names starting with `_` or `.`, so `OUT/_rows.csv` is fine, but not a
    name docpipe keeps its own files under (`_runs/` holds the run summaries `status` reads). Any output
    directory counts, not only the command's own: one is a folder with `_runs/` or `_wal/` in it.
    """
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{option} {path}: a directory; name a file")
    where = path.parent.resolve() / path.name  # a symlink at `path` is replaced by the file, not written through
    for folder in where.parents:
        if not ((folder / "_runs").is_dir() or (folder / "_wal").is_dir()):
            continue
        first = where.relative_to(folder).parts[0]
        if first in OWN_NAMES:
            raise ConfigError(f"{option} {path}: among docpipe's own files in the output directory {folder}; "
                              "write it elsewhere")
        if not first.startswith(("_", ".")):
            raise ConfigError(
                f"{option} {path}: inside the output directory {folder}, where pandas and pyarrow would read it "
                f"as part of the dataset and fail; write it elsewhere, or under a name starting with _ "
                f"({folder / ('_' + first)})"
            )
