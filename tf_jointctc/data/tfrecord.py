"""TFRecord shards of prepared utterances, and a cache that rebuilds them only when the source changes.

Each record is a `tf.train.Example` with
  id           bytes     utterance id (UTF-8)
  text         bytes     normalized transcript (UTF-8), the reference for scoring
  pcm          bytes     16 kHz mono int16 little-endian samples
  num_samples  int64     number of samples S
  labels       int64[U]  character ids (1..K) of the normalized transcript

Shards are named `shard-00000-of-00004.tfrecord`; utterances are dealt to shards round-robin in data set order,
so reading the shards interleaved one record at a time (what `make_dataset` does for evaluation) gives the
data set order back. `summary.json` beside the shards records counts, skips and the source's fingerprint.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from tf_jointctc import features
from tf_jointctc.data import skips
from tf_jointctc.data.audio import SAMPLE_RATE, AudioError, read_audio
from tf_jointctc.data.manifest import Utterance, fingerprint, read_dataset
from tf_jointctc.data.skips import SkipReport
from tf_jointctc.text import NormalizationReport, Vocabulary, ctc_min_frames, normalize

FORMAT_VERSION = 1
SUMMARY_NAME = "summary.json"
_CHUNK = 64  # utterances decoded concurrently before their records are written


def shard_name(index: int, num_shards: int) -> str:
    return f"shard-{index:05d}-of-{num_shards:05d}.tfrecord"


def encoder_frames(num_frames: int, subsampling: int) -> int:
    """Encoder frames L = ceil(T / subsampling) of T feature frames, `subsampling` being the encoder's time
    reduction (`layers.encoder.time_reduction`, from a config: `config.encoder_time_reduction`; the encoder's
    nested ceilings, one per stacking or halving stage, compose to this)."""
    if int(subsampling) < 1:
        raise ValueError(f"subsampling must be a positive integer, got {subsampling}")
    return -(-int(num_frames) // int(subsampling))


def serialize_example(utt_id: str, text: str, pcm: np.ndarray, labels: Sequence[int]) -> bytes:
    """One record (see the module docstring). pcm: int16 [S]; labels: ids [U]."""
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"pcm must be int16 [S], got {pcm.dtype} {pcm.shape}")

    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _ints(values: Sequence[int]) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))

    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "id": _bytes(utt_id.encode("utf-8")),
                "text": _bytes(text.encode("utf-8")),
                "pcm": _bytes(pcm.astype("<i2").tobytes()),
                "num_samples": _ints([pcm.shape[0]]),
                "labels": _ints(labels),
            }
        )
    )
    return example.SerializeToString()


_FEATURE_SPEC = {
    "id": tf.io.FixedLenFeature([], tf.string),
    "text": tf.io.FixedLenFeature([], tf.string),
    "pcm": tf.io.FixedLenFeature([], tf.string),
    "num_samples": tf.io.FixedLenFeature([], tf.int64),
    "labels": tf.io.VarLenFeature(tf.int64),
}


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses one serialized record (scalar string tensor; works inside `tf.data.Dataset.map`).

    Returns:
      dict with `id` string [], `text` string [], `waveform` float32 [S] in [-1, 1) (pcm / 32768),
      `num_samples` int32 [], `labels` int32 [U].
    """
    parsed = tf.io.parse_single_example(serialized, _FEATURE_SPEC)
    pcm = tf.io.decode_raw(parsed["pcm"], tf.int16, little_endian=True)
    return {
        "id": parsed["id"],
        "text": parsed["text"],
        "waveform": tf.cast(pcm, tf.float32) / 32768.0,
        "num_samples": tf.cast(parsed["num_samples"], tf.int32),
        "labels": tf.cast(tf.sparse.to_dense(parsed["labels"]), tf.int32),
    }


def write_shards(
    utterances: Sequence[Utterance],
    out_dir: str,
    vocab: Vocabulary,
    *,
    num_shards: int,
    max_seconds: float | None,
    subsampling: int | None,
    report: SkipReport | None = None,
    num_workers: int = 2,
    extra_summary: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Normalizes, encodes, decodes and writes utterances into `num_shards` TFRecord files in `out_dir`.

    An utterance is skipped (and counted in `report`) if its transcript is empty after normalization
    (`empty_transcript`), its audio fails `read_audio` (that error's reason, `too_long_audio` for longer than
    `max_seconds`), or it has too few encoder frames for its labels (`labels_too_long_for_ctc`: with
    T = features.num_frames(S) and L = encoder_frames(T, subsampling), L < ctc_min_frames(labels)).

    Args:
      utterances: what `read_dataset` returned.
      out_dir: created if missing; existing shards of the same names are overwritten.
      vocab: encodes the normalized transcripts.
      num_shards: number of shard files (at most one per utterance, at least 1).
      max_seconds: longest audio kept, or None for no limit.
      subsampling: the encoder's total time reduction (feature frames per encoder frame,
        `config.encoder_time_reduction(config)`); None keeps
        utterances whatever their label count (evaluation: an utterance a CTC model cannot emit is scored, not dropped).
      report: receives the skips (may already hold the reader's).
      num_workers: threads decoding audio.
      extra_summary: merged into the summary (e.g. the source fingerprint).

    Returns:
      The summary, also written to `out_dir/summary.json` (shard file names relative to `out_dir`).
    """
    report = report if report is not None else SkipReport()
    started = time.monotonic()
    num_shards = max(1, min(int(num_shards), len(utterances)))
    os.makedirs(out_dir, exist_ok=True)
    names = [shard_name(i, num_shards) for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(os.path.join(out_dir, name)) for name in names]
    shard_sizes = [0] * num_shards
    norm_report = NormalizationReport()
    kept_frames: list[int] = []
    kept_labels: list[int] = []
    total_samples = 0
    try:
        for utt, normalized, labels, result in _decoded(
            utterances, vocab, norm_report, report, max_seconds, num_workers
        ):
            if isinstance(result, AudioError):
                report.add(result.reason, utt.id, result.message)
                continue
            frames = int(features.num_frames(int(result.shape[0])))
            needed = ctc_min_frames(labels)
            available = encoder_frames(frames, subsampling) if subsampling is not None else needed
            if available < needed:
                report.add(
                    skips.LABELS_TOO_LONG_FOR_CTC,
                    utt.id,
                    f"{len(labels)} labels need {needed} encoder frames, audio gives {available}",
                )
                continue
            shard = len(kept_frames) % num_shards
            writers[shard].write(serialize_example(utt.id, normalized, result, labels))
            shard_sizes[shard] += 1
            kept_frames.append(frames)
            kept_labels.append(len(labels))
            total_samples += int(result.shape[0])
    finally:
        for writer in writers:
            writer.close()
    logging.info("transcript normalization: %s", norm_report.summary())
    report.log(prefix=f"preparing {(extra_summary or {}).get('source_path', out_dir)}")
    summary: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "num_input": len(utterances),
        "num_utterances": len(kept_frames),
        "num_skipped": len(utterances) - len(kept_frames),
        "skips": report.as_dict(),
        "total_seconds": total_samples / SAMPLE_RATE,
        "sample_rate": SAMPLE_RATE,
        "max_seconds": max_seconds,
        "subsampling": subsampling,
        "num_shards": num_shards,
        "shards": names,
        "shard_sizes": shard_sizes,
        "num_frames": _stats(kept_frames),
        "num_labels": _stats(kept_labels),
        "normalization": {
            "mapped": dict(norm_report.mapped),
            "dropped": dict(norm_report.dropped),
            "summary": norm_report.summary(),
        },
        "vocabulary": list(vocab.tokens),
        "build_seconds": round(time.monotonic() - started, 3),
    }
    summary.update(extra_summary or {})
    with open(os.path.join(out_dir, SUMMARY_NAME), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
    logging.info(
        "wrote %d of %d utterances (%.1f s of audio) into %d shard(s) in %s",
        summary["num_utterances"],
        summary["num_input"],
        summary["total_seconds"],
        num_shards,
        out_dir,
    )
    return summary


def cache_fingerprint(
    data_path: str, vocab: Vocabulary, *, num_shards: int, max_seconds: float | None, subsampling: int | None
) -> dict[str, Any]:
    """What a cache of `data_path` depends on (see `prepare_dataset`), as its `summary.json` records it."""
    return {
        "format_version": FORMAT_VERSION,
        "source": fingerprint(data_path),
        "vocabulary": list(vocab.tokens),
        "max_seconds": max_seconds,
        "subsampling": subsampling,
        "num_shards": num_shards,
    }


def load_cache(cache_dir: str, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of the complete cache in `cache_dir` if it was built for `wanted` (a `cache_fingerprint`)
    and all its shards exist, else None. Only reads. The summary is `prepare_dataset`'s (shards as absolute
    paths, `cache_dir`, `reused` True)."""
    cache_dir = os.path.abspath(cache_dir)
    existing = _load_summary(cache_dir)
    if existing is None or existing.get("fingerprint") != wanted:
        return None
    shards = [os.path.join(cache_dir, name) for name in existing["shards"]]
    if not all(os.path.isfile(path) for path in shards):
        return None
    return {**existing, "shards": shards, "cache_dir": cache_dir, "reused": True}


def prepare_dataset(
    data_path: str,
    cache_dir: str,
    vocab: Vocabulary,
    *,
    num_shards: int = 4,
    max_seconds: float | None = None,
    subsampling: int | None,
    num_workers: int = 2,
    force: bool = False,
) -> dict[str, Any]:
    """Reads a data set and writes its shards into `cache_dir`, or reuses the shards already there.

    The shards are reused when `cache_dir/summary.json` records the same fingerprint: the same data set files
    (absolute path, size and modification time of the manifest, or of wav.scp/segments/text; audio files are
    not checked), the same vocabulary and the same `max_seconds`, `subsampling` and `num_shards`. Otherwise
    everything is built in a temporary sibling folder that replaces `cache_dir` only once complete, so an
    interrupted build never leaves a partial cache.

    Args:
      data_path: a `.jsonl` manifest or a Kaldi data directory (see `read_dataset`).
      cache_dir: folder of the shards; must be empty, missing, or a previous cache (it holds `summary.json`).
      vocab, num_shards, max_seconds, subsampling, num_workers: see `write_shards`.
      force: rebuild even if the cache is current.

    Returns:
      The summary (see `write_shards`) with `shards` as absolute paths in shard order, `cache_dir`, and
      `reused` (whether existing shards were used).
    """
    cache_dir = os.path.abspath(cache_dir)
    wanted = cache_fingerprint(data_path, vocab, num_shards=num_shards, max_seconds=max_seconds,
                               subsampling=subsampling)
    current = None if force else load_cache(cache_dir, wanted)
    if current is not None:
        logging.info("reusing %d prepared utterances in %s", current["num_utterances"], cache_dir)
        return current
    ours = os.path.isfile(os.path.join(cache_dir, SUMMARY_NAME))
    if os.path.isdir(cache_dir) and not ours and os.listdir(cache_dir):
        raise ValueError(f"cache dir {cache_dir!r} holds files but no {SUMMARY_NAME}; refusing to replace it")
    logging.info("preparing %s into %s", data_path, cache_dir)
    report = SkipReport()
    utterances = read_dataset(data_path, report)
    parent = os.path.dirname(cache_dir)
    os.makedirs(parent, exist_ok=True)
    building = tempfile.mkdtemp(prefix=f".{os.path.basename(cache_dir)}.building-", dir=parent)
    try:
        summary = write_shards(
            utterances,
            building,
            vocab,
            num_shards=num_shards,
            max_seconds=max_seconds,
            subsampling=subsampling,
            report=report,
            num_workers=num_workers,
            extra_summary={"source_path": os.path.abspath(data_path), "fingerprint": wanted},
        )
        _replace_dir(building, cache_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    shards = [os.path.join(cache_dir, name) for name in summary["shards"]]
    return {**summary, "shards": shards, "cache_dir": cache_dir, "reused": False}


def _decoded(
    utterances: Sequence[Utterance],
    vocab: Vocabulary,
    norm_report: NormalizationReport,
    report: SkipReport,
    max_seconds: float | None,
    num_workers: int,
) -> Iterator[tuple[Utterance, str, list[int], np.ndarray | AudioError]]:
    """Yields (utterance, normalized text, labels, int16 pcm or the AudioError) in order; transcripts that are
    empty after normalization are counted in `report` and not decoded."""

    def load(utt: Utterance) -> np.ndarray | AudioError:
        try:
            return read_audio(utt.audio, utt.start, utt.end, SAMPLE_RATE, max_seconds)
        except AudioError as error:
            return error

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        for begin in range(0, len(utterances), _CHUNK):
            todo = []
            for utt in utterances[begin : begin + _CHUNK]:
                normalized = normalize(utt.text, norm_report)
                if not normalized:
                    report.add(skips.EMPTY_TRANSCRIPT, utt.id, f"raw text {utt.text[:40]!r}")
                    continue
                try:
                    labels = vocab.encode(normalized)
                except KeyError as error:  # only with a vocabulary narrower than normalize()'s output
                    report.add(skips.TEXT_NOT_IN_VOCABULARY, utt.id, str(error.args[0]))
                    continue
                todo.append((utt, normalized, labels))
            results = pool.map(load, [item[0] for item in todo])
            for (utt, normalized, labels), result in zip(todo, results):
                yield utt, normalized, labels, result


def _stats(values: list[int]) -> dict[str, Any]:
    """min, max, mean, the `percentiles` a reader looks at, and `quantiles`: the 1st to 99th percentiles (99
    ints, rounded up), from which `training.loop.length_bucket_boundaries` places equal-size length buckets."""
    if not values:
        return {"min": 0, "max": 0, "mean": 0.0, "percentiles": {}, "quantiles": []}
    array = np.asarray(values)
    quantiles = [int(math.ceil(q)) for q in np.percentile(array, np.arange(1, 100))]
    return {
        "min": int(array.min()),
        "max": int(array.max()),
        "mean": float(array.mean()),
        "percentiles": {str(p): quantiles[p - 1] for p in (10, 25, 50, 75, 90, 95, 99)},
        "quantiles": quantiles,
    }


def _load_summary(cache_dir: str) -> dict[str, Any] | None:
    path = os.path.join(cache_dir, SUMMARY_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _replace_dir(source: str, target: str) -> None:
    """Moves the complete `source` folder to `target`, replacing a previous `target` (renames only)."""
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=os.path.dirname(target))
        os.rmdir(old)
        os.rename(target, old)
    os.rename(source, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
