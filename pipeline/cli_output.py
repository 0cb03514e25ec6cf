"""What the command line prints when a command fails, the JSON files it writes, and a number it reads."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import click

from .errors import ConfigError, PipelineError

__all__ = ["FiniteFloat", "fail", "write_json"]


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
