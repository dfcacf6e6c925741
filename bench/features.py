"""Throughput of FeatureExtractor inside a tf.data pipeline.

Synthetic random waveforms of 4-12 s (numpy, fixed seed) up to `--seconds` of audio, padded batches of 16,
FeatureExtractor mapped in the pipeline; after a warm-up pass over a few batches, times one full iteration over
the dataset. Prints exactly one JSON line on stdout.

    python bench/features.py [--seconds 600] [--threads 1] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import tf_jointctc  # noqa: F401  its TensorFlow settings, before TensorFlow loads (tf_jointctc/runtime.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tf_jointctc.features import SAMPLE_RATE, FeatureExtractor  # noqa: E402


def synthetic_waveforms(total_seconds: float, seed: int = 0) -> list[np.ndarray]:
    """Random waveforms of 4-12 s each until `total_seconds` of audio are reached."""
    rng = np.random.default_rng(seed)
    waves: list[np.ndarray] = []
    collected = 0.0
    while collected < total_seconds:
        seconds = float(rng.uniform(4.0, 12.0))
        samples = int(seconds * SAMPLE_RATE)
        waves.append((0.1 * rng.standard_normal(samples)).astype(np.float32))
        collected += samples / SAMPLE_RATE
    return waves


def build_dataset(waves: list[np.ndarray], batch_size: int, threads: int) -> tf.data.Dataset:
    lengths = np.array([len(w) for w in waves], np.int64)
    ragged = tf.RaggedTensor.from_row_lengths(np.concatenate(waves), lengths)
    extractor = FeatureExtractor()

    def featurize(waveform: tf.Tensor, num_samples: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return extractor(waveform, num_samples)

    dataset = (
        tf.data.Dataset.from_tensor_slices(ragged)
        .map(lambda w: (w, tf.shape(w, out_type=tf.int32)[0]))
        .padded_batch(batch_size)
        .map(featurize, num_parallel_calls=1)
        .prefetch(1)
    )
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = threads
    return dataset.with_options(options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="total synthetic audio, seconds")
    parser.add_argument("--threads", type=int, default=1, help="TF intra/inter-op and tf.data threads")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    waves = synthetic_waveforms(args.seconds, args.seed)
    audio_seconds = sum(len(w) for w in waves) / SAMPLE_RATE
    dataset = build_dataset(waves, args.batch_size, args.threads)

    for _ in dataset.take(2):  # warm-up: traces the map function, allocates buffers
        pass

    frames = 0
    start = time.perf_counter()
    for _features, num_frames in dataset:
        frames += int(tf.reduce_sum(num_frames))
    wall = time.perf_counter() - start

    print(
        json.dumps(
            {
                "benchmark": "features",
                "audio_seconds": round(audio_seconds, 3),
                "wall_seconds": round(wall, 4),
                "x_real_time": round(audio_seconds / wall, 1),
                "threads": args.threads,
                "batch_size": args.batch_size,
                "utterances": len(waves),
                "frames": frames,
            }
        )
    )


if __name__ == "__main__":
    main()
