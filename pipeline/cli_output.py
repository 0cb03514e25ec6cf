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


def refuse_inside_dataset(path: Path | None, option: str, *out_dirs: str) -> None:
    """A ConfigError when a file a command writes would land in an output directory as data.

    pandas and pyarrow read an output directory as one dataset and fail on any file in it that is not
    Parquet; they leave out names starting with `_` or `.` (`_report.html`, `_runs/`), so those are fine.
    """
    if path is None:
        return
    for out_dir in out_dirs:
        try:
            relative = path.resolve().relative_to(Path(out_dir).resolve())
        except (ValueError, OSError):
            continue  # elsewhere, or an output in object storage
        if not any(part.startswith(("_", ".")) for part in relative.parts):
            raise ConfigError(
                f"{option} {path}: inside the output directory {out_dir}, where pandas and pyarrow would read it "
                f"as part of the dataset and fail; write it elsewhere, or under a name starting with _ "
                f"({Path(out_dir) / ('_' + path.name)})"
            )
