"""jointctc-train end to end: work dir contents, TensorBoard, multi-worker (kills and resumes: tests/faults)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tests.helpers import REPO, SHALLOW_ENCODER, last_json_line, tiny_config, write_config_file


def test_train_fills_the_workdir_and_prints_json(trained_workdir):
    workdir, summary = trained_workdir
    assert summary["epochs"] == 2
    for key in ("loss", "ctc_loss", "attention_loss", "attention_accuracy", "dev_cer", "best_dev_cer"):
        assert np.isfinite(summary[key]), key
    for name in ("config.json", "vocab.json", "cmvn.json", "history.json"):
        assert (workdir / name).is_file(), name
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints" / "latest")).endswith("ckpt-2")
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints" / "best")) is not None
    history = json.loads((workdir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all("dev_cer" in h and "val_loss" in h for h in history)
    # The JSON line reports the last epoch's dev CER and the best epoch's, as history.json records them.
    assert summary["dev_cer"] == history[-1]["dev_cer"]
    assert summary["best_dev_cer"] == min(h["dev_cer"] for h in history)
    # The dev set is the training set (conftest.trained_workdir), so CTC best path gets part of it right (a model
    # that emits nothing scores 100, one that loops more). Measured: 92.5 after epoch 1, 81.7 after epoch 2.
    assert summary["dev_cer"] < 95.0
    # The training loss is logged per epoch (the paper's Fig. 2) and decreases on this tiny set.
    assert history[1]["loss"] < history[0]["loss"]
    alignments = np.load(workdir / "alignments" / "epoch_002.npz")
    assert len(alignments.files) == 2
    for name in alignments.files:
        weights = alignments[name]
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-4)


def _event_tags(folder):
    tags = set()
    for root, _, files in os.walk(folder):
        for name in files:
            if name.startswith("events.out.tfevents"):
                for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                    tags.update(v.tag for v in event.summary.value)
    return tags


def test_tensorboard_has_learning_curves_cer_and_alignment_images(trained_workdir):
    workdir, _ = trained_workdir
    tags = _event_tags(workdir / "tensorboard")
    assert any(t.startswith("epoch_loss") for t in tags), tags
    assert "cer" in tags
    assert sum(t.startswith("alignment/") for t in tags) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_multi_worker_processes_train_on_loopback(tiny_corpus, tmp_path):
    config = tiny_config(tiny_corpus, **{**SHALLOW_ENCODER, "train.epochs": 1})
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        args = [sys.executable, "-m", "tf_jointctc.cli.train", f"--config={write_config_file(config, tmp_path)}",
                f"--workdir={tmp_path / 'work'}", "--strategy=multi_worker", "--verbose=0"]
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        processes.append(subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    chief = last_json_line(outputs[0][0])
    assert chief["epochs"] == 1 and np.isfinite(chief["loss"])
    # Both workers end with the same synchronously trained weights: the chief's checkpoint in the work dir,
    # the other worker's in its private folder.
    readers = [
        tf.train.load_checkpoint(tf.train.latest_checkpoint(str(folder / "checkpoints" / "latest")))
        for folder in (tmp_path / "work", tmp_path / "work" / "workers" / "1")
    ]
    # Model weights are keyed by their Keras path under "model/" (trained_model.model_variables).
    names = [n for n in readers[0].get_variable_to_shape_map() if n.startswith("model/") and "OPTIMIZER" not in n]
    assert len(names) > 10
    for name in names:
        np.testing.assert_allclose(readers[0].get_tensor(name), readers[1].get_tensor(name), atol=1e-6, err_msg=name)
