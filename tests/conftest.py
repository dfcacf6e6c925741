"""Fixtures shared across the suite: a tiny built-in corpus and a tiny model that memorizes four of its utterances."""

from __future__ import annotations

import json
import pathlib

import pytest

# SVOX Pico segfaults in `speak` when its library is first loaded after TensorFlow's; loading it before any
# test module imports TensorFlow avoids that.
try:
    import ttspico  # noqa: F401
except ImportError:
    pass

# Before any test module imports TensorFlow or Keras: the package's TensorFlow settings (tf_jointctc/runtime.py),
# so that the suite runs on the kernels the commands use.
import tf_jointctc  # noqa: E402, F401
from tests.helpers import (  # noqa: E402
    TRAINED_SETTINGS,
    TRAINED_UTTERANCES,
    build_once,
    last_json_line,
    private_copy,
    run_cli,
    tiny_config,
    write_config_file,
)

# The order in which `make test` hands whole test files to the two pytest-xdist workers (`--dist loadfile
# --no-loadscope-reorder`: xdist's default would reorder the files by their number of tests, which sent the
# one-test SIGKILL files last). The first file builds the shared corpus, trained model and export
# (`helpers.build_once`); the next ones need none of them, so the other worker is busy meanwhile instead of
# waiting on the build; then the slow files that need only the corpus, then the slow ones that need the trained
# model, then the middling ones (40-60 s each in a run of the suite on the 2-core AVX2 CPU); the short files fill in
# at the end, so that the two workers finish within seconds of each other.
SLOWEST_FIRST = (
    "tests/export/test_export.py",
    "tests/training/test_overfit.py",
    "tests/training/test_lm_training.py",
    "tests/faults/test_non_finite.py",
    "tests/test_model.py",
    "tests/faults/test_mid_epoch_resume.py",
    "tests/faults/test_kill_resume.py",
    "tests/export/test_export_lm.py",
    "tests/cli/test_train.py",
    "tests/test_recognizer.py",
    "tests/cli/test_export_cli.py",
    "tests/faults/test_data_faults.py",
    "tests/test_evaluation.py",
    "tests/decoding/test_beam_search.py",
    "tests/training/test_training_units.py",
    "tests/decoding/test_lm_fusion.py",
    "tests/data/test_data_pipeline.py",
    "tests/cli/test_evaluate.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: files keep their order


# The corpus, its manifest and the trained model are built once per run for all pytest-xdist workers
# (`helpers.build_once`): the corpus and manifest are only read; each worker gets its own copy of the work dir,
# which tests write into (evaluation caches, resumed training).


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> pathlib.Path:
    """About 40 s of speech per split family, SVOX Pico only, so it is the same on every machine. Read only."""

    def synthesize(out: pathlib.Path) -> None:
        result = run_cli("tf_jointctc.cli.synth", f"--out_dir={out}", "--minutes=1.2", "--seed=11", "--engines=pico")
        assert result.returncode == 0, result.stderr[-3000:]

    return build_once(tmp_path_factory, "corpus", synthesize)


@pytest.fixture(scope="session")
def trained_manifest(tiny_corpus, tmp_path_factory) -> pathlib.Path:
    """A manifest of the `TRAINED_UTTERANCES` shortest train utterances of `tiny_corpus` (absolute audio paths):
    `trained_workdir`'s training and dev set. Read only."""

    def choose(out: pathlib.Path) -> None:
        folder = tiny_corpus / "train"
        entries = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
        chosen = sorted(entries, key=lambda e: (e["duration"], e["id"]))[:TRAINED_UTTERANCES]
        (out / "manifest.jsonl").write_text(
            "".join(json.dumps({**e, "audio": str(folder / e["audio"])}) + "\n" for e in chosen))

    return build_once(tmp_path_factory, "trained_utterances", choose) / "manifest.jsonl"


@pytest.fixture(scope="session")
def trained_workdir(tiny_corpus, trained_manifest, tmp_path_factory) -> tuple[pathlib.Path, dict]:
    """A tiny model (`tiny_config`'s shape) trained by the real `jointctc-train` (subprocess) for 2 epochs of 200
    updates on `trained_manifest`, which is also its dev set; (this worker's copy of the workdir, its JSON
    line)."""

    def train(folder: pathlib.Path) -> None:
        config = tiny_config(
            tiny_corpus, **{"data.train": str(trained_manifest), "data.dev": str(trained_manifest), **TRAINED_SETTINGS}
        )
        config_file = write_config_file(config, folder)
        workdir = folder / "workdir"
        # TensorFlow's default thread counts ("0"), also under `make test` (which runs the suite on one thread
        # per process): the recipe's trajectory is sensitive to how float sums are ordered, and with one thread
        # the CTC branch ends where joint beam search misreads the memorized utterances (CER 28-31, measured).
        # For the same reason TensorFlow's own oneDNN default (an empty TF_ENABLE_ONEDNN_OPTS, which
        # tf_jointctc.runtime leaves alone), the kernels this recipe was chosen on: on the AVX2-only Zen 3 CPU of
        # 2026-12-07, whose default is off, the recipe with oneDNN on decoded at attention CER 53 (3 epochs: 53;
        # seeds 2 and 3: 69 and 25); off, 0.0, and the in-process decodes of that model with oneDNN on: 0.0.
        result = run_cli("tf_jointctc.cli.train", f"--config={config_file}", f"--workdir={workdir}", "--verbose=0",
                         env={"TF_NUM_INTRAOP_THREADS": "0", "TF_NUM_INTEROP_THREADS": "0",
                              "TF_ENABLE_ONEDNN_OPTS": ""})
        assert result.returncode == 0, result.stderr[-5000:]
        (folder / "summary.json").write_text(json.dumps(last_json_line(result.stdout)))

    shared = build_once(tmp_path_factory, "trained", train)
    summary = json.loads((shared / "summary.json").read_text())
    return private_copy(tmp_path_factory, shared / "workdir", "trained"), summary
