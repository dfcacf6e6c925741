"""Import layering: the Recognizer reads exported files only, and the export package sits above it, not below.

`tf_jointctc.export` (the repository's export/ folder) once imported the TFLite metadata reader from
`tf_jointctc.recognizer`, which imported `export` back inside a function: a cycle that `sys.modules` alone
does not show. Both directions are checked statically (every import statement, function-level ones included)
and at run time.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _imported_modules(path: pathlib.Path) -> set[str]:
    """Every module an `import`/`from ... import` statement anywhere in `path` names (absolute imports)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _names(modules: set[str], *prefixes: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)}


@pytest.mark.parametrize("module", ["tf_jointctc/recognizer.py", "tf_jointctc/tflite_metadata.py"])
def test_recognizer_side_imports_neither_export_nor_training(module):
    modules = _imported_modules(REPO / module)
    assert not _names(modules, "export", "tf_jointctc.export", "tf_jointctc.training", "tf_jointctc.trained_model")


@pytest.mark.parametrize("path", sorted(p.name for p in (REPO / "export").glob("*.py")))
def test_export_modules_do_not_import_the_recognizer(path):
    modules = _imported_modules(REPO / "export" / path)
    assert not _names(modules, "tf_jointctc.recognizer", "export"), "import tf_jointctc.export.*, not export.*"


def test_tflite_metadata_imports_nothing_of_the_package():
    assert not _names(_imported_modules(REPO / "tf_jointctc" / "tflite_metadata.py"), "tf_jointctc")


def test_importing_the_recognizer_loads_no_export_module():
    code = (
        "import sys, tf_jointctc.recognizer; "
        "print(sorted(m for m in sys.modules if m == 'export' or m.startswith(('export.', 'tf_jointctc.export'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_importing_the_export_package_loads_no_recognizer():
    code = "import sys, tf_jointctc.export; print('tf_jointctc.recognizer' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
