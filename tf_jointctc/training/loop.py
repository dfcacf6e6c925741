"""The whole of a training run: data preparation, CMVN, model, `model.fit` with the callbacks, resumption.

`jointctc-train` is a thin flag wrapper around `train`; other code (the reproduction) calls it directly.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from tf_jointctc import features
from tf_jointctc.config import encoder_time_reduction
from tf_jointctc.data import (
    cached_utterance_features,
    make_dataset,
    make_epoch_dataset,
    make_training_stream,
    prepare_dataset,
    speed_perturbation,
)
from tf_jointctc.data.pipeline import UtteranceAugmentation
from tf_jointctc.data.tfrecord import cache_fingerprint
from tf_jointctc.data.train_noise import TrainNoise, babble_bank, noisy_utterance
from tf_jointctc.model import build_model, make_optimizer
from tf_jointctc.text import Vocabulary
from tf_jointctc.training import atomic, shared_cache
from tf_jointctc.training import callbacks as cb
from tf_jointctc.training import workdir as wd
from tf_jointctc.training.checkpoint import TrainingCheckpoints, updates_done
from tf_jointctc.training.errors import ConfigError, NonFiniteLossError, NoUsableDataError
from tf_jointctc.training.progress import fit_verbosity
from tf_jointctc.training.resume import ResumePoint, fit_segments
from tf_jointctc.training.strategy import make_strategy, set_cpu_threads, split_cpu
from tf_jointctc.training.weight_average import AverageWeights, WeightAverage

RUNTIME_FILE = "runtime.json"  # what a run resolved at its start (the encoder's BLSTM computation, GPUs, threads)


def prepare_data(
    config: ml_collections.ConfigDict, workdir: str, vocab: Vocabulary, is_chief: bool = True
) -> dict[str, dict]:
    """The TFRecord caches of the train, dev and (if `train.alignment_data` is set) alignment data:
    {split: prepare_dataset's summary}. Reuses complete caches; several runs that share `data.cache_dir` can
    call this first, one at a time, so that they never build the same cache concurrently.

    With `data.cache_dir` set (a cache that the workers of a multi-worker run share), the chief writes the
    completion marker of `shared_cache` once every cache is complete, and a worker that is not the chief
    (`is_chief=False`) never writes there: it waits for that marker (at most `data.cache_wait_seconds`) and
    reads the chief's caches. With an empty `data.cache_dir` every worker prepares its own `<workdir>/cache`.

    Raises:
      NoUsableDataError: a data set holds no usable utterance.
      SharedCacheTimeoutError: a worker waited longer than `data.cache_wait_seconds` for the chief.
    """
    shared = bool(config.data.cache_dir)
    cache_dir = config.data.cache_dir or os.path.join(workdir, "cache")
    sources = {"train": config.data.train, "dev": config.data.dev}
    if config.train.get("alignment_data", ""):
        sources["alignment"] = config.train.alignment_data
    settings = {
        split: {
            "num_shards": 1 if split == "alignment" else config.data.num_shards,
            "max_seconds": config.data.max_seconds,
            "subsampling": encoder_time_reduction(config),
        }
        for split in sources
    }
    if shared and not is_chief:
        fingerprints = {split: cache_fingerprint(path, vocab, **settings[split]) for split, path in sources.items()}
        prepared = shared_cache.wait_until_ready(cache_dir, fingerprints,
                                                 timeout=float(config.data.get("cache_wait_seconds", 3600.0)))
    else:
        prepared = {
            split: prepare_dataset(data_path, os.path.join(cache_dir, split), vocab, **settings[split])
            for split, data_path in sources.items()
        }
        if shared:
            shared_cache.mark_ready(cache_dir, {split: summary["fingerprint"] for split, summary in prepared.items()})
    for split, data_path in sources.items():
        if not prepared[split]["num_utterances"]:
            what = "alignment data" if split == "alignment" else f"{split} data"
            raise NoUsableDataError(f"no usable utterances in {what} {data_path!r}")
    return prepared


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    strategy_name: str = "default",
    cpu_devices: int = 0,
    tpu: str = "",
    verbose: int | str | None = None,
    on_resume: Callable[[ResumePoint], None] | None = None,
) -> dict:
    """Trains `config` in `workdir` (resuming from its newest checkpoint, which may lie inside an epoch); returns
    the summary that jointctc-train prints as JSON (final losses, dev CER, epochs, updates, utterance counts, seconds).

    Args:
      verbose: `model.fit`'s; None: a progress bar on a terminal, one line per epoch when stdout is redirected
        (`progress.fit_verbosity`).
      on_resume: called with the `ResumePoint` when the run continues from a checkpoint (jointctc-train prints
        its `resuming from ...` line).

    Raises:
      TrainingError: `NoUsableDataError` or `SharedCacheTimeoutError` (data preparation), `NonFiniteLossError`
        (`train.max_non_finite_steps` non-finite losses in a row), `ConfigError` (a setting training cannot
        honour: a time budget under several workers, a weight-average decay outside [0, 1), negative threads,
        bad `data.train_noise` or `data.speed_perturbation` settings, or either with cached features, fewer than one
        mel bin, or a work dir whose CMVN statistics are of other mel bins than `data.num_mel_bins`).
    """

    started = time.time()
    verbose = fit_verbosity(verbose, sys.stdout.isatty())
    budget_seconds = cb.budget_seconds(config.train)
    if budget_seconds and strategy_name in ("multi_worker", "tpu"):
        raise ConfigError(f"train.max_minutes needs one process: with --strategy {strategy_name} the workers' clocks "
                         "would give them different learning rates")
    threads = set_cpu_threads(int(config.train.get("intra_op_threads", 0)),
                              int(config.train.get("inter_op_threads", 0)))
    ema_decay = float(config.train.get("ema_decay", 0.0))
    if not 0.0 <= ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1) (0: no weight average), got {ema_decay}")
    noise_settings = train_noise_settings(config)
    speed_factors = speed_perturbation_factors(config)
    extractor = feature_extractor(config.data)
    if cpu_devices > 1:
        split_cpu(cpu_devices)
    strategy = make_strategy(strategy_name, tpu)
    is_chief = _is_chief(strategy)
    if not is_chief:  # other workers write to a private folder: only the chief's files count
        workdir = os.path.join(workdir, "workers", str(strategy.cluster_resolver.task_id))
    os.makedirs(workdir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    _check_resumable_features(workdir, extractor)

    vocab = Vocabulary()
    wd.save_config(workdir, config)
    wd.save_vocab(workdir, vocab)
    prepared = prepare_data(config, workdir, vocab, is_chief=is_chief)
    train_shards, dev_shards = prepared["train"]["shards"], prepared["dev"]["shards"]
    cmvn = wd.load_or_compute_cmvn(workdir, make_dataset(train_shards, batch_size=32, training=False,
                                                         feature_extractor=extractor))

    steps_per_epoch = int(config.train.get("steps_per_epoch", 0))
    max_frames = int(config.train.get("max_frames_per_batch", 0)) or None
    dev_ds = cb.validation_dataset(
        make_dataset(dev_shards, batch_size=config.train.batch_size, training=False, include_text=True,
                     feature_extractor=extractor)
    )

    with strategy.scope():
        model = build_model(config.model, config.loss, vocab, cmvn)
        total_steps = config.train.epochs * (steps_per_epoch or _estimated_steps_per_pass(config, prepared["train"]))
        # The spent fraction of the time budget, which a cosine schedule follows too (callbacks.TimeBudget).
        elapsed_fraction = tf.Variable(0.0, trainable=False, name="elapsed_fraction") if budget_seconds else None
        optimizer = make_optimizer(config.optimizer, total_steps=total_steps, elapsed_fraction=elapsed_fraction)
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
        weight_average = WeightAverage(model, ema_decay) if ema_decay else None
    encoder_implementation = _record_runtime(workdir, config, model, threads)

    checkpoints = TrainingCheckpoints(workdir, model, optimizer, weight_average=weight_average)
    resume = checkpoints.restore()
    if resume.path is not None and on_resume is not None:
        on_resume(resume)

    # Under multi_worker and tpu every worker must run the same number of steps (collectives would otherwise
    # wait for a worker that has finished its epoch): shard batches, not files, repeat, and fix the steps.
    distributed = strategy_name in ("multi_worker", "tpu")
    options = None
    if distributed:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    fixed_steps = steps_per_epoch or (
        max(1, prepared["train"]["num_utterances"] // config.train.batch_size) if distributed else 0
    )
    boundaries = length_bucket_boundaries(prepared["train"], config.train.get("length_buckets", 0))
    cached_utterances = None
    if config.data.get("cache_features", False):
        cached_utterances = cached_utterance_features(train_shards, extractor)
        logging.info("caching the features of %d train utterances in memory (~%.0f MB) during the first pass",
                     prepared["train"]["num_utterances"],
                     _feature_cache_megabytes(prepared["train"], extractor.feature_dim))

    augmentation = train_augmentation(
        train_noise_augmentation(noise_settings, train_shards, prepared["train"]["num_utterances"]),
        speed_factors, encoder_time_reduction(config))
    shuffle_buffer = shuffle_buffer_size(config.train.shuffle_buffer, prepared["train"]["num_utterances"])

    def train_data(epoch: int, start_batch: int) -> tf.data.Dataset:
        """Epoch `epoch`'s batches (0-based) from its batch `start_batch` on, the same whenever built: with
        `train.steps_per_epoch`, the endless stream from there; else pass `epoch`, shuffled by (seed, epoch)."""
        if steps_per_epoch:
            dataset = make_training_stream(
                train_shards, batch_size=config.train.batch_size, seed=config.seed,
                start_batch=epoch * steps_per_epoch + start_batch, shuffle_buffer=shuffle_buffer,
                bucket_boundaries=boundaries, max_frames_per_batch=max_frames, cached_utterances=cached_utterances,
                augmentation=augmentation, feature_extractor=extractor,
            )
        else:
            dataset = make_epoch_dataset(
                train_shards, epoch=epoch, batch_size=config.train.batch_size, seed=config.seed,
                start_batch=start_batch, repeat=distributed, shuffle_buffer=shuffle_buffer,
                bucket_boundaries=boundaries, max_frames_per_batch=max_frames, cached_utterances=cached_utterances,
                augmentation=augmentation, feature_extractor=extractor,
            )
        return dataset.with_options(options) if options is not None else dataset

    alignment_ds = None
    if "alignment" in prepared:  # the fixed utterances whose attention alignments are saved
        alignment_ds = make_dataset(prepared["alignment"]["shards"], batch_size=max(1, config.train.alignment_images),
                                    training=False, include_text=True, feature_extractor=extractor)

    guard = cb.NonFiniteGuard(config.train.max_non_finite_steps)
    epoch_checkpoint = cb.EpochCheckpoint(checkpoints, every_steps=int(config.train.get("checkpoint_every_steps", 0)),
                                          steps_per_epoch=fixed_steps, resume=resume)
    callbacks = [
        *([AverageWeights(weight_average)] if weight_average is not None else []),  # before any checkpoint save
        cb.DevEvaluation(dev_ds, vocab, workdir, num_alignments=config.train.alignment_images,
                         alignment_dataset=alignment_ds, weight_average=weight_average),
        epoch_checkpoint,
        keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard"), update_freq="epoch", profile_batch=0),
        guard,
    ]
    budget = None
    if budget_seconds:
        budget = cb.start_time_budget(budget_seconds, epoch_checkpoint, checkpoints, resume, elapsed_fraction)
        callbacks.append(budget)
    validation_kwargs = {}
    validation_ds = dev_ds
    if distributed:
        validation_ds = dev_ds.repeat().with_options(options)
        validation_kwargs["validation_steps"] = max(1, prepared["dev"]["num_utterances"] // config.train.batch_size)
    # One `fit` per epoch when epochs are passes (each its own dataset), else one for all (after one for the rest
    # of an epoch that a mid-epoch checkpoint left unfinished).
    for segment in fit_segments(resume, config.train.epochs, one_call_per_epoch=not steps_per_epoch):
        if budget is not None and budget.reached:
            break
        steps = {"steps_per_epoch": fixed_steps - segment.start_batch} if fixed_steps else {}
        model.fit(train_data(segment.first_epoch, segment.start_batch), validation_data=validation_ds,
                  epochs=segment.stop_epoch, initial_epoch=segment.first_epoch, callbacks=callbacks, verbose=verbose,
                  **steps, **validation_kwargs)
        if guard.stopped_reason:
            raise NonFiniteLossError(guard.stopped_reason)

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
        "train_seconds": last.get("train_seconds"),
        "updates": updates_done(workdir),
        "time_budget_reached": bool(budget is not None and budget.reached),
        "train_utterances": prepared["train"]["num_utterances"],
        "dev_utterances": prepared["dev"]["num_utterances"],
        "encoder_implementation": encoder_implementation,
        "seconds": round(time.time() - started, 1),
    }
    return summary


def _record_runtime(workdir: str, config: ml_collections.ConfigDict, model: keras.Model,
                    threads: dict[str, int]) -> str:
    """Logs, and writes to `<workdir>/runtime.json`, what this run resolved at its start: the encoder's BLSTM
    computation (`model.encoder.implementation = "auto"` picks it by the visible GPUs), those GPUs and the CPU
    thread pools (`set_cpu_threads`: {"intra_op", "inter_op"}, 0 = TensorFlow's default). Returns the
    computation ("fused" or "keras")."""
    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    requested = str(config.model.encoder.get("implementation", "fused"))
    resolved = model.encoder.implementation
    logging.info("encoder BLSTMs: %s (model.encoder.implementation=%r, %d GPU(s) visible); CPU threads %s", resolved,
                 requested, len(gpus), threads)
    atomic.write_json(os.path.join(workdir, RUNTIME_FILE),
                      {"encoder_implementation": resolved, "requested_encoder_implementation": requested, "gpus": gpus,
                       "cpu_threads": threads})
    return resolved


def _estimated_steps_per_pass(config: ml_collections.ConfigDict, summary: dict) -> int:
    """Updates in one pass over the train data (exact without frame-capped batches, which only add some)."""
    return max(1, -(-summary["num_utterances"] // config.train.batch_size))


def _check_resumable_features(workdir: str, extractor: features.FeatureExtractor) -> None:
    """Raises ConfigError, before the rerun writes anything, when the work dir's CMVN statistics are of another
    feature size than `data.num_mel_bins` gives: its model could not read these features."""
    path = os.path.join(workdir, wd.CMVN_FILE)
    if not os.path.exists(path):
        return
    dim = features.CMVNStats.load(path).dim
    if dim != extractor.feature_dim:
        raise ConfigError(f"{workdir}'s CMVN statistics are of {dim} features per frame, and data.num_mel_bins "
                          f"{extractor.num_mel_bins} gives {extractor.feature_dim}: "
                          "resume a work dir with the mel bins it was trained with, or start a new one")


def feature_extractor(data_config: ml_collections.ConfigDict) -> features.FeatureExtractor:
    """The features a recognizer trains on: `data.num_mel_bins` log-mels with deltas and delta-deltas, `[batch,
    frames, 3 * num_mel_bins]`. Raises ConfigError for fewer than one mel bin."""
    bins = int(data_config.get("num_mel_bins", features.NUM_MEL_BINS))
    if bins < 1:
        raise ConfigError(f"data.num_mel_bins must be >= 1, got {bins}")
    return features.FeatureExtractor(num_mel_bins=bins)


def _feature_cache_megabytes(summary: dict, feature_dim: int) -> float:
    """Memory that `data.cache_features` takes for a prepared data set: `feature_dim` float32 per 10 ms frame."""
    return summary.get("total_seconds", 0.0) * 100 * feature_dim * 4 / 2**20


def train_noise_settings(config: ml_collections.ConfigDict) -> TrainNoise:
    """`data.train_noise`, checked before any work.

    Raises:
      ConfigError: bad settings, or noise drawn (a positive probability) with the features cached
        (`data.cache_features`), which would keep the first pass' noise.
    """
    try:
        settings = TrainNoise.from_config(config.data.get("train_noise"))
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if settings.enabled and config.data.get("cache_features", False):
        raise ConfigError("data.train_noise mixes new noise into the waveforms in every pass, so their features "
                          "cannot be cached: set data.cache_features=False")
    return settings


def train_noise_augmentation(settings: TrainNoise, train_shards: list[str],
                             num_utterances: int) -> UtteranceAugmentation | None:
    """The training stream's per-pass augmentation for `settings` (None when its probability is 0), with its
    babble bank read from the train shards."""
    if not settings.enabled:
        return None
    bank = babble_bank(train_shards, num_utterances, settings.babble_bank) if settings.uses_babble else None
    logging.info("train noise drawn anew each pass: %s%s", settings,
                 f", babble bank of {len(bank.lengths)} train utterances" if bank is not None else "")
    return functools.partial(noisy_utterance, settings=settings, bank=bank)


def speed_perturbation_factors(config: ml_collections.ConfigDict) -> tuple[float, ...]:
    """`data.speed_perturbation`, checked before any work.

    Raises:
      ConfigError: a factor outside [0.5, 2], or a perturbation (a factor other than 1) with the features cached
        (`data.cache_features`), which would keep the first pass' speeds.
    """
    try:
        factors = speed_perturbation.checked_factors(config.data.get("speed_perturbation", (1.0,)))
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if speed_perturbation.is_enabled(factors) and config.data.get("cache_features", False):
        raise ConfigError("data.speed_perturbation draws a new speed for every utterance in every pass, so their "
                          "features cannot be cached: set data.cache_features=False")
    return factors


def train_augmentation(noise: UtteranceAugmentation | None, speed_factors: tuple[float, ...],
                       subsampling: int) -> UtteranceAugmentation | None:
    """The training stream's per-pass augmentation: speed perturbation by `speed_factors` (none when all are 1;
    `subsampling` feature frames per encoder frame), then `noise` (`train_noise_augmentation`'s). None: neither."""
    if not speed_perturbation.is_enabled(speed_factors):
        return noise
    logging.info("speed perturbation drawn anew each pass from factors %s", list(speed_factors))
    speed = functools.partial(speed_perturbation.speed_perturbed_utterance, factors=speed_factors,
                              subsampling=subsampling)
    if noise is None:
        return speed
    return lambda example, seed, pass_index=0: noise(speed(example, seed, pass_index=pass_index), seed,
                                                     pass_index=pass_index)


def shuffle_buffer_size(setting: int, num_utterances: int) -> int:
    """`train.shuffle_buffer` as a buffer size: 0 is the whole train split (at least 1); N > 0 is N."""
    if setting < 0:
        raise ValueError(f"train.shuffle_buffer must be >= 0, got {setting}")
    return int(setting) if setting else max(1, int(num_utterances))


def length_bucket_boundaries(summary: dict, buckets: int = 0) -> list[int]:
    """Length-bucket boundaries in feature frames, so that a batch holds utterances of similar length and little
    padding. `buckets` 0 (`train.length_buckets`' default): at the training set's frame-count quartiles and 90th
    percentile (5 buckets). N >= 2: N buckets of about equal size, at its (100 k / N)th percentiles (k = 1 .. N -
    1) interpolated between the prepared summary's whole-percent `quantiles`. Equal boundaries merge."""
    frames = summary["num_frames"]
    if not buckets:
        percentiles = frames.get("percentiles", {})
        return sorted({int(percentiles[p]) + 1 for p in ("25", "50", "75", "90") if p in percentiles})
    if buckets < 2:
        raise ConfigError(f"train.length_buckets must be 0 or >= 2, got {buckets}")
    quantiles = frames.get("quantiles")
    if quantiles is None:
        raise ConfigError("train.length_buckets > 0 needs the train split's frame-count quantiles, which this "
                          "cache's summary.json (written by an older version) lacks: delete the cache to rebuild it")
    if not quantiles:
        return []
    targets = [100.0 * k / buckets for k in range(1, buckets)]
    return sorted({int(q) + 1 for q in np.interp(targets, np.arange(1, 100), quantiles)})


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)
