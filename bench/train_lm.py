"""Characters per second of one full training step (forward, cross-entropy, backward, Adam update) of the
character LM (issue 13) on random sentences. Prints one JSON line; compare batch sizes within one run.

  python bench/train_lm.py [--config configs/lm_demo.py] [--batch 64] [--length 70] [--threads 2] [--steps 10]
                           [--intra_threads N] [--units N] [--layers N] [--training_dtype float32,bfloat16]

With two `--training_dtype` values, one model per value (same initial weights) is built in this process and
their steps are timed in interleaved rounds (`--rounds`), so that the machine's drift affects both alike;
`seconds_per_step` is then the first value's median and `by_training_dtype` holds every value's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

from common import add_thread_flags, interleaved_rounds, load_config, set_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/lm_demo.py")
    parser.add_argument("--batch", type=int, default=None, help="sentences per update (default: config's)")
    parser.add_argument("--length", type=int, default=70, help="characters per sentence (the demo text: ~64)")
    add_thread_flags(parser)
    parser.add_argument("--steps", type=int, default=10, help="timed steps after two warm-up steps")
    parser.add_argument("--units", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--training_dtype", default=None,
                        help="the LSTM matmuls' operands in training (model.training_dtype), or two of them, "
                        "comma-separated, to compare in one process (default: config's)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds of --steps (two dtypes)")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    intra_threads = set_threads(args)
    from tf_jointctc.language_model import build_language_model
    from tf_jointctc.model import make_optimizer
    from tf_jointctc.text import Vocabulary

    config = load_config(args.config)
    for key in ("units", "layers"):
        if getattr(args, key) is not None:
            config.model[key] = getattr(args, key)
    batch = args.batch or int(config.train.batch_size)
    dtypes = args.training_dtype.split(",") if args.training_dtype else [str(config.model.training_dtype)]
    vocab = Vocabulary()
    rng = np.random.default_rng(0)
    labels = rng.integers(1, vocab.sos_id, size=(batch, args.length)).astype("int32")
    tokens_in = tf.constant(np.concatenate([np.full((batch, 1), vocab.sos_id, "int32"), labels], axis=1))
    targets = tf.constant(np.concatenate([labels, np.full((batch, 1), vocab.eos_id, "int32")], axis=1))
    steps, model = {}, None
    for dtype in dtypes:
        config.model.training_dtype = dtype
        keras.utils.set_random_seed(0)
        model = build_language_model(config.model, vocab)
        model.compile(optimizer=make_optimizer(config.optimizer, total_steps=1000))
        steps[dtype] = tf.function(model.train_step)
        for _ in range(2):
            steps[dtype]((tokens_in, targets))

    def run(dtype: str) -> None:
        for _ in range(args.steps):
            logs = steps[dtype]((tokens_in, targets))
        float(logs["loss"])

    seconds_per_round = interleaved_rounds({dtype: (lambda dtype=dtype: run(dtype)) for dtype in dtypes},
                                           args.rounds if len(dtypes) > 1 else 1)
    rounds = {dtype: [t / args.steps for t in times] for dtype, times in seconds_per_round.items()}
    medians = {dtype: float(np.median(times)) for dtype, times in rounds.items()}
    seconds = medians[dtypes[0]]
    line = {
        "bench": "train_lm", "batch": batch, "length": args.length,
        "layers": model.lm.num_layers, "units": model.lm.units, "threads": args.threads, "intra_threads": intra_threads,
        "training_dtype": dtypes[0],
        "seconds_per_step": round(seconds, 4), "characters_per_second": round(batch * (args.length + 1) / seconds),
        "machine": platform.processor() or platform.machine(),
    }
    if len(dtypes) > 1:
        line["by_training_dtype"] = {
            dtype: {"seconds_per_step": round(medians[dtype], 4), "rounds": [round(t, 4) for t in rounds[dtype]]}
            for dtype in dtypes
        }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
