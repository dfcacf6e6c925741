"""Decoding speed of one 8 s utterance: CTC greedy, attention beam search, joint CTC/attention beam search.

Builds the paper's WSJ architecture (configs/wsj_si284.py: 4-layer BLSTM 320, location attention, decoder 320)
or the demo config with random weights, and times, per mode, one `tf.function` call that encodes `--frames`
frames of random features (10 ms frames: 800 = 8 s) and decodes them. A random-weight model emits eos at
random times, so both beam searches run with `force_length=--tokens` (eos forbidden before, forced after:
exactly tokens + 1 decoder steps per utterance). Each mode is traced and warmed up once, then timed over
`--repeats` calls (mean). rtf = seconds per utterance / utterance seconds. The encoder alone is timed as
well. Prints exactly one JSON line on stdout.

Modes `attention_lm` and `joint_lm` add shallow fusion with a random-weight character LM of
`configs/lm_demo.py`'s shape (`--lm-weight` beta): the decode-time cost of the LM (issue 13).

`--subsample 1,2,2,1` gives the encoder ESPnet's subsampling (`../shared/peers`: ESPnet's WSJ model skips frames
after layers 1 and 2, ours after layers 3 and 4 by default), to compare encoders on equal frame counts.

    python bench/decode.py [--arch wsj|demo] [--threads 1] [--frames 800] [--tokens 100] [--beam 20]
        [--modes ctc_greedy,attention,joint,attention_lm,joint_lm] [--subsample S]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import tf_jointctc  # noqa: F401  its TensorFlow settings, before TensorFlow loads (tf_jointctc/runtime.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import ARCHITECTURES, SUBSAMPLE_HELP, load_config, load_lm_config, set_subsample  # noqa: E402

from tf_jointctc.decoding import beam_search, ctc_greedy_decode  # noqa: E402
from tf_jointctc.language_model import build_language_model  # noqa: E402
from tf_jointctc.model import build_model  # noqa: E402
from tf_jointctc.text import Vocabulary  # noqa: E402

FRAME_SECONDS = 0.01


def random_model(arch: str, subsample: str | None = None):
    """(config, model): the architecture's `JointCTCAttention` with random weights (seed them first) and both
    branches (CTC weight 0.2), so every decoding mode runs."""
    config = load_config(arch)
    config.loss.ctc_weight = 0.2  # any value in (0, 1): both branches exist
    set_subsample(config, subsample)
    return config, build_model(config, config, Vocabulary())


def make_modes(model, args, length_penalty: float, lm=None) -> dict:
    """`tf.function`s (features, lengths) of every mode, on `args.beam`, `args.tokens` (forced length),
    `args.ctc_weight` and `args.lm_weight`."""
    def encoder(features, lengths):
        h, encoder_lengths = model.encode(features, lengths)
        return tf.reduce_sum(h), encoder_lengths

    def ctc_greedy(features, lengths):
        h, encoder_lengths = model.encode(features, lengths)
        return ctc_greedy_decode(model.ctc_logits(h), encoder_lengths)

    def attention(features, lengths):
        h, encoder_lengths = model.encode(features, lengths)
        out = beam_search(
            model, h, encoder_lengths, beam=args.beam, length_penalty=length_penalty, force_length=args.tokens
        )
        return out["token_ids"], out["num_tokens"], out["score"]

    def joint(features, lengths):
        h, encoder_lengths = model.encode(features, lengths)
        out = beam_search(
            model,
            h,
            encoder_lengths,
            beam=args.beam,
            ctc_weight=args.ctc_weight,
            length_penalty=length_penalty,
            force_length=args.tokens,
        )
        return out["token_ids"], out["num_tokens"], out["score"]

    def fused(ctc_weight: float):
        def search(features, lengths):
            h, encoder_lengths = model.encode(features, lengths)
            out = beam_search(
                model, h, encoder_lengths, beam=args.beam, ctc_weight=ctc_weight, length_penalty=length_penalty,
                force_length=args.tokens, lm=lm, lm_weight=args.lm_weight,
            )
            return out["token_ids"], out["num_tokens"], out["score"]

        return search

    modes = {"encoder": encoder, "ctc_greedy": ctc_greedy, "attention": attention, "joint": joint,
             "attention_lm": fused(0.0), "joint_lm": fused(args.ctc_weight)}
    return {name: tf.function(fn) for name, fn in modes.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="wsj")
    parser.add_argument("--threads", type=int, default=1, help="TF intra/inter-op threads")
    parser.add_argument("--frames", type=int, default=800, help="input frames (10 ms each)")
    parser.add_argument("--tokens", type=int, default=100, help="output tokens forced in the beam searches")
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--ctc-weight", type=float, default=0.3, help="joint decoding lambda")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--modes", default="ctc_greedy,attention,joint")
    parser.add_argument("--lm-weight", type=float, default=0.3, help="beta of the *_lm modes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subsample", default=None, help=SUBSAMPLE_HELP)
    args = parser.parse_args(argv)

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)

    config, model = random_model(args.arch, args.subsample)
    features = np.random.default_rng(args.seed).standard_normal((1, args.frames, model.feature_dim))
    features = tf.constant(features.astype(np.float32))
    lengths = tf.constant([args.frames], tf.int32)
    utterance_seconds = args.frames * FRAME_SECONDS

    lm = None
    if any(m.endswith("_lm") for m in args.modes.split(",")):
        lm_config = load_lm_config()
        lm = build_language_model(lm_config.model, Vocabulary())
    modes = make_modes(model, args, float(config.decode.length_penalty), lm)
    selected = ["encoder"] + [m for m in args.modes.split(",") if m]
    result: dict = {"benchmark": "decode"}
    for name in selected:
        fn = modes[name]
        start = time.perf_counter()
        out = fn(features, lengths)
        tf.nest.map_structure(lambda x: x.numpy(), out)
        trace = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.repeats):
            out = fn(features, lengths)
            tf.nest.map_structure(lambda x: x.numpy(), out)
        seconds = (time.perf_counter() - start) / args.repeats
        result[f"{name}_seconds_per_utterance"] = round(seconds, 4)
        result[f"{name}_rtf"] = round(seconds / utterance_seconds, 4)
        result[f"{name}_first_call_seconds"] = round(trace, 2)
        if name in ("attention", "joint", "attention_lm", "joint_lm"):
            assert int(np.min(out[1])) == args.tokens, "force_length did not fix the output length"

    result.update(
        arch=args.arch,
        threads=args.threads,
        frames=args.frames,
        utterance_seconds=utterance_seconds,
        encoder_frames=int(model.encoder.output_lengths(args.frames, model.encoder_subsample)),
        subsample=",".join(str(x) for x in config.model.encoder.subsample),
        tokens=args.tokens,
        beam=args.beam,
        ctc_weight=args.ctc_weight,
        pre_beam=int(1.5 * args.beam),
        length_penalty=float(config.decode.length_penalty),
        repeats=args.repeats,
        parameters=int(model.count_params()),
        lm_weight=args.lm_weight if lm is not None else None,
        lm_parameters=sum(int(np.prod(w.shape)) for w in lm.weights) if lm is not None else None,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
