"""Where decoding time goes: TensorFlow's profiler over one call of a `bench/decode.py` mode, by op type.

Builds the same random-weight model, input and `tf.function` as `bench/decode.py` (`--arch`, `--frames`,
`--tokens`, `--beam`, 1 thread), warms the mode up, then traces one call with `tf.profiler.experimental` and
sums the kernel events of the trace (`node:OpType`; not the executor's `Class::Method` events) as self time
(an event's duration minus the events nested in it on the same thread), by op type and by graph node, as
milliseconds and as shares of the traced call.
`outside_kernels_ms` is the rest of the call: the executor's scheduling between kernels, what a loop of small
ops costs beyond its kernels. The traced call is slower than an untraced one (`wall_seconds_untraced` against
`wall_seconds_traced`); the shares are what to read.

Prints exactly one JSON line: `{"benchmark": "profile_decode", ..., "kernels_ms", "outside_kernels_ms",
"op_types": [{"name", "ms", "share_of_call", "count"}], "nodes": [...]}`.

    python bench/profile_decode.py [--mode joint] [--arch wsj] [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import tempfile
import time

import tf_jointctc  # noqa: F401  its TensorFlow settings, before TensorFlow loads (tf_jointctc/runtime.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import ARCHITECTURES  # noqa: E402
from decode import make_modes, random_model  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402


def self_times(space: xplane_pb2.XSpace) -> dict:
    """Self time (picoseconds) and count per event name over the host planes' threads: {name: [ps, count]}."""
    totals: dict = collections.defaultdict(lambda: [0, 0])
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            open_events: list[list] = []  # [end, name, self]
            finished: list[list] = []
            for event in sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps)):
                end = event.offset_ps + event.duration_ps
                while open_events and open_events[-1][0] <= event.offset_ps:
                    finished.append(open_events.pop())
                if open_events:
                    open_events[-1][2] -= event.duration_ps
                open_events.append([end, names[event.metadata_id], event.duration_ps])
            finished.extend(open_events)
            for _, name, own in finished:
                totals[name][0] += own
                totals[name][1] += 1
    return totals


def summarize(totals: dict, wall_ps: float, top: int) -> dict:
    """Kernels ("node:OpType" events) by op type and by node, in ms and as shares of the traced call."""
    kernels = {name: value for name, value in totals.items() if ":" in name and "::" not in name}
    by_type: dict = collections.defaultdict(lambda: [0, 0])
    for name, (ps, count) in kernels.items():
        by_type[name.rsplit(":", 1)[1]][0] += ps
        by_type[name.rsplit(":", 1)[1]][1] += count
    kernels_ps = sum(ps for ps, _ in by_type.values())

    def rows(items):
        ranked = sorted(items, key=lambda kv: -kv[1][0])[:top]
        return [{"name": k, "ms": round(ps / 1e9, 2), "share_of_call": round(ps / wall_ps, 4), "count": n}
                for k, (ps, n) in ranked]

    return {
        "kernels_ms": round(kernels_ps / 1e9, 1),
        "outside_kernels_ms": round((wall_ps - kernels_ps) / 1e9, 1),
        "op_types": rows(by_type.items()),
        "nodes": rows(kernels.items()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="wsj")
    parser.add_argument("--mode", default="joint", choices=("ctc_greedy", "attention", "joint"))
    parser.add_argument("--frames", type=int, default=800)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--ctc-weight", type=float, default=0.3)
    parser.add_argument("--lm-weight", type=float, default=0.3)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    config, model = random_model(args.arch)
    fn = make_modes(model, args, float(config.decode.length_penalty))[args.mode]
    features = np.random.default_rng(0).standard_normal((1, args.frames, model.feature_dim)).astype(np.float32)
    features, lengths = tf.constant(features), tf.constant([args.frames], tf.int32)

    def call() -> float:
        started = time.perf_counter()
        tf.nest.map_structure(lambda x: x.numpy(), fn(features, lengths))
        return time.perf_counter() - started

    call()
    untraced = min(call(), call())
    with tempfile.TemporaryDirectory(prefix="profile_decode_") as logdir:
        tf.profiler.experimental.start(logdir)
        traced = call()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    print(json.dumps({
        "benchmark": "profile_decode", "arch": args.arch, "mode": args.mode, "frames": args.frames,
        "tokens": args.tokens, "beam": args.beam, "threads": 1, "wall_seconds_untraced": round(untraced, 4),
        "wall_seconds_traced": round(traced, 4), **summarize(self_times(space), traced * 1e12, args.top),
    }))


if __name__ == "__main__":
    main()
