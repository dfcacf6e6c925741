"""Checkpoints that survive SIGKILL: `tf.train.CheckpointManager` writes the data files first and updates
its `checkpoint` index last (atomically), so the newest checkpoint it names is always complete. (It then deletes
the checkpoints beyond `max_to_keep` and writes the index again without them: a kill in between leaves the index
naming an older checkpoint whose files are gone, which the next start drops from the index,
`remove_interrupted_writes`.) The epoch
counter travels inside the checkpoint; the per-epoch history is a JSON file rewritten atomically after it.

With `train.checkpoint_every_steps` there are also mid-epoch checkpoints (`checkpoints/mid_epoch`): weights,
optimizer, the position (finished epochs and the batches consumed of the next one), the epoch's running metrics
and its elapsed seconds. A resumed run restores whichever of `latest` and `mid_epoch` is further along."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from tf_jointctc.trained_model import model_variables
from tf_jointctc.training import atomic
from tf_jointctc.training.resume import ResumePoint
from tf_jointctc.training.weight_average import WeightAverage


class TrainingCheckpoints:
    """`<workdir>/checkpoints/latest` (last few epochs), `<workdir>/checkpoints/best` (lowest `best_metric` of
    the epoch logs: dev CER for the recognizer, dev bits per character for the LM) and
    `<workdir>/checkpoints/mid_epoch` (the newest mid-epoch checkpoint, `save_mid_epoch`). The best value so far
    travels in the checkpoints as `best_dev_cer` (its name from before the LM), whatever the metric.

    With a `weight_average` (`train.ema_decay`), `best` holds the averaged weights as its model (what evaluation
    and export read), and `latest` and `mid_epoch` hold the averages beside the weights as trained."""

    def __init__(self, workdir: str, model: keras.Model, optimizer: keras.optimizers.Optimizer, keep: int = 2,
                 best_metric: str = "dev_cer", weight_average: WeightAverage | None = None):
        self.workdir = workdir
        self.best_metric = best_metric
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_dev_cer = tf.Variable(float("inf"), dtype=tf.float64, trainable=False, name="best_dev_cer")
        # Mid-epoch checkpoints only: batches of epoch `epoch` + 1 consumed, and the seconds spent on them.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="epoch_seconds")
        # The running (per-epoch) metrics: `fit` resets them at each epoch's start, a mid-epoch resume puts back
        # the values of the batches before the interruption (`restore_epoch_metrics`).
        self._metric_variables = {f"{m.name}/{v.name}": v for m in model.metrics for v in m.variables}
        self._resumed_metrics: dict[str, Any] = {}
        remove_interrupted_writes(workdir)  # before the managers read their folders' indexes
        averages = {"averages": weight_average.shadows} if weight_average is not None else {}
        self._latest = tf.train.CheckpointManager(
            tf.train.Checkpoint(
                model=model_variables(model), optimizer=optimizer, epoch=self.epoch, best_dev_cer=self.best_dev_cer,
                **averages,
            ),
            os.path.join(workdir, "checkpoints", "latest"),
            max_to_keep=keep,
        )
        self._best = tf.train.CheckpointManager(
            tf.train.Checkpoint(
                model=model_variables(model) if weight_average is None else weight_average.averaged_model_variables(),
                epoch=self.epoch,
            ),
            os.path.join(workdir, "checkpoints", "best"),
            max_to_keep=1,
        )
        self._mid_epoch = tf.train.CheckpointManager(
            tf.train.Checkpoint(
                model=model_variables(model), optimizer=optimizer, epoch=self.epoch, step=self.step,
                best_dev_cer=self.best_dev_cer, epoch_seconds=self.epoch_seconds, metrics=self._metric_variables,
                **averages,
            ),
            os.path.join(workdir, "checkpoints", "mid_epoch"),
            max_to_keep=1,
        )
        self.history_path = os.path.join(workdir, "history.json")

    def restore(self) -> ResumePoint:
        """Restores the newest complete checkpoint, epoch-end or mid-epoch, whichever is further along (if any).

        Returns where training continues (`ResumePoint()` for a fresh start); logs `resuming from ...`."""
        latest, mid = self._latest.latest_checkpoint, self._mid_epoch.latest_checkpoint
        latest_epoch = _read_int(latest, "epoch") if latest else 0
        if mid and (_read_int(mid, "epoch"), _read_int(mid, "step")) > (latest_epoch, 0):
            self._mid_epoch.checkpoint.restore(mid).assert_existing_objects_matched()
            self._resumed_metrics = {k: v.numpy() for k, v in self._metric_variables.items()}
            point = ResumePoint(int(self.epoch.numpy()), int(self.step.numpy()), mid, float(self.epoch_seconds.numpy()))
        elif latest:
            self._latest.checkpoint.restore(latest).assert_existing_objects_matched()
            point = ResumePoint(int(self.epoch.numpy()), 0, latest)
        else:
            return ResumePoint()
        logging.info("%s", point.describe())
        return point

    def restore_latest(self) -> int:
        """`restore()`, returning the number of finished epochs only."""
        return self.restore().epoch

    def restore_epoch_metrics(self) -> None:
        """Puts back the running metrics of the epoch that `restore` found unfinished (call after `fit` has reset
        the metrics at the start of that epoch), so the epoch's logs cover its batches before the interruption."""
        for key, value in self._resumed_metrics.items():
            self._metric_variables[key].assign(value)
        self._resumed_metrics = {}

    def save_mid_epoch(self, finished_epochs: int, step: int, seconds: float) -> str:
        """Saves a mid-epoch checkpoint: `finished_epochs` done, `step` batches of the next one consumed,
        `seconds` spent on them; returns its path. The history and the best checkpoint are left alone."""
        self.epoch.assign(finished_epochs)
        self.step.assign(step)
        self.epoch_seconds.assign(seconds)
        previous = self._mid_epoch.latest_checkpoint
        number = int(previous.rsplit("-", 1)[1]) + 1 if previous else 1
        path = self._mid_epoch.save(checkpoint_number=number)
        logging.info("mid-epoch checkpoint %s: epoch %d, step %d", path, finished_epochs + 1, step)
        return path

    def history(self) -> list[dict[str, Any]]:
        """Per-epoch logs of the epochs that the restored checkpoint contains (later entries are dropped)."""
        if not os.path.exists(self.history_path):
            return []
        with open(self.history_path) as f:
            return json.load(f)[: int(self.epoch.numpy())]

    def train_seconds(self) -> float:
        """Seconds of training of the finished epochs that `history` keeps (its last entry's `train_seconds`)."""
        history = self.history()
        return float(history[-1].get("train_seconds", 0.0)) if history else 0.0

    def save(self, finished_epochs: int, logs: dict[str, Any]) -> None:
        """Saves after an epoch: the history, then best when `logs[best_metric]` improved, then latest.

        Latest goes last because it decides where a resumed run starts: after a kill before it, the epoch is
        repeated and its history entry (read back cut to the checkpoint's epochs) rewritten. Written after the
        checkpoint, the entry was lost for good by a kill in between.

        With `logs['epoch_seconds']` the entry also gets `train_seconds`, the sum of `epoch_seconds` over the
        kept history and this epoch (training time across resumptions)."""
        history = self.history()
        self.epoch.assign(finished_epochs)
        value = logs.get(self.best_metric)
        improved = value is not None and float(value) < float(self.best_dev_cer.numpy())
        if improved:
            self.best_dev_cer.assign(float(value))
        entry = {"epoch": finished_epochs, **{k: _plain(v) for k, v in logs.items()}}
        if "epoch_seconds" in entry:
            kept = history[: finished_epochs - 1]
            entry["train_seconds"] = round(sum(h.get("epoch_seconds", 0.0) for h in kept) + entry["epoch_seconds"], 2)
        atomic.write_json(self.history_path, [*history[: finished_epochs - 1], entry])
        if improved:
            self._best.save(checkpoint_number=finished_epochs)
        self._latest.save(checkpoint_number=finished_epochs)


def remove_interrupted_writes(workdir: str) -> None:
    """Deletes what a training process killed mid-write leaves in its work dir. Nothing reads these files: each
    write goes to a temporary name that is renamed only when complete.

    - `checkpoints/{latest,best,mid_epoch}/ckpt-N_temp/`: a checkpoint save cut short (TF neither reuses nor
      removes it);
    - `checkpoints/*/checkpoint.tmp<hex>`: TF's temporary copy of a folder's `checkpoint` index;
    - in a folder's `checkpoint` index, the names of older checkpoints whose files are gone (a kill while the
      manager deleted them: module docstring);
    - `atomic.TEMP_PREFIX`* files in the work dir and in `alignments/`: the temporaries of `atomic.write_text`
      (history, config, vocabulary, runtime), of the CMVN statistics and of `alignments/epoch_NNN.npz`.
    """
    folder = os.path.join(workdir, "checkpoints")
    for name in ("latest", "best", "mid_epoch"):
        path = os.path.join(folder, name)
        if not os.path.isdir(path):
            continue
        for entry in os.listdir(path):
            full = os.path.join(path, entry)
            if entry.startswith("ckpt-") and entry.endswith("_temp") and os.path.isdir(full):
                logging.info("removing %s, left by an interrupted checkpoint save", full)
                shutil.rmtree(full, ignore_errors=True)
            elif entry.startswith("checkpoint.tmp") and os.path.isfile(full):
                logging.info("removing %s, left by an interrupted checkpoint save", full)
                os.remove(full)
        _drop_deleted_checkpoints(path)
    for path in (workdir, os.path.join(workdir, "alignments")):
        if not os.path.isdir(path):
            continue
        for entry in os.listdir(path):
            full = os.path.join(path, entry)
            if entry.startswith(atomic.TEMP_PREFIX) and os.path.isfile(full):
                logging.info("removing %s, left by an interrupted write", full)
                os.remove(full)


def updates_done(workdir: str) -> int | None:
    """The optimizer's step counter (updates applied) in the newest checkpoint of `<workdir>/checkpoints/latest`
    and `mid_epoch` (a time budget can end training inside an epoch), read without building a model; None before
    the first checkpoint."""
    counts = []
    for name in ("latest", "mid_epoch"):
        path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints", name))
        if path is not None:
            counts.append(_read_int(path, "optimizer/_iterations"))
    return max(counts, default=None)


def _read_int(path: str, name: str) -> int:
    """The integer variable `name` of the checkpoint at `path`, read without restoring anything."""
    return int(tf.train.load_checkpoint(path).get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _drop_deleted_checkpoints(folder: str) -> None:
    """Rewrites `folder`'s `checkpoint` index without the checkpoints it names whose files are gone (their
    timestamps with them). The newest one it names is never among them (module docstring)."""
    state = tf.train.get_checkpoint_state(folder)
    if state is None:
        return
    paths = list(state.all_model_checkpoint_paths)
    present = [i for i, path in enumerate(paths) if os.path.exists(path + ".index")]
    if len(present) == len(paths):
        return
    logging.info("dropping %s from %s/checkpoint: deleted by an interrupted save",
                 [os.path.basename(paths[i]) for i in range(len(paths)) if i not in present], folder)
    timestamps = list(state.all_model_checkpoint_timestamps)
    tf.compat.v1.train.update_checkpoint_state(
        folder,
        os.path.basename(state.model_checkpoint_path),  # relative, as the manager writes them: the folder may move
        [os.path.basename(paths[i]) for i in present],
        all_model_checkpoint_timestamps=[timestamps[i] for i in present] if len(timestamps) == len(paths) else None,
        last_preserved_timestamp=state.last_preserved_timestamp,
    )
