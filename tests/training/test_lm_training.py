"""`jointctc-train-lm` (issue 13): trains the character LM on text, reports dev bits per character, resumes
after a SIGKILL with the run an uninterrupted one would have had, stops at its wall-time budget
(`train.max_minutes`), and refuses text it cannot use."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import REPO, last_json_line, run_cli, write_config_file
from tf_jointctc.config import lm_base_config
from tf_jointctc.data.synth import sentences as corpus_sentences
from tf_jointctc.trained_model import load_trained_lm
from tf_jointctc.training.errors import ConfigError
from tf_jointctc.training.lm_loop import train_lm

pytestmark = pytest.mark.slow

# A run that SIGKILLs itself right after the epoch-end checkpoint of epoch argv[3] is written.
_KILLED_RUN = textwrap.dedent(
    """
    import importlib.util, os, signal, sys
    from tf_jointctc.training.checkpoint import TrainingCheckpoints
    from tf_jointctc.training.lm_loop import train_lm

    config_file, workdir, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = importlib.util.spec_from_file_location("config", config_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    original = TrainingCheckpoints.save

    def save_then_die(self, finished_epochs, logs):
        original(self, finished_epochs, logs)
        if finished_epochs == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    TrainingCheckpoints.save = save_then_die
    train_lm(module.get_config(), workdir, verbose=0)
    """
)


def _text_files(folder) -> tuple[str, str]:
    """400 train-pool sentences and 40 dev-pool sentences of the built-in corpus, as text files."""
    pools = {name: corpus_sentences.load_pool(name) for name in ("train", "dev")}
    train, dev = folder / "train.txt", folder / "dev.txt"
    train.write_text("\n".join(pools["train"][:400]) + "\n")
    dev.write_text("\n".join(pools["dev"][:40]) + "\n")
    return str(train), str(dev)


def _config(train: str, dev: str):
    config = lm_base_config()
    config.data.train, config.data.dev = train, dev
    config.model.units, config.model.embedding_dim = 48, 16
    config.train.batch_size = 16
    config.train.epochs = 3
    config.train.steps_per_epoch = 12
    config.optimizer.warmup_steps = 5
    return config


def _weights(workdir) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints", "latest")))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if n.startswith("model/")}


def test_train_lm_learns_resumes_after_sigkill_and_loads_back(tmp_path):
    train, dev = _text_files(tmp_path)
    config = _config(train, dev)
    straight = train_lm(config, str(tmp_path / "straight"), verbose=0)
    history = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3] and straight["epochs"] == 3
    bits = [h["val_bits_per_char"] for h in history]
    assert bits[-1] < bits[0] < math.log2(33)  # it learns something about English spelling
    for h in history:
        assert h["dev_perplexity"] == pytest.approx(2 ** h["val_bits_per_char"], rel=1e-6)
    assert straight["dev_bits_per_char"] == pytest.approx(bits[-1])
    assert straight["train_sentences"] == 400 and straight["dev_sentences"] == 40

    workdir = tmp_path / "killed"
    config_file = write_config_file(config, tmp_path)
    killed = subprocess.run([sys.executable, "-c", _KILLED_RUN, config_file, str(workdir), "2"], capture_output=True,
                            text=True, timeout=600, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = run_cli("tf_jointctc.cli.train_lm", f"--config={config_file}", f"--workdir={workdir}", "--verbose=0")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout and "at epoch 2" in resumed.stdout
    summary = last_json_line(resumed.stdout)
    assert summary["epochs"] == 3
    got = json.loads((workdir / "history.json").read_text())
    assert summary["loss"] == got[-1]["loss"] == pytest.approx(history[-1]["loss"], rel=1e-3)  # "final loss"
    for a, b in zip(history, got):
        assert b["val_bits_per_char"] == pytest.approx(a["val_bits_per_char"], rel=1e-4)
    want = _weights(tmp_path / "straight")
    final = _weights(workdir)
    assert sorted(final) == sorted(want)
    for name, value in want.items():
        np.testing.assert_allclose(final[name], value, atol=2e-5, rtol=1e-4, err_msg=name)

    # The best checkpoint loads back into a model that scores the dev text as training logged it
    # (jointctc-eval-lm), with bad lines counted, and its path says it is the best one.
    _, _, _, path = load_trained_lm(str(workdir))
    assert "/best/" in path
    best = min(got, key=lambda h: h["val_bits_per_char"])
    (tmp_path / "bad.txt").write_bytes(b"\n12345\n")
    scored = run_cli("tf_jointctc.cli.eval_lm", f"--lm_workdir={workdir}", f"--data={dev},{tmp_path / 'bad.txt'}")
    assert scored.returncode == 0, scored.stderr[-3000:]
    line = last_json_line(scored.stdout)
    assert line["bits_per_char"] == pytest.approx(best["val_bits_per_char"], rel=1e-3)
    assert line["perplexity"] == pytest.approx(2 ** line["bits_per_char"], rel=1e-3)
    assert line["sentences"] == 40 and line["skipped"] == {"empty_line": 1, "no_vocabulary_character": 1}
    assert line["lm_checkpoint"] == path
    refused = run_cli("tf_jointctc.cli.eval_lm", f"--lm_workdir={workdir}", f"--data={tmp_path / 'bad.txt'}")
    assert refused.returncode == 2 and "no usable sentence" in refused.stderr


def test_a_spent_lm_budget_ends_the_epoch_and_a_rerun_trains_no_more(tmp_path):
    # 0.06 s: spent by the first batch (its tracing alone takes seconds) of 50 epochs of 12 batches.
    train, dev = _text_files(tmp_path)
    config = _config(train, dev)
    config.train.epochs, config.train.max_minutes = 50, 0.001
    workdir = str(tmp_path / "budget")
    summary = train_lm(config, workdir, verbose=0)
    assert summary["time_budget_reached"] and summary["epochs"] == 1
    assert summary["dev_bits_per_char"] is not None and summary["train_seconds"] >= 0.06
    history = json.loads((tmp_path / "budget" / "history.json").read_text())
    again = train_lm(config, workdir, verbose=0)
    assert again["time_budget_reached"] and again["epochs"] == 1
    assert json.loads((tmp_path / "budget" / "history.json").read_text()) == history
    config.train.max_minutes = -1.0
    with pytest.raises(ConfigError, match=">= 0"):
        train_lm(config, str(tmp_path / "negative"), verbose=0)


def test_train_lm_without_usable_text_exits_1_with_a_message(tmp_path):
    empty, dev = tmp_path / "empty.txt", tmp_path / "dev.txt"
    empty.write_bytes(b"\n  \n12345\n\xff\xfe\n")
    dev.write_text("a sentence\n")
    config_file = write_config_file(_config(str(empty), str(dev)), tmp_path)
    result = run_cli("tf_jointctc.cli.train_lm", f"--config={config_file}", f"--workdir={tmp_path / 'w'}")
    assert result.returncode == 1
    assert "no usable sentence in the train text" in result.stderr
    assert "empty_line" in result.stderr and "not_utf8" in result.stderr
