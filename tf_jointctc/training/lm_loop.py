"""Training the character language model (`jointctc-train-lm`, issue 13): text -> sentences of label ids ->
`model.fit` of a `CharacterLanguageModel`, epoch by epoch, with the recognizer's checkpoints (SIGKILL-safe,
resumable at epoch ends and, with `train.checkpoint_every_steps`, inside an epoch), history and TensorBoard.

An epoch is a pass over the text (`train.steps_per_epoch = 0`) or N updates; either way batch k of the run is
the same whenever it is built (`data.lm_batches`), so a resumed run sees the batches it would have seen. Each
epoch's logs carry `val_bits_per_char` (dev bits per character: labels and eos, weighted by characters) and
`dev_perplexity` (per character); the best checkpoint is the lowest dev bits per character. With
`train.max_minutes` training ends when that much wall time is spent, as jointctc-train's does
(`callbacks.TimeBudget`; the cosine schedule follows the budget).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import keras
import ml_collections
import tensorflow as tf
from absl import logging

from tf_jointctc.data.lm_batches import batches_per_epoch, make_lm_dataset
from tf_jointctc.data.lm_text import LMText, read_lm_text
from tf_jointctc.language_model import build_language_model
from tf_jointctc.model import make_optimizer
from tf_jointctc.text import Vocabulary
from tf_jointctc.training import callbacks as cb
from tf_jointctc.training import workdir as wd
from tf_jointctc.training.checkpoint import TrainingCheckpoints
from tf_jointctc.training.errors import NoUsableDataError
from tf_jointctc.training.progress import fit_verbosity
from tf_jointctc.training.resume import ResumePoint, fit_segments

BEST_METRIC = "val_bits_per_char"


class _DevPerplexity(keras.callbacks.Callback):
    """Adds `dev_perplexity = 2 ** val_bits_per_char` to an epoch's logs (before they are checkpointed)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None and BEST_METRIC in logs:
            logs["dev_perplexity"] = float(2.0 ** float(logs[BEST_METRIC]))


def read_sentences(sources: str, vocab: Vocabulary, max_length: int, what: str) -> tuple[list[list[int]], dict]:
    """The sentences of comma-separated `sources` with at most `max_length` labels, and a summary of what was
    read and skipped. Raises NoUsableDataError if none is left."""
    paths = [s.strip() for s in str(sources).split(",") if s.strip()]
    if not paths:
        raise NoUsableDataError(f"no {what} text given (config.data.{what})")
    text: LMText = read_lm_text(paths, vocab)
    kept = [s for s in text.sentences if len(s) <= max_length]
    skipped = {**text.skipped, **({"longer_than_max_length": len(text.sentences) - len(kept)}
                                  if len(kept) < len(text.sentences) else {})}
    if not kept:
        raise NoUsableDataError(f"no usable sentence in the {what} text {paths} (skipped: {skipped})")
    summary = {"sentences": len(kept), "characters": sum(len(s) for s in kept), "lines": text.num_lines,
               "skipped": skipped}
    logging.info("%s text: %s", what, summary)
    return kept, summary


def train_lm(
    config: ml_collections.ConfigDict,
    workdir: str,
    verbose: int | str | None = None,
    on_resume: Callable[[ResumePoint], None] | None = None,
) -> dict:
    """Trains the LM of `config` (`config.lm_base_config`) in `workdir`, resuming from its newest checkpoint;
    returns the summary that jointctc-train-lm prints as JSON.

    Raises:
      NoUsableDataError: the train or dev text holds no usable sentence.
    """
    started = time.time()
    verbose = fit_verbosity(verbose, sys.stdout.isatty())
    os.makedirs(workdir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    vocab = Vocabulary()
    wd.save_config(workdir, config)
    wd.save_vocab(workdir, vocab)
    max_length = int(config.data.max_length)
    train_sentences, train_summary = read_sentences(config.data.train, vocab, max_length, "train")
    dev_sentences, dev_summary = read_sentences(config.data.dev, vocab, max_length, "dev")

    batch_size = int(config.train.batch_size)
    steps_per_epoch = int(config.train.steps_per_epoch) or batches_per_epoch(len(train_sentences), batch_size)
    budget_seconds = cb.budget_seconds(config.train)
    model = build_language_model(config.model, vocab)
    # The spent fraction of the time budget, which a cosine schedule follows too (callbacks.TimeBudget).
    elapsed_fraction = tf.Variable(0.0, trainable=False, name="elapsed_fraction") if budget_seconds else None
    optimizer = make_optimizer(config.optimizer, total_steps=config.train.epochs * steps_per_epoch,
                               elapsed_fraction=elapsed_fraction)
    model.compile(optimizer=optimizer)
    optimizer.build(model.trainable_variables)

    checkpoints = TrainingCheckpoints(workdir, model, optimizer, best_metric=BEST_METRIC)
    resume = checkpoints.restore()
    if resume.path is not None and on_resume is not None:
        on_resume(resume)

    def batches(first: int, count: int):
        return make_lm_dataset(train_sentences, batch_size=batch_size, sos_id=vocab.sos_id, eos_id=vocab.eos_id,
                               pad_id=vocab.blank_id, seed=config.seed, first_batch=first, num_batches=count)

    dev = cb.validation_dataset(make_lm_dataset(dev_sentences, batch_size=batch_size, sos_id=vocab.sos_id,
                                                eos_id=vocab.eos_id, pad_id=vocab.blank_id, first_batch=None))
    epoch_checkpoint = cb.EpochCheckpoint(checkpoints, every_steps=int(config.train.get("checkpoint_every_steps", 0)),
                                          steps_per_epoch=steps_per_epoch, resume=resume)
    callbacks = [
        _DevPerplexity(),  # before the checkpoint writes the epoch's logs to the history
        epoch_checkpoint,
        keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard"), update_freq="epoch", profile_batch=0),
    ]
    budget = None
    if budget_seconds:
        budget = cb.start_time_budget(budget_seconds, epoch_checkpoint, checkpoints, resume, elapsed_fraction)
        callbacks.append(budget)
    for segment in fit_segments(resume, config.train.epochs, one_call_per_epoch=True):
        if budget is not None and budget.reached:
            break
        first = segment.first_epoch * steps_per_epoch + segment.start_batch
        model.fit(batches(first, steps_per_epoch - segment.start_batch), validation_data=dev,
                  epochs=segment.stop_epoch, initial_epoch=segment.first_epoch, callbacks=callbacks, verbose=verbose)

    history = checkpoints.history()
    last = history[-1] if history else {}
    return {
        "workdir": workdir,
        "epochs": len(history),
        "loss": last.get("loss"),  # the last epoch's mean cross-entropy in nats per label
        "bits_per_char": last.get("bits_per_char"),
        "dev_bits_per_char": last.get(BEST_METRIC),
        "dev_perplexity": last.get("dev_perplexity"),
        "best_dev_bits_per_char": min((h[BEST_METRIC] for h in history if BEST_METRIC in h), default=None),
        "train_sentences": train_summary["sentences"],
        "train_characters": train_summary["characters"],
        "dev_sentences": dev_summary["sentences"],
        "skipped": {"train": train_summary["skipped"], "dev": dev_summary["skipped"]},
        "train_seconds": last.get("train_seconds"),
        "time_budget_reached": bool(budget is not None and budget.reached),
        "seconds": round(time.time() - started, 1),
    }
