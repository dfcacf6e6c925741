"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent


def run_cli(module: str, *args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m <module> args` and returns the completed process (stdout/stderr captured as text)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def tiny_config(corpus: pathlib.Path, **overrides):
    """configs/demo.py shrunk to a few thousand parameters per layer, over `corpus`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_config", REPO / "configs" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.data.train = str(corpus / "train" / "manifest.jsonl")
    config.data.dev = str(corpus / "dev" / "manifest.jsonl")
    config.data.cache_dir = ""  # the work dir's own cache: tests never write into the repository's data/
    config.data.num_shards = 2
    config.model.encoder.units = 24
    config.model.encoder.projection_units = 24
    config.model.attention_dim = 24
    config.model.attention_filters = 4
    config.model.attention_width = 15
    config.model.decoder_units = 24
    config.train.epochs = 2
    config.train.batch_size = 8
    config.train.steps_per_epoch = 0  # epochs are passes over the tiny corpus
    config.train.max_frames_per_batch = 0
    config.optimizer.schedule = "constant"  # a tiny run has too few steps for the demo's warm-ups
    config.loss.ctc_warmup_steps = 0
    # Two epochs of a tiny model: with the demo's lambda 0.5 its decoder loops on near-ties that the exact
    # SavedModel/TFLite token-parity tests cannot survive; the paper's 0.2 and joint weight 0.3 train it more.
    config.loss.ctc_weight = 0.2
    config.decode.ctc_weight = 0.3
    config.train.alignment_images = 2
    config.optimizer.learning_rate = 3e-3
    for key, value in overrides.items():
        target = config
        *parents, leaf = key.split(".")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return config


def write_config_file(config, folder: pathlib.Path) -> str:
    """Writes `config` as a config file (`get_config()`) for `--config=` of a subprocess; returns its path."""
    path = folder / f"config_{abs(hash(config.to_json())) % 10**8}.py"
    path.write_text(
        "import json\nimport ml_collections\n\n\ndef get_config():\n"
        f"    return ml_collections.ConfigDict(json.loads({config.to_json()!r}))\n"
    )
    return str(path)
