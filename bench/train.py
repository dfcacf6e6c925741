"""Frames per second of one full training step (forward, CTC + attention losses, backward, update) of the
paper's WSJ architecture on random data. Prints one JSON line; `reference_matmul_us` times one [batch, 320] x
[320, 1280] matmul in a graph loop, to tell a slower phase of the machine from a slower step.

  python bench/train.py [--batch 16] [--frames 800] [--labels 100] [--threads 2] [--intra_threads N] [--subsample S]
                        [--ctc_weight 0.2] [--steps 5] [--config configs/wsj_si284.py] [--implementation fused]
                        [--input_stack K] [--units N] [--projection_dtype float32|bfloat16] [--input_dims N]
                        [--intermediate_ctc_weight W] [--ctc_self_conditioning 0|1] [--vtlp_warp LOW,HIGH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from common import SUBSAMPLE_HELP, add_thread_flags, load_config, set_subsample, set_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=800)
    parser.add_argument("--labels", type=int, default=100)
    add_thread_flags(parser)
    parser.add_argument("--subsample", default=None, help=SUBSAMPLE_HELP)
    parser.add_argument("--ctc_weight", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after two warm-up steps")
    parser.add_argument("--config", default="configs/wsj_si284.py")
    parser.add_argument("--implementation", default="fused", help="encoder BLSTMs: fused or keras (reference)")
    parser.add_argument("--input_stack", type=int, default=None, help="feature frames stacked (default: config's)")
    parser.add_argument("--units", type=int, default=None, help="encoder and decoder width (default: config's)")
    parser.add_argument("--projection_dtype", default=None,
                        help="the encoder BLSTMs' input projections in training: float32 or bfloat16 "
                             "(model.encoder.training_projection_dtype; default: config's)")
    parser.add_argument("--input_dims", type=int, default=None,
                        help="features per frame the encoder reads, 0 = all (model.encoder.input_dims; default: "
                             "config's)")
    parser.add_argument("--conv_channels", type=int, default=None,
                        help="channels of the convolutional front end, 0 = none (model.encoder.conv_channels; "
                             "default: config's)")
    parser.add_argument("--intermediate_ctc_weight", type=float, default=None,
                        help="loss.intermediate_ctc_weight (on the config's loss.intermediate_ctc_layer; default: "
                             "config's)")
    parser.add_argument("--ctc_self_conditioning", type=int, choices=(0, 1), default=None,
                        help="model.ctc_self_conditioning (needs an intermediate CTC weight > 0; default: config's)")
    parser.add_argument("--vtlp_warp", default=None,
                        help="model.vtlp_warp as LOW,HIGH, e.g. 0.9,1.1 (1,1: off; default: config's)")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    intra_threads = set_threads(args)
    from tf_jointctc.model import build_model, make_optimizer
    from tf_jointctc.text import Vocabulary

    config = load_config(args.config)
    set_subsample(config, args.subsample)
    config.loss.ctc_weight = args.ctc_weight
    # Time the full step: a config's CTC warm-up would otherwise skip the decoder in every timed step.
    config.loss.ctc_warmup_steps = 0
    config.model.encoder.implementation = args.implementation
    if args.input_stack is not None:
        config.model.encoder.input_stack = args.input_stack
    if args.units is not None:
        config.model.encoder.units = config.model.encoder.projection_units = args.units
        config.model.attention_dim = config.model.decoder_units = args.units
    if args.projection_dtype is not None:
        config.model.encoder.training_projection_dtype = args.projection_dtype
    if args.input_dims is not None:
        config.model.encoder.input_dims = args.input_dims
    if args.conv_channels is not None:
        config.model.encoder.conv_channels = args.conv_channels
    if args.intermediate_ctc_weight is not None:
        config.loss.intermediate_ctc_weight = args.intermediate_ctc_weight
    if args.ctc_self_conditioning is not None:
        config.model.ctc_self_conditioning = bool(args.ctc_self_conditioning)
    if args.vtlp_warp is not None:
        config.model.vtlp_warp = tuple(float(v) for v in args.vtlp_warp.split(","))
    vocab = Vocabulary()
    model = build_model(config.model, config.loss, vocab)
    model.compile(optimizer=make_optimizer(config.optimizer, total_steps=10**6))

    rng = np.random.default_rng(0)
    batch = {
        "features": tf.constant(rng.normal(size=(args.batch, args.frames, 120)).astype(np.float32)),
        "feature_lengths": tf.fill([args.batch], args.frames),
        "labels": tf.constant(rng.integers(1, vocab.sos_id, size=(args.batch, args.labels)).astype(np.int32)),
        "label_lengths": tf.fill([args.batch], args.labels),
    }
    # The machine's speed drifts during a day (a shared VM): time a fixed reference, the encoder's recurrent
    # matmul ([B, 320] x [320, 1280]) in a graph loop, so that figures from different runs can be compared.
    weights = tf.constant(rng.normal(size=(320, 1280)).astype(np.float32) * 0.05)

    @tf.function
    def reference(h: tf.Tensor) -> tf.Tensor:
        return tf.while_loop(lambda i, h: i < 400, lambda i, h: (i + 1, tf.tanh(tf.matmul(h, weights)[:, :320])),
                             (0, h))[1]

    start = tf.constant(rng.normal(size=(args.batch, 320)).astype(np.float32))
    reference(start).numpy()
    started = time.perf_counter()
    reference(start).numpy()
    reference_us = (time.perf_counter() - started) / 400 * 1e6

    step = tf.function(model.train_step)
    for _ in range(2):
        step(batch)["loss"].numpy()
    started = time.perf_counter()
    for _ in range(args.steps):
        step(batch)["loss"].numpy()
    seconds = (time.perf_counter() - started) / args.steps
    print(json.dumps({
        "benchmark": "train",
        "frames_per_second": round(args.batch * args.frames / seconds, 1),
        "seconds_per_step": round(seconds, 3),
        "batch": args.batch, "frames": args.frames, "labels": args.labels, "threads": args.threads,
        "intra_threads": intra_threads,
        "subsample": ",".join(str(x) for x in config.model.encoder.subsample),
        "input_stack": int(config.model.encoder.input_stack),
        "input_dims": int(config.model.encoder.get("input_dims", 0)),
        "conv_channels": int(config.model.encoder.get("conv_channels", 0)),
        "intermediate_ctc_weight": float(config.loss.get("intermediate_ctc_weight", 0.0)),
        "ctc_self_conditioning": bool(config.model.get("ctc_self_conditioning", False)),
        "vtlp_warp": list(config.model.get("vtlp_warp", (1.0, 1.0))),
        "units": int(config.model.encoder.units), "implementation": args.implementation, "ctc_weight": args.ctc_weight,
        "projection_dtype": config.model.encoder.get("training_projection_dtype", "float32"),
        "config": args.config, "reference_matmul_us": round(reference_us, 1),
        "parameters": int(model.count_params()), "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }))


if __name__ == "__main__":
    main()
