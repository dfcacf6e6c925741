"""Checkpoints that survive SIGKILL: `tf.train.CheckpointManager` writes the data files first and updates
its `checkpoint` index last (atomically), so the newest checkpoint it names is always complete. The epoch
counter travels inside the checkpoint; the per-epoch history is a JSON file rewritten atomically after it."""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from tf_jointctc.training import atomic


class TrainingCheckpoints:
    """`<workdir>/checkpoints/latest` (last few epochs) and `<workdir>/checkpoints/best` (lowest dev CER)."""

    def __init__(self, workdir: str, model: keras.Model, optimizer: keras.optimizers.Optimizer, keep: int = 2):
        self.workdir = workdir
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_dev_cer = tf.Variable(float("inf"), dtype=tf.float64, trainable=False, name="best_dev_cer")
        self._latest = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=self.epoch, best_dev_cer=self.best_dev_cer),
            os.path.join(workdir, "checkpoints", "latest"),
            max_to_keep=keep,
        )
        self._best = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=model, epoch=self.epoch),
            os.path.join(workdir, "checkpoints", "best"),
            max_to_keep=1,
        )
        self.history_path = os.path.join(workdir, "history.json")

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
        """Saves after an epoch: latest always, best when `logs['dev_cer']` improved; then the history."""
        history = self.history()
        self.epoch.assign(finished_epochs)
        dev_cer = logs.get("dev_cer")
        improved = dev_cer is not None and dev_cer < float(self.best_dev_cer.numpy())
        if improved:
            self.best_dev_cer.assign(dev_cer)
        self._latest.save(checkpoint_number=finished_epochs)
        if improved:
            self._best.save(checkpoint_number=finished_epochs)
        entry = {"epoch": finished_epochs, **{k: _plain(v) for k, v in logs.items()}}
        atomic.write_json(self.history_path, [*history[: finished_epochs - 1], entry])


def restore_weights(model: keras.Model, workdir: str, which: str = "best") -> str:
    """Loads the model weights of `<workdir>/checkpoints/<which>` (falls back to latest); returns the path."""
    for name in (which, "latest"):
        path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints", name))
        if path:
            tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
            return path
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints; train first (jointctc-train)")


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
