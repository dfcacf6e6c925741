"""The tf.data input pipeline: TFRecord shards -> padded batches of features and labels.

parse -> (training: shuffle, then an optional per-pass augmentation such as `data.train_noise`) -> batch (training:
optionally bucketed by length) -> features per batch -> prefetch.
Features are computed inside the pipeline from the batched waveform with `features.FeatureExtractor`, the same
layer the exported model runs, so training and serving cannot disagree.

With a feature cache (`cached_utterance_features`, `data.cache_features`), training computes each utterance's
features once, in the first pass, and every later pass shuffles and batches them from memory:
parse -> features per utterance -> in-memory cache -> shuffle -> batch (optionally bucketed) -> prefetch.

A batch is the dict of docs/interfaces.md:
  features        float32 [B, T, 120]  zero past feature_lengths (not CMVN-normalized); 3 x the extractor's mel bins
  feature_lengths int32   [B]
  labels          int32   [B, U]       ids 1..K, padded with 0
  label_lengths   int32   [B]
  ids             string  [B]
and, on request, `texts` string [B] (normalized references), `waveform` float32 [B, S] and `num_samples` int32 [B].
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf
from absl import logging

from tf_jointctc import features
from tf_jointctc.data.tfrecord import parse_example

AUTOTUNE = tf.data.AUTOTUNE
# Changes a parsed train utterance given an int64 [2] seed, [pass seed, position in the pass], and the keyword
# `pass_index` (int64 [], 0 for the first pass): the per-pass augmentation of `make_training_stream`
# (`train_noise.noisy_utterance` with its settings bound).
UtteranceAugmentation = Callable[..., dict[str, tf.Tensor]]  # (example, seed, *, pass_index) -> example


def resolve_shards(files: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Shard paths from a folder (its `*.tfrecord`), a glob pattern, a file, or a list of those.

    Folders and patterns expand in sorted order (shard index order); a list keeps its order.

    Raises:
      FileNotFoundError: nothing matches.
    """
    items = [files] if isinstance(files, str | os.PathLike) else list(files)
    paths: list[str] = []
    for item in items:
        item = os.fspath(item)
        if os.path.isdir(item):
            matches = sorted(glob.glob(os.path.join(item, "*.tfrecord")))
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item))
        else:
            matches = [item] if os.path.isfile(item) else []
        if not matches:
            raise FileNotFoundError(f"no TFRecord shards found at {item!r}")
        paths.extend(matches)
    return paths


def bucket_batch_sizes(
    bucket_boundaries: Sequence[int], batch_size: int, max_frames_per_batch: int | None = None
) -> list[int]:
    """Batch size per bucket (len(bucket_boundaries) + 1 of them).

    Without `max_frames_per_batch` every bucket uses `batch_size`. With it, bucket i (frames below
    bucket_boundaries[i]) uses `min(batch_size, max_frames_per_batch // bucket_boundaries[i])`, at least 1; the
    last, unbounded bucket uses the last boundary's size, so its batches can exceed the frame budget.
    """
    if not max_frames_per_batch:
        return [batch_size] * (len(bucket_boundaries) + 1)
    sizes = [max(1, min(batch_size, max_frames_per_batch // max(1, int(b)))) for b in bucket_boundaries]
    return [*sizes, sizes[-1]]


def make_dataset(
    files: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    batch_size: int,
    training: bool,
    shuffle_buffer: int = 2048,
    seed: int = 0,
    bucket_boundaries: Sequence[int] | None = None,
    drop_remainder: bool = False,
    max_frames_per_batch: int | None = None,
    include_waveform: bool = False,
    include_text: bool = False,
    feature_extractor: features.FeatureExtractor | None = None,
) -> tf.data.Dataset:
    """Batches of the dict in the module docstring, from TFRecord shards written by `write_shards`.

    Training: shard order and records are shuffled (buffer `shuffle_buffer`, reshuffled each epoch,
    deterministic given `seed`), then, with `bucket_boundaries` (in feature frames), grouped into length buckets
    before padding. Evaluation (`training=False`): every utterance exactly once, in data set order (shards are
    read interleaved one record at a time, undoing the round-robin of `write_shards`); no shuffling, no
    bucketing and no dropped remainder (the two arguments are ignored).

    Args:
      files: shard paths, a glob pattern, or a folder of shards; keep shard order for evaluation.
      batch_size: utterances per batch (the upper bound when `max_frames_per_batch` is given).
      training: see above.
      shuffle_buffer: records in the shuffle buffer (training).
      seed: seeds the shuffles.
      bucket_boundaries: increasing frame counts; bucket i holds utterances with frames in
        [boundaries[i-1], boundaries[i]) (training).
      drop_remainder: drop incomplete batches (training; per bucket when bucketing).
      max_frames_per_batch: with bucket boundaries, caps batch size times the bucket's upper boundary.
      include_waveform: also give `waveform` [B, S] float32 and `num_samples` [B] int32.
      include_text: also give `texts` [B] string, the normalized reference transcripts.
      feature_extractor: defaults to `features.FeatureExtractor()`.
    """
    paths = resolve_shards(files)
    if not training and (bucket_boundaries or drop_remainder):
        logging.info("evaluation pipeline: ignoring bucket_boundaries and drop_remainder to keep every utterance")
    batches = _raw_batches(
        paths, training=training, seed=seed, shuffle_buffer=shuffle_buffer, batch_size=batch_size,
        bucket_boundaries=bucket_boundaries if training else None, drop_remainder=bool(training and drop_remainder),
        max_frames_per_batch=max_frames_per_batch,
    )
    return _with_features(batches, feature_extractor, include_text=include_text, include_waveform=include_waveform)


def make_training_stream(
    files: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    batch_size: int,
    seed: int = 0,
    start_batch: int = 0,
    shuffle_buffer: int = 2048,
    bucket_boundaries: Sequence[int] | None = None,
    max_frames_per_batch: int | None = None,
    feature_extractor: features.FeatureExtractor | None = None,
    cached_utterances: tf.data.Dataset | None = None,
    augmentation: UtteranceAugmentation | None = None,
) -> tf.data.Dataset:
    """An endless stream of training batches that a resumed run can continue exactly.

    Pass p (p = 0, 1, ...) over the shards is shuffled and bucketed like `make_dataset(training=True)` but
    seeded by `(seed, p)` and the process' global TensorFlow seed (tf.data combines the two; `train` sets the
    global one to `config.seed` first), so batch n of the stream is the same whenever a run builds it. The stream
    starts at batch `start_batch` (a resumed run passes the batches it has already consumed); the skipped
    batches are grouped but never padded into features, so skipping costs a read of the records only.
    Batches are the training dict of the module docstring.

    `cached_utterances`: the `cached_utterance_features` of the same shards. Every pass then shuffles and
    batches those (seeded as above, so still the same stream whenever built, though not the batches of a stream
    without the cache); features are computed once per utterance, in the first pass, skipped batches included
    (that pass fills the cache), and `feature_extractor` is not used (the cache's extractor is).

    `augmentation`: applied to every utterance of a pass before batching (noise drawn anew in each pass,
    `data.train_noise`), seeded by `[pass seed, position in the pass]`, so the stream stays the same whenever
    built; skipped batches then cost the augmentation of their utterances too. It needs the features computed
    per batch: not with `cached_utterances` (ValueError).
    """
    _check_augmentation(augmentation, cached_utterances)
    paths = resolve_shards(files)

    def one_pass(p: tf.Tensor) -> tf.data.Dataset:
        _no_zero_graph_seed()
        return _pass_batches(paths, p, seed=seed, shuffle_buffer=shuffle_buffer, batch_size=batch_size,
                             bucket_boundaries=bucket_boundaries, max_frames_per_batch=max_frames_per_batch,
                             cached_utterances=cached_utterances, augmentation=augmentation)

    batches = tf.data.Dataset.range(2**62).flat_map(one_pass)
    if start_batch:
        batches = batches.skip(int(start_batch))
    return _training_batches(batches, feature_extractor, cached_utterances)


def make_epoch_dataset(
    files: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    epoch: int,
    batch_size: int,
    seed: int = 0,
    start_batch: int = 0,
    repeat: bool = False,
    shuffle_buffer: int = 2048,
    bucket_boundaries: Sequence[int] | None = None,
    max_frames_per_batch: int | None = None,
    feature_extractor: features.FeatureExtractor | None = None,
    cached_utterances: tf.data.Dataset | None = None,
    augmentation: UtteranceAugmentation | None = None,
) -> tf.data.Dataset:
    """The training batches of epoch `epoch` (0-based) when an epoch is one pass over the data: pass `epoch` of
    `make_training_stream` (shuffled and bucketed by `(seed, epoch)` and the global seed), so epoch n is the same
    batches whenever a run builds its dataset, and a run resumed inside it can skip exactly what it has consumed.

    `repeat`: the pass over and over (for strategies that need a fixed number of steps per epoch). The dataset
    starts at batch `start_batch` (after the repetition; skipped batches are never padded into features).
    `cached_utterances`: as in `make_training_stream`; pass the same dataset object to every epoch's call, so
    that the cache filled by the first epoch serves the later ones. `augmentation`: as in `make_training_stream`
    (with `repeat`, every repetition of the pass draws the same).
    """
    _check_augmentation(augmentation, cached_utterances)
    batches = _pass_batches(resolve_shards(files), int(epoch), seed=seed, shuffle_buffer=shuffle_buffer,
                            batch_size=batch_size, bucket_boundaries=bucket_boundaries,
                            max_frames_per_batch=max_frames_per_batch, cached_utterances=cached_utterances,
                            augmentation=augmentation)
    if repeat:
        batches = batches.repeat()
    if start_batch:
        batches = batches.skip(int(start_batch))
    return _training_batches(batches, feature_extractor, cached_utterances)


def cached_utterance_features(
    files: str | os.PathLike | Sequence[str | os.PathLike],
    feature_extractor: features.FeatureExtractor | None = None,
) -> tf.data.Dataset:
    """Every utterance of the shards once, in data set order, with its features, cached in memory.

    Elements: `features` [T, 120] float32 (3 x the extractor's mel bins), `feature_lengths` int32 (= T),
    `labels` [U] int32, `label_lengths` int32, `ids` string. The first full iteration computes the features (per
    utterance, with the same layer as `make_dataset`; padding never changes a valid frame, so they equal the
    batched ones) and fills the cache; every later iteration of this dataset object, or of any dataset built on
    it, reads the cache. An iteration that stops early leaves the cache unfilled (tf.data discards a partial
    cache), which costs time, not results.
    Memory: 4 x 120 bytes per 10 ms frame at 40 mel bins, ~170 MB per hour of audio.
    """
    extractor = feature_extractor if feature_extractor is not None else features.FeatureExtractor()
    feature_dim = _build_extractor(extractor)

    def with_features(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        feats, lengths = extractor(example["waveform"][tf.newaxis], example["num_samples"][tf.newaxis])
        return {
            "features": tf.ensure_shape(feats[0], [None, feature_dim]),
            "feature_lengths": tf.cast(lengths[0], tf.int32),
            "labels": example["labels"],
            "label_lengths": example["label_lengths"],
            "ids": example["id"],
        }

    return _records(resolve_shards(files)).map(_parse).map(
        with_features, num_parallel_calls=AUTOTUNE, deterministic=True
    ).cache()


# Stands in for a global seed of 0 inside the stream's pass function (`_no_zero_graph_seed`).
_SEED_FOR_ZERO = 0x5EED  # any value that is not 0 modulo 2**31 - 1


def _no_zero_graph_seed() -> None:
    """Makes the seeded shuffles of a pass function work under a global seed of 0 (`tf.random.set_seed(0)`, or
    `config.seed` 0 in `train`). Their op seed is a tensor there (it depends on the pass), and tf.data's seeding
    compares `(global seed, op seed)` with `(0, 0)` in Python, which with a first element of 0 asks a symbolic
    tensor for its truth value and fails. Inside the function's own graph (only there) a global seed of 0 is
    replaced by `_SEED_FOR_ZERO`: still one fixed stream per seed."""
    graph = tf.compat.v1.get_default_graph()
    if graph.seed == 0:
        graph.seed = _SEED_FOR_ZERO


def _pass_batches(
    paths: list[str],
    p: Any,
    *,
    seed: int,
    shuffle_buffer: int,
    batch_size: int,
    bucket_boundaries: Sequence[int] | None,
    max_frames_per_batch: int | None,
    cached_utterances: tf.data.Dataset | None = None,
    augmentation: UtteranceAugmentation | None = None,
) -> tf.data.Dataset:
    """Raw batches of training pass `p` (an int or a scalar tensor), shuffled by `(seed, p)` (and the global
    seed: tf.data derives an op's shuffle from both), each utterance through `augmentation` seeded by
    `[pass seed, position]`; with `cached_utterances`, batches of those (features included) instead."""
    pass_seed = p * 1_000_003 + int(seed)
    if cached_utterances is not None:
        return _cached_batches(cached_utterances, seed=pass_seed, shuffle_buffer=shuffle_buffer,
                               batch_size=batch_size, bucket_boundaries=bucket_boundaries,
                               max_frames_per_batch=max_frames_per_batch)
    return _raw_batches(
        paths, training=True, seed=pass_seed, shuffle_buffer=shuffle_buffer, batch_size=batch_size,
        bucket_boundaries=bucket_boundaries, drop_remainder=False, max_frames_per_batch=max_frames_per_batch,
        reshuffle_each_iteration=False, augmentation=augmentation, pass_index=p,
    )


_PADDED_SHAPES = {
    "id": [],
    "text": [],
    "waveform": [None],
    "num_samples": [],
    "labels": [None],
    "label_lengths": [],
}


def _padding_values() -> dict[str, tf.Tensor]:
    return {
        "id": tf.constant(b"", tf.string),
        "text": tf.constant(b"", tf.string),
        "waveform": tf.constant(0.0, tf.float32),
        "num_samples": tf.constant(0, tf.int32),
        "labels": tf.constant(0, tf.int32),
        "label_lengths": tf.constant(0, tf.int32),
    }


def _raw_batches(
    paths: list[str],
    *,
    training: bool,
    seed: Any,
    shuffle_buffer: int,
    batch_size: int,
    bucket_boundaries: Sequence[int] | None,
    drop_remainder: bool,
    max_frames_per_batch: int | None,
    reshuffle_each_iteration: bool = True,
    augmentation: UtteranceAugmentation | None = None,
    pass_index: Any = 0,
) -> tf.data.Dataset:
    """Parsed records -> (`augmentation`, seeded by `[seed, position]`, told `pass_index`) -> padded batches of
    waveforms and labels (no features yet). `seed` and `pass_index` may be tensors."""
    dataset = _records(paths, shuffle_seed=seed if training else None,
                       reshuffle_each_iteration=reshuffle_each_iteration)
    if training and shuffle_buffer > 1:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=reshuffle_each_iteration)
    dataset = dataset.map(_parse, num_parallel_calls=AUTOTUNE, deterministic=True)
    if augmentation is not None:
        pass_seed = tf.cast(seed, tf.int64)
        pass_number = tf.cast(pass_index, tf.int64)
        dataset = dataset.enumerate().map(
            lambda position, example: augmentation(example, tf.stack([pass_seed, position]),
                                                   pass_index=pass_number),
            num_parallel_calls=AUTOTUNE, deterministic=True,
        )
    if training and bucket_boundaries:
        boundaries = _checked_boundaries(bucket_boundaries)
        return dataset.bucket_by_sequence_length(
            element_length_func=lambda element: features.num_frames(element["num_samples"]),
            bucket_boundaries=boundaries,
            bucket_batch_sizes=bucket_batch_sizes(boundaries, batch_size, max_frames_per_batch),
            padded_shapes=_PADDED_SHAPES,
            padding_values=_padding_values(),
            drop_remainder=drop_remainder,
        )
    return dataset.padded_batch(
        batch_size, padded_shapes=_PADDED_SHAPES, padding_values=_padding_values(), drop_remainder=drop_remainder
    )


def _records(paths: list[str], shuffle_seed: Any = None, reshuffle_each_iteration: bool = True) -> tf.data.Dataset:
    """The serialized records of the shards, one from each in turn (data set order: `write_shards` deals them
    round robin); with `shuffle_seed`, the shards' order is shuffled first."""
    dataset = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle_seed is not None and len(paths) > 1:
        dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=reshuffle_each_iteration)
    return dataset.interleave(
        tf.data.TFRecordDataset, cycle_length=len(paths), block_length=1, num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )


def _check_augmentation(augmentation: UtteranceAugmentation | None,
                        cached_utterances: tf.data.Dataset | None) -> None:
    if augmentation is not None and cached_utterances is not None:
        raise ValueError("a per-pass augmentation (data.train_noise, data.speed_perturbation) changes the waveforms "
                         "in every pass, so their features cannot be cached: set data.cache_features=False")


def _checked_boundaries(bucket_boundaries: Sequence[int]) -> list[int]:
    boundaries = [int(b) for b in bucket_boundaries]
    if any(b <= a for a, b in zip(boundaries, boundaries[1:])) or boundaries[0] <= 0:
        raise ValueError(f"bucket_boundaries must be positive and increasing, got {boundaries}")
    return boundaries


def _cached_batches(
    utterances: tf.data.Dataset,
    *,
    seed: Any,
    shuffle_buffer: int,
    batch_size: int,
    bucket_boundaries: Sequence[int] | None,
    max_frames_per_batch: int | None,
) -> tf.data.Dataset:
    """`cached_utterance_features` elements -> shuffled (by `seed`, a tensor or int), optionally bucketed,
    padded training batches of the module docstring's dict."""
    dataset = utterances
    if shuffle_buffer > 1:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    padding = {
        "features": tf.constant(0.0, tf.float32),
        "feature_lengths": tf.constant(0, tf.int32),
        "labels": tf.constant(0, tf.int32),
        "label_lengths": tf.constant(0, tf.int32),
        "ids": tf.constant(b"", tf.string),
    }
    if bucket_boundaries:
        boundaries = _checked_boundaries(bucket_boundaries)
        return dataset.bucket_by_sequence_length(
            element_length_func=lambda element: element["feature_lengths"],
            bucket_boundaries=boundaries,
            bucket_batch_sizes=bucket_batch_sizes(boundaries, batch_size, max_frames_per_batch),
            padding_values=padding,
        )
    return dataset.padded_batch(batch_size, padding_values=padding)


def _training_batches(
    batches: tf.data.Dataset,
    feature_extractor: features.FeatureExtractor | None,
    cached_utterances: tf.data.Dataset | None,
) -> tf.data.Dataset:
    """The training dict of the module docstring: batches of cached utterances already hold their features;
    raw waveform batches get them here."""
    if cached_utterances is not None:
        return batches.prefetch(AUTOTUNE)
    return _with_features(batches, feature_extractor)


def _build_extractor(extractor: features.FeatureExtractor) -> int:
    """Builds the layer eagerly (so nothing is created while tf.data traces a map function); its feature dim."""
    return int(extractor(tf.zeros([1, 400], tf.float32), tf.constant([400], tf.int32))[0].shape[-1])


def _with_features(
    batches: tf.data.Dataset,
    feature_extractor: features.FeatureExtractor | None,
    include_text: bool = False,
    include_waveform: bool = False,
) -> tf.data.Dataset:
    """Padded waveform batches -> the batch dict of the module docstring (features computed per batch)."""
    extractor = feature_extractor if feature_extractor is not None else features.FeatureExtractor()
    feature_dim = _build_extractor(extractor)

    def to_batch(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        feats, lengths = extractor(batch["waveform"], batch["num_samples"])
        out = {
            "features": tf.ensure_shape(feats, [None, None, feature_dim]),
            "feature_lengths": tf.cast(lengths, tf.int32),
            "labels": batch["labels"],
            "label_lengths": batch["label_lengths"],
            "ids": batch["id"],
        }
        if include_text:
            out["texts"] = batch["text"]
        if include_waveform:
            out["waveform"] = batch["waveform"]
            out["num_samples"] = batch["num_samples"]
        return out

    return batches.map(to_batch, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)


def _parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    example = parse_example(serialized)
    example["label_lengths"] = tf.size(example["labels"], out_type=tf.int32)
    return example
