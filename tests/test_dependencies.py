"""Every distribution docpipe imports is declared in pyproject.toml, not merely installed by another."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OWN_MODULES = {"pipeline", "bench", "tests", "conftest"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(*extras: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {_canonical(re.split(r"[^A-Za-z0-9._-]", requirement, maxsplit=1)[0]) for requirement in requirements}


def _imported_distributions(folder: str) -> dict[str, set[str]]:
    """Distribution -> the files of `folder` that import one of its top-level modules."""
    local = {path.stem for path in (ROOT / folder).glob("*.py")}
    providers = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in OWN_MODULES or top in local or top == "__future__":
                    continue
                for distribution in providers.get(top, [top]):
                    found.setdefault(_canonical(distribution), set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize(("folder", "extras"), [("pipeline", ()), ("bench", ("test",)), ("tests", ("test",))])
def test_every_imported_distribution_is_declared(folder: str, extras: tuple[str, ...]) -> None:
    """The package imports only its dependencies; benchmarks and tests, those and the test extra's."""
    undeclared = {
        name: files for name, files in _imported_distributions(folder).items() if name not in _declared(*extras)
    }
    assert {} == undeclared
