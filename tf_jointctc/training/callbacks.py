"""Callbacks of jointctc-train: dev CER and attention alignments each epoch, checkpoints, non-finite guard,
wall-time budget."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tf_jointctc import metrics
from tf_jointctc.decoding.attention_greedy import attention_greedy_decode
from tf_jointctc.decoding.greedy import ctc_greedy_decode
from tf_jointctc.text import Vocabulary
from tf_jointctc.training import atomic
from tf_jointctc.training.checkpoint import TrainingCheckpoints
from tf_jointctc.training.errors import ConfigError
from tf_jointctc.training.resume import ResumePoint
from tf_jointctc.training.weight_average import WeightAverage


def alignment_image(weights: np.ndarray) -> np.ndarray:
    """[tokens, frames] attention weights -> [1, tokens, frames, 1] uint8 image, each row scaled to its max."""
    scaled = weights / np.maximum(weights.max(axis=1, keepdims=True), 1e-9)
    return (255 * scaled).astype(np.uint8)[np.newaxis, :, :, np.newaxis]


class DevEvaluation(keras.callbacks.Callback):
    """At each epoch end: dev CER (CTC greedy, or attention greedy when the model has no CTC branch) into
    `logs['dev_cer']`, and the attention alignments of a few fixed dev utterances to TensorBoard (as images)
    and to `<workdir>/alignments/epoch_NNN.npz` (the paper's Fig. 3); none with `num_alignments` 0.

    With a `weight_average` (`train.ema_decay`) both come from the averaged weights, and `logs['dev_cer_raw']`
    and `logs['dev_wer_raw']` hold the error rates of the weights as trained."""

    def __init__(self, dev_dataset: tf.data.Dataset, vocab: Vocabulary, workdir: str, num_alignments: int = 3,
                 alignment_dataset: tf.data.Dataset | None = None, weight_average: WeightAverage | None = None):
        super().__init__()
        self.weight_average = weight_average
        self.dev_dataset = dev_dataset  # batches with `texts`
        # The fixed utterances to align come from the first batch of `alignment_dataset` when given (e.g. a
        # noisy test set, as the paper's Fig. 3), else from the first dev batch.
        self.alignment_dataset = alignment_dataset
        self.vocab = vocab
        self.workdir = workdir
        self.num_alignments = num_alignments
        self.writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", "dev"))
        self._decode_fn = None
        self._align_fn = None
        self._align_batch = None

    def _decode(self, batch: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        model = self.model
        h, lengths = model.encode(batch["features"], batch["feature_lengths"], training=False)
        if model.compute_ctc:
            token_ids, num_tokens, _ = ctc_greedy_decode(model.ctc_logits(h), lengths, blank_id=self.vocab.blank_id)
        else:
            token_ids, num_tokens, _ = attention_greedy_decode(model, h, lengths)
        return token_ids, num_tokens

    def _align(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return self.model(batch, training=False)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        if self._decode_fn is None:
            self._decode_fn = tf.function(self._decode, reduce_retracing=True)
            self._align_fn = tf.function(self._align, reduce_retracing=True)
        aligning = self.model.compute_attention and self.num_alignments > 0
        if aligning and self._align_batch is None:
            source = self.alignment_dataset if self.alignment_dataset is not None else self.dev_dataset
            for batch in source.take(1):
                self._align_batch = {k: v[: self.num_alignments] for k, v in batch.items()}
        if self.weight_average is not None:
            raw = self._dev_error_rates()
            logs["dev_cer_raw"], logs["dev_wer_raw"] = raw["cer"], raw["wer"]
            logging.info("epoch %d: dev CER %.2f%% WER %.2f%% with the weights as trained", epoch + 1, raw["cer"],
                         raw["wer"])
        with self.weight_average.swapped_in() if self.weight_average is not None else contextlib.nullcontext():
            rates = self._dev_error_rates()
            with self.writer.as_default(step=epoch + 1):
                tf.summary.scalar("cer", rates["cer"])
                tf.summary.scalar("wer", rates["wer"])
                if self._align_batch is not None:
                    self._write_alignments(epoch + 1)
            self.writer.flush()
        logs["dev_cer"] = rates["cer"]
        logs["dev_wer"] = rates["wer"]
        averaged = " (averaged weights)" if self.weight_average is not None else ""
        logging.info("epoch %d: dev CER %.2f%% WER %.2f%%%s (%d utterances); e.g. ref %r hyp %r", epoch + 1,
                     rates["cer"], rates["wer"], averaged, rates["utterances"], rates["reference"],
                     rates["hypothesis"])

    def _dev_error_rates(self) -> dict[str, Any]:
        """CER and WER of the model's current weights on the dev data, and its first utterance's texts."""
        references, hypotheses = [], []
        for batch in self.dev_dataset:
            token_ids, num_tokens = self._decode_fn({k: batch[k] for k in ("features", "feature_lengths")})
            for ids, n in zip(token_ids.numpy(), num_tokens.numpy()):
                hypotheses.append(self.vocab.decode(ids[:n]))
            references.extend(t.decode() for t in batch["texts"].numpy())
        rates = metrics.error_rates(references, hypotheses)
        return {"cer": rates["cer"], "wer": rates["wer"], "utterances": len(references),
                "reference": references[0], "hypothesis": hypotheses[0]}

    def _write_alignments(self, epoch: int) -> None:
        batch = {k: v for k, v in self._align_batch.items() if k != "texts"}
        outputs = self._align_fn({k: batch[k] for k in ("features", "feature_lengths", "labels", "label_lengths")})
        weights = outputs["attention_weights"].numpy()
        frames = outputs["encoder_lengths"].numpy()
        tokens = batch["label_lengths"].numpy() + 1  # + eos
        arrays = {}
        for i, utt_id in enumerate(batch["ids"].numpy()):
            name = utt_id.decode()
            alignment = weights[i, : tokens[i], : frames[i]]
            arrays[name] = alignment
            tf.summary.image(f"alignment/{name}", alignment_image(alignment))
        folder = os.path.join(self.workdir, "alignments")
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f"{atomic.TEMP_PREFIX}epoch_{epoch:03d}.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, os.path.join(folder, f"epoch_{epoch:03d}.npz"))


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves `TrainingCheckpoints` after every epoch (after DevEvaluation has put `dev_cer` into the logs) and,
    with `every_steps` > 0, a mid-epoch checkpoint after every `every_steps`-th batch of an epoch (counted from
    the epoch's start; not after batch `steps_per_epoch`, which the epoch-end save covers).

    Adds to the epoch's logs `epoch_seconds` (wall time of the epoch, its dev evaluation included);
    `TrainingCheckpoints.save` sums them into `train_seconds`. `train_seconds()` gives that sum up to now: the
    finished epochs' and the current one's seconds so far.

    `resume`: a run restored from a mid-epoch checkpoint trains the rest of epoch `resume.epoch` (0-based) as a
    Keras epoch that starts after `resume.step` batches. For that epoch the callback counts those batches, puts
    back the metrics of the batches before the interruption (so the epoch's logs and history entry are the
    whole epoch's) and adds their seconds. Put it before callbacks that read the metrics at an epoch's start.
    """

    def __init__(self, checkpoints: TrainingCheckpoints, every_steps: int = 0, steps_per_epoch: int = 0,
                 resume: ResumePoint | None = None):
        super().__init__()
        self.checkpoints = checkpoints
        self.every_steps = int(every_steps)
        self.steps_per_epoch = int(steps_per_epoch)
        self._resume = resume if resume is not None and resume.step else None
        self._epoch = 0
        self._offset = 0  # batches of the current epoch consumed before this Keras epoch began
        self._seconds_before = 0.0
        self._finished_seconds = 0.0  # train_seconds of the epochs before the current one
        self._started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()
        self._epoch, self._offset, self._seconds_before = epoch, 0, 0.0
        if self._resume is not None and epoch == self._resume.epoch:
            self._offset, self._seconds_before = self._resume.step, self._resume.seconds
            self.checkpoints.restore_epoch_metrics()
            self._resume = None
        self._finished_seconds = self.checkpoints.train_seconds()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        consumed = self._offset + batch + 1
        if self.every_steps and consumed % self.every_steps == 0 and consumed != self.steps_per_epoch:
            self.checkpoints.save_mid_epoch(self._epoch, consumed, self._elapsed())

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.checkpoints.save(epoch + 1, {**(logs or {}), "epoch_seconds": round(self._elapsed(), 2)})

    def _elapsed(self) -> float:
        return self._seconds_before + time.monotonic() - self._started

    def train_seconds(self) -> float:
        """Seconds of training so far: the finished epochs' `train_seconds` and the current epoch's (seconds
        before a resume included)."""
        return self._finished_seconds + self._elapsed()


class TimeBudget(keras.callbacks.Callback):
    """Ends training when its wall time reaches `budget_seconds` (`train.max_minutes`).

    `train_seconds` is a callable giving the seconds of training so far (`EpochCheckpoint.train_seconds`: dev
    evaluations and the seconds before a resume included; put this callback after that one). After the batch at
    which it reaches the budget, the callback sets `model.stop_training`: Keras ends the epoch there, with its dev
    evaluation and checkpoint as usual, and `fit` returns; `reached` tells the training loop not to start another
    `fit`. Before every batch it sets `elapsed_fraction` (when given: the `WarmupDecay`'s variable) to the spent
    fraction of the budget, at most 1, so that a cosine schedule ends at its floor with the budget.
    """

    def __init__(self, budget_seconds: float, train_seconds: Callable[[], float],
                 elapsed_fraction: tf.Variable | None = None):
        super().__init__()
        if not budget_seconds > 0:
            raise ValueError(f"a time budget must be positive, got {budget_seconds} s")
        self.budget_seconds = float(budget_seconds)
        self.train_seconds = train_seconds
        self.elapsed_fraction = elapsed_fraction
        self.reached = False

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.elapsed_fraction is not None:
            self.elapsed_fraction.assign(min(self.train_seconds() / self.budget_seconds, 1.0))

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.train_seconds() >= self.budget_seconds:
            if not self.reached:
                logging.info("time budget of %.1f min reached after %.1f s of training: this epoch ends here",
                             self.budget_seconds / 60, self.train_seconds())
            self.reached = True
            self.model.stop_training = True


def validation_dataset(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning off, for `fit(validation_data=...)`. Each validation pass makes Keras
    delete the previous pass's iterator, and with autotuning that deletion blocked 8-53 s (no CPU) after long
    epochs, up to a quarter of a training budget (docs/accuracy.md, "Where a training step's time goes")."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def budget_seconds(train_config: Any) -> float:
    """`train.max_minutes` of a recognizer's or an LM's config in seconds (0: no budget). Raises ConfigError if
    negative."""
    minutes = float(train_config.get("max_minutes", 0.0))
    if minutes < 0:
        raise ConfigError(f"train.max_minutes must be >= 0 (0: no time budget), got {minutes}")
    return 60.0 * minutes


def start_time_budget(budget_seconds: float, epoch_checkpoint: EpochCheckpoint, checkpoints: TrainingCheckpoints,
                      resume: ResumePoint, elapsed_fraction: tf.Variable | None = None) -> TimeBudget:
    """The `TimeBudget` of a run that may resume: `reached` from the start when the work dir's history (and the
    resumed mid-epoch checkpoint) already spent the budget, so that a rerun trains no more."""
    budget = TimeBudget(budget_seconds, epoch_checkpoint.train_seconds, elapsed_fraction)
    spent = checkpoints.train_seconds() + resume.seconds
    if spent >= budget_seconds:
        logging.info("time budget of %.1f min already spent (%.1f s): no more training", budget_seconds / 60, spent)
        budget.reached = True
    return budget


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training after `max_consecutive` skipped (non-finite) steps in a row, with a clear message.

    The model skips each such update itself (weights stay finite); this only decides when to give up.
    """

    def __init__(self, max_consecutive: int):
        super().__init__()
        self.max_consecutive = max_consecutive
        self.consecutive = 0
        self.total = 0
        self._last = 0.0
        self.stopped_reason: str | None = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # The model's counter restarts every epoch (at 0, or where a mid-epoch checkpoint left it).
        self._last = _metric_value(self.model, "non_finite_steps")

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        count = float((logs or {}).get("non_finite_steps", self._last))
        if count > self._last:
            self.consecutive += 1
            self.total += int(round(count - self._last))
            logging.warning("non-finite loss or gradients at step %d: update skipped (%d in a row, %d in all)",
                            batch, self.consecutive, self.total)
        else:
            self.consecutive = 0
        self._last = count
        if self.consecutive >= self.max_consecutive:
            self.stopped_reason = (
                f"stopping: {self.consecutive} consecutive non-finite losses; the last checkpoint holds finite "
                "weights. Check the data (features, transcripts) or lower the learning rate."
            )
            logging.error(self.stopped_reason)
            self.model.stop_training = True


def _metric_value(model: keras.Model, name: str) -> float:
    """The current value of `model`'s metric `name`, 0 if it has none."""
    for metric in model.metrics:
        if metric.name == name:
            return float(metric.result())
    return 0.0
