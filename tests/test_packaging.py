"""pyproject.toml installs every package folder, and export/ as tf_jointctc.export (no top-level `export`)."""

from __future__ import annotations

import pathlib
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _packages(root: str) -> set[str]:
    """Dotted names of `root` and the folders under it that Python can import (data-only folders included)."""
    folders = [REPO / root, *(p for p in (REPO / root).rglob("*") if p.is_dir() and p.name != "__pycache__")]
    names = {".".join(folder.relative_to(REPO).parts) for folder in folders}
    return {name for name in names if all(part.isidentifier() for part in name.split("."))}


def test_the_package_list_names_every_package_folder():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"tf_jointctc.export": "export"}
    expected = _packages("tf_jointctc") | {"tf_jointctc." + name for name in _packages("export")}
    assert sorted(setuptools["packages"]) == sorted(expected)
