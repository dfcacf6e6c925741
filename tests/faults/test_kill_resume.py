"""Training faults (issue 7): `jointctc-train` SIGKILLed three times at random points, one of them while a
checkpoint is being written, then resumed to completion: the epochs, the history and every file of the work dir
come out whole. (A kill inside an epoch, after a mid-epoch checkpoint: tests/faults/test_mid_epoch_resume.py.)"""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import REPO, last_json_line, tiny_config, write_config_file
from tf_jointctc.training import checkpoint as checkpoint_lib
from tf_jointctc.training.checkpoint import TrainingCheckpoints

EPOCHS = 5  # trained_workdir holds 2


def _popen_train(workdir: pathlib.Path, config_file: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "tf_jointctc.cli.train", f"--config={config_file}", f"--workdir={workdir}",
            "--verbose=0"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _checkpoint_files(latest: pathlib.Path) -> set[str]:
    return set(os.listdir(latest)) if latest.is_dir() else set()


def _kill(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"process ended on its own: {stderr[-3000:]}"
    return stderr


def _kill_after(process: subprocess.Popen, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.05)
    _kill(process)


def _kill_while_checkpointing(process: subprocess.Popen, latest: pathlib.Path, timeout: float = 300) -> str:
    """Kills as soon as a new file (temporary folder, data or index of a new checkpoint) appears in `latest`."""
    before = _checkpoint_files(latest)
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        new = {n for n in _checkpoint_files(latest) - before if n.startswith("ckpt-")}
        if new:
            _kill(process)
            return ",".join(sorted(new))
        time.sleep(0.01)
    raise AssertionError("no checkpoint was written in time")


def _check_workdir_whole(workdir: pathlib.Path, finished: bool = False) -> int:
    """Every invariant a kill must not break; returns the epoch of the newest named checkpoint (0 if none).

    Right after a kill, a folder's index may still name an older checkpoint whose files the manager was deleting
    (training/checkpoint.py), never the newest; the next start drops it (`finished`: after a run that completed,
    every named checkpoint is whole)."""
    for path in workdir.rglob("*"):
        if path.name.startswith(".tmp-"):
            # The sibling of an atomic write the kill interrupted: never read, and deleted when training starts
            # again (`checkpoint.remove_interrupted_writes`; the end of the test checks that none is left).
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())  # no truncated JSON anywhere
    for folder in ("latest", "best"):
        ckpt_dir = workdir / "checkpoints" / folder
        if not (ckpt_dir / "checkpoint").exists():
            continue
        state = tf.train.get_checkpoint_state(str(ckpt_dir))
        paths = list(state.all_model_checkpoint_paths)
        assert paths[-1] == state.model_checkpoint_path
        if not finished:  # an older one a kill interrupted the deletion of
            paths = [p for p in paths[:-1] if os.path.exists(p + ".index")] + paths[-1:]
        for path in paths:
            assert os.path.exists(path + ".index"), path
            assert any(n.startswith(os.path.basename(path) + ".data-") for n in os.listdir(ckpt_dir)), path
        reader = tf.train.load_checkpoint(state.model_checkpoint_path)  # restores: index and data readable
        assert reader.get_variable_to_shape_map()
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints" / "latest"))
    if latest is None:
        return 0
    epoch = int(tf.train.load_checkpoint(latest).get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    history = json.loads((workdir / "history.json").read_text())
    # The history holds at least the epochs of the checkpoint (it may run one epoch ahead of it).
    assert [h["epoch"] for h in history[:epoch]] == list(range(1, epoch + 1)), (epoch, history)
    for npz in (workdir / "alignments").glob("*.npz"):
        with np.load(npz) as arrays:
            assert arrays.files
    return epoch


@pytest.mark.slow
def test_three_sigkills_then_resume_to_completion(trained_workdir, tiny_corpus, tmp_path):
    source, _ = trained_workdir
    workdir = tmp_path / "work"
    shutil.copytree(source, workdir, ignore=shutil.ignore_patterns("cache"))
    config = tiny_config(tiny_corpus, **{"train.epochs": EPOCHS, "data.cache_dir": str(tmp_path / "cache"),
                                         "train.alignment_images": 2})
    config_file = write_config_file(config, tmp_path)
    latest = workdir / "checkpoints" / "latest"
    rng = random.Random(20240607)
    epochs_seen = [_check_workdir_whole(workdir)]
    assert epochs_seen[0] == 2

    # 1: at a random point of start-up (imports, data preparation, model building, restore).
    _kill_after(_popen_train(workdir, config_file), rng.uniform(1.0, 10.0))
    epochs_seen.append(_check_workdir_whole(workdir))
    # 2: while the next checkpoint is being written.
    caught = _kill_while_checkpointing(_popen_train(workdir, config_file), latest)
    epochs_seen.append(_check_workdir_whole(workdir))
    print(f"kill 2 caught {caught} being written")
    # 3: at a random point of the epoch after the next complete one (training steps, dev CER, or its save).
    assert epochs_seen[-1] <= EPOCHS - 2, epochs_seen
    process = _popen_train(workdir, config_file)
    index = latest / "checkpoint"
    saved = index.read_text()
    deadline = time.time() + 300
    while time.time() < deadline and index.read_text() == saved:
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.05)
    _kill_after(process, rng.uniform(0.2, 4.0))
    epochs_seen.append(_check_workdir_whole(workdir))
    assert epochs_seen == sorted(epochs_seen), epochs_seen  # never a step back
    print(f"epochs in the newest checkpoint after each kill: {epochs_seen}")

    process = _popen_train(workdir, config_file)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert "resuming from" in stdout + stderr
    summary = last_json_line(stdout)
    assert summary["epochs"] == EPOCHS
    assert _check_workdir_whole(workdir, finished=True) == EPOCHS
    history = json.loads((workdir / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    assert tf.train.latest_checkpoint(str(latest)).endswith(f"ckpt-{EPOCHS}")
    leftovers = [p for p in workdir.rglob("*") if "tmp" in p.name.lower() or p.name.endswith("_temp")]
    assert not leftovers, leftovers


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


@pytest.mark.parametrize("dies_in", ["history", "best", "latest"])
def test_a_kill_inside_an_epoch_end_save_leaves_no_gap_in_the_history(tmp_path, dies_in):
    # The deterministic form of the window a SIGKILL can hit at every epoch end: the process dies in one of
    # the writes of `TrainingCheckpoints.save`, after the ones before it.
    model = _tiny_model()
    checkpoints = TrainingCheckpoints(str(tmp_path), model, model.optimizer)
    checkpoints.save(1, {"loss": 3.0, "dev_cer": 50.0})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    with pytest.MonkeyPatch.context() as patch:
        if dies_in == "history":
            patch.setattr(checkpoint_lib.atomic, "write_json", killed)
        else:
            patch.setattr(getattr(checkpoints, f"_{dies_in}"), "save", killed)
        with pytest.raises(KeyboardInterrupt):
            checkpoints.save(2, {"loss": 2.0, "dev_cer": 40.0})

    fresh = _tiny_model()
    resumed = TrainingCheckpoints(str(tmp_path), fresh, fresh.optimizer)
    start = resumed.restore_latest()
    assert [h["epoch"] for h in resumed.history()] == list(range(1, start + 1))
    for epoch in range(start + 1, 4):
        resumed.save(epoch, {"loss": 1.0 / epoch, "dev_cer": 60.0 - epoch})
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert all("loss" in h for h in history)
