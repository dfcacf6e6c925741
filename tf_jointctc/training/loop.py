"""The whole of a training run: data preparation, CMVN, model, `model.fit` with the callbacks, resumption.

`jointctc-train` is a thin flag wrapper around `train`; other code (the reproduction) calls it directly.
"""

from __future__ import annotations

import os
import time

import keras
import ml_collections
import tensorflow as tf

from tf_jointctc.config import encoder_time_reduction
from tf_jointctc.data import make_dataset, make_training_stream, prepare_dataset
from tf_jointctc.model import build_model, make_optimizer
from tf_jointctc.text import Vocabulary
from tf_jointctc.training import callbacks as cb
from tf_jointctc.training import workdir as wd
from tf_jointctc.training.checkpoint import TrainingCheckpoints
from tf_jointctc.training.strategy import make_strategy, split_cpu


def prepare_data(config: ml_collections.ConfigDict, workdir: str, vocab: Vocabulary) -> dict[str, dict]:
    """The TFRecord caches of the train, dev and (if `train.alignment_data` is set) alignment data:
    {split: prepare_dataset's summary}. Reuses complete caches; several runs that share `data.cache_dir` can
    call this first, one at a time, so that they never build the same cache concurrently."""
    cache_dir = config.data.cache_dir or os.path.join(workdir, "cache")
    sources = {"train": config.data.train, "dev": config.data.dev}
    if config.train.get("alignment_data", ""):
        sources["alignment"] = config.train.alignment_data
    prepared = {}
    for split, data_path in sources.items():
        prepared[split] = prepare_dataset(
            data_path, os.path.join(cache_dir, split), vocab,
            num_shards=1 if split == "alignment" else config.data.num_shards,
            max_seconds=config.data.max_seconds, subsampling=encoder_time_reduction(config),
        )
        if not prepared[split]["num_utterances"]:
            what = "alignment data" if split == "alignment" else f"{split} data"
            raise SystemExit(f"jointctc-train: no usable utterances in {what} {data_path!r}")
    return prepared


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    strategy_name: str = "default",
    cpu_devices: int = 0,
    tpu: str = "",
    verbose: int = 1,
) -> dict:
    """Trains `config` in `workdir` (resuming from its last checkpoint); returns the summary that jointctc-train
    prints as JSON (final losses, dev CER, epochs, utterance counts, seconds)."""

    started = time.time()
    if cpu_devices > 1:
        split_cpu(cpu_devices)
    strategy = make_strategy(strategy_name, tpu)
    is_chief = _is_chief(strategy)
    if not is_chief:  # other workers write to a private folder: only the chief's files count
        workdir = os.path.join(workdir, "workers", str(strategy.cluster_resolver.task_id))
    os.makedirs(workdir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)

    vocab = Vocabulary()
    wd.save_config(workdir, config)
    wd.save_vocab(workdir, vocab)
    prepared = prepare_data(config, workdir, vocab)
    train_shards, dev_shards = prepared["train"]["shards"], prepared["dev"]["shards"]
    cmvn = wd.load_or_compute_cmvn(workdir, make_dataset(train_shards, batch_size=32, training=False))

    steps_per_epoch = int(config.train.get("steps_per_epoch", 0))
    max_frames = int(config.train.get("max_frames_per_batch", 0)) or None
    dev_ds = make_dataset(dev_shards, batch_size=config.train.batch_size, training=False, include_text=True)

    with strategy.scope():
        model = build_model(config.model, config.loss, vocab, cmvn)
        total_steps = config.train.epochs * (steps_per_epoch or _estimated_steps_per_pass(config, prepared["train"]))
        optimizer = make_optimizer(config.optimizer, total_steps=total_steps)
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)

    checkpoints = TrainingCheckpoints(workdir, model, optimizer)
    initial_epoch = checkpoints.restore_latest()

    boundaries = _bucket_boundaries(prepared["train"])
    if steps_per_epoch:
        train_ds = make_training_stream(
            train_shards, batch_size=config.train.batch_size, seed=config.seed,
            start_batch=initial_epoch * steps_per_epoch, shuffle_buffer=config.train.shuffle_buffer,
            bucket_boundaries=boundaries, max_frames_per_batch=max_frames,
        )
    else:
        train_ds = make_dataset(
            train_shards, batch_size=config.train.batch_size, training=True, seed=config.seed,
            shuffle_buffer=config.train.shuffle_buffer, bucket_boundaries=boundaries, max_frames_per_batch=max_frames,
        )

    alignment_ds = None
    if "alignment" in prepared:  # the fixed utterances whose attention alignments are saved
        alignment_ds = make_dataset(prepared["alignment"]["shards"], batch_size=max(1, config.train.alignment_images),
                                    training=False, include_text=True)

    guard = cb.NonFiniteGuard(config.train.max_non_finite_steps)
    callbacks = [
        cb.DevEvaluation(dev_ds, vocab, workdir, num_alignments=config.train.alignment_images,
                         alignment_dataset=alignment_ds),
        cb.EpochCheckpoint(checkpoints),
        keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard"), update_freq="epoch", profile_batch=0),
        guard,
    ]
    fit_kwargs = {"steps_per_epoch": steps_per_epoch} if steps_per_epoch else {}
    if strategy_name in ("multi_worker", "tpu"):
        # Every worker must run the same number of steps (collectives would otherwise wait for a worker that
        # has finished its epoch): shard batches, not files, repeat, and fix the steps per epoch.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_ds = (train_ds if steps_per_epoch else train_ds.repeat()).with_options(options)
        fit_kwargs["steps_per_epoch"] = steps_per_epoch or max(
            1, prepared["train"]["num_utterances"] // config.train.batch_size
        )
        validation_ds = dev_ds.repeat().with_options(options)
        fit_kwargs["validation_steps"] = max(1, prepared["dev"]["num_utterances"] // config.train.batch_size)
    else:
        validation_ds = dev_ds
    if initial_epoch < config.train.epochs:
        model.fit(train_ds, validation_data=validation_ds, epochs=config.train.epochs, initial_epoch=initial_epoch,
                  callbacks=callbacks, verbose=verbose, **fit_kwargs)
    if guard.stopped_reason:
        raise SystemExit(f"jointctc-train: {guard.stopped_reason}")

    history = checkpoints.history()
    last = history[-1] if history else {}
    summary = {
        "workdir": workdir,
        "epochs": len(history),
        "loss": last.get("loss"),
        "ctc_loss": last.get("ctc_loss"),
        "attention_loss": last.get("attention_loss"),
        "attention_accuracy": last.get("attention_accuracy"),
        "val_loss": last.get("val_loss"),
        "dev_cer": last.get("dev_cer"),
        "dev_wer": last.get("dev_wer"),
        "best_dev_cer": min((h["dev_cer"] for h in history if "dev_cer" in h), default=None),
        "non_finite_steps": guard.total,
        "train_utterances": prepared["train"]["num_utterances"],
        "dev_utterances": prepared["dev"]["num_utterances"],
        "seconds": round(time.time() - started, 1),
    }
    return summary


def _estimated_steps_per_pass(config: ml_collections.ConfigDict, summary: dict) -> int:
    """Updates in one pass over the train data (exact without frame-capped batches, which only add some)."""
    return max(1, -(-summary["num_utterances"] // config.train.batch_size))


def _bucket_boundaries(summary: dict) -> list[int]:
    """Length buckets at the training set's frame-count quartiles (and 90th percentile), so that a batch
    holds utterances of similar length and little padding."""
    percentiles = summary["num_frames"].get("percentiles", {})
    return sorted({int(percentiles[p]) + 1 for p in ("25", "50", "75", "90") if p in percentiles})


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)
