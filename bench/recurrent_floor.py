"""The floor of an encoder's BLSTM recurrence at batch 1: only its recurrent matmuls, in graph loops.

For the architecture's encoder (`--arch`, `--subsample`), one `--frames`-frame utterance (10 ms frames: 800 = 8 s)
gives each BLSTM layer its frame count (input stacking, then each layer's subsampling); every layer and direction
runs that many `[1, H] x [H, 4H]` matmuls of its own random kernel in a `tf.while_loop` (one loop per kernel, as
the inference BLSTM runs them), with nothing but a slice and a scale per step. No input projection, no gates:
what remains of a batch-1 encoder when everything but the recurrent weights' traffic is free. Compare its
`seconds` with `bench/decode.py`'s encoder and with ESPnet's (`../shared/peers`) in one window. Prints one JSON line.

    python bench/recurrent_floor.py [--arch wsj] [--subsample 1,2,2,1] [--frames 800] [--threads 1] [--intra_threads N]
        [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import tf_jointctc  # noqa: F401  its TensorFlow settings, before TensorFlow loads (tf_jointctc/runtime.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import (  # noqa: E402
    ARCHITECTURES,
    SUBSAMPLE_HELP,
    add_thread_flags,
    load_config,
    set_subsample,
    set_threads,
)

from tf_jointctc.layers.encoder import PyramidalBLSTM  # noqa: E402


def layer_frames(frames: int, input_stack: int, subsample) -> list[int]:
    """Frames each BLSTM layer runs for `frames` feature frames: the encoder's own output lengths
    (`PyramidalBLSTM.output_lengths`) up to and including that layer's subsampling."""
    return [int(PyramidalBLSTM.output_lengths(frames, subsample[:layer + 1], input_stack))
            for layer in range(len(subsample))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="wsj")
    parser.add_argument("--subsample", default=None, help=SUBSAMPLE_HELP)
    parser.add_argument("--frames", type=int, default=800)
    add_thread_flags(parser)
    parser.set_defaults(threads=1)  # decoding's one thread
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    intra_threads = set_threads(args)  # what holds (a process already running TensorFlow keeps its own)
    config = load_config(args.arch)
    set_subsample(config, args.subsample)
    encoder = config.model.encoder
    units = int(encoder.units)
    steps = layer_frames(args.frames, int(encoder.get("input_stack", 1)), encoder.subsample)
    rng = np.random.default_rng(0)
    kernels = [tf.constant(rng.normal(size=(units, 4 * units)).astype(np.float32) * 0.05)
               for _ in range(2 * len(steps))]

    @tf.function
    def recurrences(h: tf.Tensor) -> tf.Tensor:
        total = tf.zeros([])
        for index, count in enumerate(steps):
            for kernel in kernels[2 * index:2 * index + 2]:
                def body(i, state, kernel=kernel):
                    return i + 1, tf.matmul(state, kernel)[:, :units] * 1e-3
                def more(i, state, count=count):
                    return i < count
                total += tf.reduce_sum(tf.while_loop(more, body, (0, h))[1])
        return total

    start = tf.constant(rng.normal(size=(1, units)).astype(np.float32))
    recurrences(start).numpy()
    seconds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        recurrences(start).numpy()
        seconds.append(time.perf_counter() - started)
    median = float(np.median(seconds))
    matmuls = 2 * sum(steps)
    print(json.dumps({
        "benchmark": "recurrent_floor", "arch": args.arch, "subsample": ",".join(str(f) for f in encoder.subsample),
        "frames": args.frames, "layer_frames": steps, "units": units, "threads": args.threads,
        "intra_threads": intra_threads,
        "kernel_mb": round(units * 4 * units * 4 / 2**20, 2), "matmuls": matmuls, "seconds": round(median, 4),
        "us_per_matmul": round(median / matmuls * 1e6, 1), "seconds_all": [round(s, 4) for s in seconds],
    }))


if __name__ == "__main__":
    main()
