"""Fixtures shared across the suite: a tiny built-in corpus and a tiny model trained on it."""

from __future__ import annotations

import pathlib

import pytest

# SVOX Pico segfaults in `speak` when its library is first loaded after TensorFlow's; loading it before any
# test module imports TensorFlow avoids that.
try:
    import ttspico  # noqa: F401
except ImportError:
    pass

from tests.helpers import last_json_line, run_cli, tiny_config, write_config_file


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> pathlib.Path:
    """About 40 s of speech per split family, SVOX Pico only, so it is the same on every machine."""
    out = tmp_path_factory.mktemp("corpus")
    result = run_cli("tf_jointctc.cli.synth", f"--out_dir={out}", "--minutes=1.2", "--seed=11", "--engines=pico")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def trained_workdir(tiny_corpus, tmp_path_factory) -> tuple[pathlib.Path, dict]:
    """A tiny model trained for 2 epochs by the real `jointctc-train` (subprocess); (workdir, its JSON line)."""
    workdir = tmp_path_factory.mktemp("trained")
    config_file = write_config_file(tiny_config(tiny_corpus), workdir.parent)
    result = run_cli("tf_jointctc.cli.train", f"--config={config_file}", f"--workdir={workdir}", "--verbose=0")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir, last_json_line(result.stdout)
