"""Every distribution docpipe imports is declared in pyproject.toml, not merely installed by another."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tomllib
import zipfile
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


@pytest.mark.parametrize(
    ("folder", "extras"),
    [("pipeline", ("report", "storage", "ray")), ("bench", ("test", "report", "ray")),
     ("tests", ("test", "report", "storage", "ray"))],
)
def test_every_imported_distribution_is_declared(folder: str, extras: tuple[str, ...]) -> None:
    """The package imports only its dependencies and its extras' (plotly for `report`, fsspec for storage, Ray
    for `--engine ray`, each imported by the modules that need it: test_exported_members); benchmarks and tests,
    those and the test extra's."""
    undeclared = {
        name: files for name, files in _imported_distributions(folder).items() if name not in _declared(*extras)
    }
    assert {} == undeclared


FORMAT_LIBRARIES = ("trafilatura", "lxml", "docx", "openpyxl")


def _loaded_after(code: str) -> list[str]:
    """The format libraries in sys.modules after `code` runs in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {FORMAT_LIBRARIES!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()


def test_import_and_help_load_no_format_library() -> None:
    """`import pipeline` and `docpipe --help` (and `run --help`) load none of the document-format libraries."""
    code = (
        "import pipeline, pipeline.cli\n"
        "from click.testing import CliRunner\n"
        "for args in (['--help'], ['run', '--help']):\n"
        "    assert CliRunner().invoke(pipeline.cli.main, args).exit_code == 0\n"
    )
    assert [] == _loaded_after(code)


@pytest.mark.parametrize(
    ("suffix", "loaded"),
    [(".txt", []), (".html", ["trafilatura", "lxml"]), (".docx", ["lxml", "docx"]), (".xlsx", ["lxml", "openpyxl"])],
)
def test_a_format_library_is_loaded_with_the_first_file_of_its_kind(suffix: str, loaded: list[str]) -> None:
    """Reading a file loads the library of its format only (a corrupt file is enough to get that far)."""
    data = {".txt": b"hello", ".html": b"<p>hello</p>"}.get(suffix) or _package(suffix)
    code = (
        "from pipeline.extract import extract_bytes\nfrom pipeline.errors import ExtractionError\n"
        f"try:\n    extract_bytes({data!r}, {suffix!r})\nexcept ExtractionError:\n    pass\n"
    )
    assert loaded == _loaded_after(code)


def _package(suffix: str) -> bytes:
    """A zip package the Office check lets through, so that the format's library is reached."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("word/document.xml" if suffix == ".docx" else "xl/workbook.xml", b"<broken")
    return buffer.getvalue()
