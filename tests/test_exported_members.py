"""The public surface: `pipeline.__all__` is sorted, complete and importable, and cheap to import."""

from __future__ import annotations

import subprocess
import sys

import pipeline


def test_all_is_sorted_and_importable() -> None:
    """Every name in __all__ exists, and the list is sorted."""
    assert sorted(pipeline.__all__) == pipeline.__all__
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None


def test_every_public_member_is_exported() -> None:
    """Every public name the package resolves is in __all__ (nothing exported by accident)."""
    public = {name for name in dir(pipeline) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(pipeline, name)).__name__ == "module"}
    assert set(pipeline.__all__) == public - modules - {"annotations", "importlib", "TYPE_CHECKING", "Any"}


def test_import_and_help_load_neither_the_sdk_nor_pyarrow() -> None:
    """`import pipeline` and the CLI leave the SDK, pyarrow, aiohttp and Ray unloaded until a command needs them."""
    code = (
        "import sys, pipeline, pipeline.cli; "
        "print(sorted(m for m in ('anthropic', 'pyarrow', 'aiohttp', 'pandas', 'plotly', 'ray') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "[]" == loaded.strip()
