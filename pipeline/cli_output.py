"""What the command line prints when a command fails, and the JSON files it writes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import ConfigError, PipelineError

__all__ = ["fail", "write_json"]


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
