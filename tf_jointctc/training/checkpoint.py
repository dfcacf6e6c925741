"""Checkpoints that survive SIGKILL: `tf.train.CheckpointManager` writes the data files first and updates
its `checkpoint` index last (atomically), so the newest checkpoint it names is always complete. The epoch
counter travels inside the checkpoint; the per-epoch history is a JSON file rewritten atomically after it."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from tf_jointctc.training import atomic


def model_variables(model: keras.Model) -> dict[str, Any]:
    """Every variable of `model` keyed by its Keras path below the model: what checkpoints save as the model.

    `tf.train.Checkpoint(model=model)` does not reach the variables of Keras 3 layers held in plain Python
    lists (the encoder's BLSTM stack): they were missing from weight-only checkpoints. An explicit mapping
    names each variable once, whatever the layer nesting. Sub-layers therefore need explicit names (Keras would
    number an unnamed `dense` differently in another model of the same process); ours all have them.
    """
    prefix = model.name + "/"  # Keras numbers a process's second model "..._1": keys must not depend on it
    variables = {v.path.removeprefix(prefix): v for v in model.weights}
    if len(variables) != len(model.weights):
        raise ValueError("model variables must have unique paths to be checkpointed")
    return variables


class TrainingCheckpoints:
    """`<workdir>/checkpoints/latest` (last few epochs) and `<workdir>/checkpoints/best` (lowest dev CER)."""

    def __init__(self, workdir: str, model: keras.Model, optimizer: keras.optimizers.Optimizer, keep: int = 2):
        self.workdir = workdir
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_dev_cer = tf.Variable(float("inf"), dtype=tf.float64, trainable=False, name="best_dev_cer")
        self._latest = tf.train.CheckpointManager(
            tf.train.Checkpoint(
                model=model_variables(model), optimizer=optimizer, epoch=self.epoch, best_dev_cer=self.best_dev_cer
            ),
            os.path.join(workdir, "checkpoints", "latest"),
            max_to_keep=keep,
        )
        self._best = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=model_variables(model), epoch=self.epoch),
            os.path.join(workdir, "checkpoints", "best"),
            max_to_keep=1,
        )
        self.history_path = os.path.join(workdir, "history.json")
        _remove_partial_saves(os.path.join(workdir, "checkpoints"))

    @property
    def latest_path(self) -> str | None:
        return self._latest.latest_checkpoint

    @property
    def best_path(self) -> str | None:
        return self._best.latest_checkpoint

    def restore_latest(self) -> int:
        """Restores the newest complete checkpoint, if any; returns the number of finished epochs."""
        path = self._latest.latest_checkpoint
        if path is None:
            return 0
        self._latest.checkpoint.restore(path).assert_existing_objects_matched()
        epoch = int(self.epoch.numpy())
        logging.info("resuming from %s at epoch %d", path, epoch)
        print(f"resuming from {path} at epoch {epoch}", flush=True)
        return epoch

    def history(self) -> list[dict[str, Any]]:
        """Per-epoch logs of the epochs that the restored checkpoint contains (later entries are dropped)."""
        if not os.path.exists(self.history_path):
            return []
        with open(self.history_path) as f:
            return json.load(f)[: int(self.epoch.numpy())]

    def save(self, finished_epochs: int, logs: dict[str, Any]) -> None:
        """Saves after an epoch: the history, then best when `logs['dev_cer']` improved, then latest.

        Latest goes last because it decides where a resumed run starts: after a kill before it, the epoch is
        repeated and its history entry (read back cut to the checkpoint's epochs) rewritten. Written after the
        checkpoint, the entry was lost for good by a kill in between.

        With `logs['epoch_seconds']` the entry also gets `train_seconds`, the sum of `epoch_seconds` over the
        kept history and this epoch (training time across resumptions)."""
        history = self.history()
        self.epoch.assign(finished_epochs)
        dev_cer = logs.get("dev_cer")
        improved = dev_cer is not None and dev_cer < float(self.best_dev_cer.numpy())
        if improved:
            self.best_dev_cer.assign(dev_cer)
        entry = {"epoch": finished_epochs, **{k: _plain(v) for k, v in logs.items()}}
        if "epoch_seconds" in entry:
            kept = history[: finished_epochs - 1]
            entry["train_seconds"] = round(sum(h.get("epoch_seconds", 0.0) for h in kept) + entry["epoch_seconds"], 2)
        atomic.write_json(self.history_path, [*history[: finished_epochs - 1], entry])
        if improved:
            self._best.save(checkpoint_number=finished_epochs)
        self._latest.save(checkpoint_number=finished_epochs)


def restore_weights(model: keras.Model, workdir: str, which: str = "best") -> str:
    """Loads the model weights of `<workdir>/checkpoints/<which>` (falls back to latest); returns the path."""
    for name in (which, "latest"):
        path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints", name))
        if path:
            tf.train.Checkpoint(model=model_variables(model)).restore(path).expect_partial().assert_existing_objects_matched()
            return path
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints; train first (jointctc-train)")


def _remove_partial_saves(folder: str) -> None:
    """Deletes the `ckpt-N_temp` folders a save killed mid-way leaves behind (TF does not reuse or remove them;
    they are never named in the `checkpoint` index, so nothing reads them)."""
    for name in ("latest", "best"):
        path = os.path.join(folder, name)
        if not os.path.isdir(path):
            continue
        for entry in os.listdir(path):
            if entry.startswith("ckpt-") and entry.endswith("_temp") and os.path.isdir(os.path.join(path, entry)):
                logging.info("removing %s, left by an interrupted checkpoint save", os.path.join(path, entry))
                shutil.rmtree(os.path.join(path, entry), ignore_errors=True)


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
