"""The public surface: `pipeline.__all__` is sorted, complete and importable."""

from __future__ import annotations

import pipeline


def test_all_is_sorted_and_importable() -> None:
    """Every name in __all__ exists, and the list is sorted."""
    assert sorted(pipeline.__all__) == pipeline.__all__
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None


def test_every_public_member_is_exported() -> None:
    """Every public name defined in pipeline/__init__ is in __all__ (nothing exported by accident)."""
    public = {name for name in vars(pipeline) if not name.startswith("_")}
    modules = {name for name, value in vars(pipeline).items() if type(value).__name__ == "module"}
    assert set(pipeline.__all__) == public - modules - {"annotations"}
