"""Training steps per second on the built-in corpus with features computed for every batch (the live pipeline)
against features cached in memory (`data.cache_features`), and with `--train_noise P` also live batches with
noise drawn anew each pass (`data.train_noise.probability` P, the config's other noise settings), and with
`--speed_perturbation F,F,...` live batches with speeds drawn anew each pass (`data.speed_perturbation`; on top of
the noise when both are given), in one process, phases interleaved. Prints one JSON line.

  python bench/feature_cache.py [--shards data/cache/train] [--config configs/demo.py] [--rounds 4]
                                [--steps 40] [--threads 2] [--intra_threads N] [--train_noise P]
                                [--speed_perturbation 0.9,1.0,1.1]

Both streams are the trainer's (`make_training_stream` with the config's batch size, frame cap and the length
buckets `jointctc-train` uses); the cache is filled by one pass before timing. Each round times `--steps` full
training steps (CTC warm-up off) from each stream, the order alternating between rounds. While one stream's
phase runs, the other's prefetching may compute a few batches ahead, which takes CPU from the cached phase and
gives the live phase a head start: the measured gain is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from common import interleaved_rounds, load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", default="data/cache/train", help="prepared train shards (jointctc-train's cache)")
    parser.add_argument("--config", default="configs/demo.py")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per stream and round")
    parser.add_argument("--threads", type=int, default=2, help="inter-op threads (and intra-op, by default)")
    parser.add_argument("--intra_threads", type=int, default=0, help="intra-op threads (0: --threads; demo: 1)")
    parser.add_argument("--train_noise", type=float, default=0.0,
                        help="also time a live stream with data.train_noise.probability P (0: not timed)")
    parser.add_argument("--speed_perturbation", default="",
                        help="also time a live stream with these data.speed_perturbation factors (and the noise)")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.intra_threads or args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from tf_jointctc.config import encoder_time_reduction
    from tf_jointctc.data.pipeline import cached_utterance_features, make_training_stream, resolve_shards
    from tf_jointctc.model import build_model, make_optimizer
    from tf_jointctc.text import Vocabulary
    from tf_jointctc.training.loop import (
        length_bucket_boundaries,
        speed_perturbation_factors,
        train_augmentation,
        train_noise_augmentation,
        train_noise_settings,
    )

    config = load_config(args.config)
    config.loss.ctc_warmup_steps = 0
    shards = resolve_shards(args.shards)
    with open(os.path.join(args.shards, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    stream_args = {
        "batch_size": config.train.batch_size, "seed": config.seed, "shuffle_buffer": config.train.shuffle_buffer,
        "bucket_boundaries": length_bucket_boundaries(summary, config.train.get("length_buckets", 0)),
        "max_frames_per_batch": int(config.train.max_frames_per_batch) or None,
    }
    tf.random.set_seed(config.seed)
    cache = cached_utterance_features(shards)
    started = time.perf_counter()
    for _ in cache:  # fill the cache: the first pass of a training run does this while it trains
        pass
    fill_seconds = time.perf_counter() - started
    streams = {
        "live": iter(make_training_stream(shards, **stream_args)),
        "cached": iter(make_training_stream(shards, cached_utterances=cache, **stream_args)),
    }
    config.data.cache_features = False
    config.data.train_noise.probability = args.train_noise
    noise = train_noise_augmentation(train_noise_settings(config), shards, summary["num_utterances"])
    if noise is not None:
        streams["noisy"] = iter(make_training_stream(shards, augmentation=noise, **stream_args))
    if args.speed_perturbation:
        config.data.speed_perturbation = tuple(float(f) for f in args.speed_perturbation.split(","))
        speed = train_augmentation(noise, speed_perturbation_factors(config), encoder_time_reduction(config))
        streams["speed"] = iter(make_training_stream(shards, augmentation=speed, **stream_args))

    model = build_model(config.model, config.loss, Vocabulary())
    model.compile(optimizer=make_optimizer(config.optimizer, total_steps=10**6))
    step = tf.function(model.train_step, reduce_retracing=True)

    def run(name: str, steps: int) -> None:
        for _ in range(steps):
            step(next(streams[name]))["loss"].numpy()

    for name in streams:  # trace the step's shapes
        run(name, 10)
    seconds_per_round = interleaved_rounds(
        {name: (lambda name=name: run(name, args.steps)) for name in streams}, args.rounds, alternate=True)
    per_step = {name: [t / args.steps for t in times] for name, times in seconds_per_round.items()}
    median = {name: statistics.median(values) for name, values in per_step.items()}
    live, cached = median["live"], median["cached"]
    noisy = {}
    if "noisy" in median:
        noisy = {"noisy_seconds_per_step": round(median["noisy"], 4),
                 "noisy_over_cached": round(median["noisy"] / cached, 3), "train_noise": args.train_noise}
    if "speed" in median:
        noisy.update({"speed_seconds_per_step": round(median["speed"], 4),
                      "speed_over_cached": round(median["speed"] / cached, 3),
                      "speed_perturbation": args.speed_perturbation})
    print(json.dumps({
        "benchmark": "feature_cache",
        "live_seconds_per_step": round(live, 4),
        "cached_seconds_per_step": round(cached, 4),
        "speedup": round(live / cached, 3),
        **noisy,
        "rounds": {name: [round(s, 4) for s in values] for name, values in per_step.items()},
        "steps_per_round": args.steps, "cache_fill_seconds": round(fill_seconds, 1),
        "utterances": summary["num_utterances"], "config": args.config, "threads": args.threads,
        "intra_threads": args.intra_threads or args.threads,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }))


if __name__ == "__main__":
    main()
