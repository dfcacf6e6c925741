"""One CTC prefix scorer step alone, in TensorFlow and in TFLite: `extend` and `extend_by_matmul` (prefix scores of
all N x C candidates, exact / by one matmul) and `select` (the frame recursion for the N kept extensions), at 1
thread.

Each of the three is a `tf.function` with fixed input shapes (N hypotheses, T frames, V labels, C candidates; the
defaults are the demo's beam 10, 15 + 1 candidates and 8 s at 33 frames/s), converted alone to TFLite with
built-in ops only. Random log posteriors and forward variables; the parents' prefix length is 0 (the recursion
runs over all frames) and T / 2 (it starts half-way). Per case: milliseconds per call, mean of `--repeats`
calls after one warm-up call. The beam search runs one `extend_by_matmul` and one `select` per output step (and
`extend`, the exact scores, only when it would keep a candidate the matmul could not score exactly), so their
sum times the tokens is the CTC share of a joint beam search. Prints exactly one JSON line on stdout.

    python bench/ctc_prefix_score.py [--hypotheses 10] [--candidates 16] [--frames 267] [--vocab 33]
        [--repeats 50]
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

from tf_jointctc.decoding import ctc_prefix_score as cps  # noqa: E402


def mean_milliseconds(fn, repeats: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats * 1e3


def tflite_runner(fn):
    """A callable running `fn`'s TFLite conversion (built-in ops only) at 1 thread on keyword inputs."""
    from ai_edge_litert.interpreter import Interpreter

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert(), num_threads=1)
    interpreter.allocate_tensors()
    inputs = interpreter.get_input_details()
    names = [spec.name for spec in fn.input_signature]

    def run(**values):
        for detail in inputs:
            name = next(n for n in names if detail["name"].endswith(f"_{n}:0") or detail["name"] == n)
            interpreter.set_tensor(detail["index"], values[name])
        interpreter.invoke()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hypotheses", type=int, default=10, help="N = utterances x beam")
    parser.add_argument("--candidates", type=int, default=16, help="C = pre-beam + eos")
    parser.add_argument("--frames", type=int, default=267, help="T encoder frames")
    parser.add_argument("--vocab", type=int, default=33, help="V CTC labels (the last one is eos)")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    n, c, frames, vocab = args.hypotheses, args.candidates, args.frames, args.vocab
    signature = [
        tf.TensorSpec([n, frames, vocab], tf.float32, name="log_probs"),
        tf.TensorSpec([frames, n], tf.float32, name="r_n"),
        tf.TensorSpec([frames, n], tf.float32, name="r_b"),
        tf.TensorSpec([n], tf.int32, name="length"),
        tf.TensorSpec([n, c], tf.int32, name="candidates"),
    ]

    def state(r_n, r_b, length):
        return cps.CTCPrefixState(r_n, r_b, tf.zeros([n]), tf.fill([n], 3), length)

    @tf.function(input_signature=signature)
    def extend(log_probs, r_n, r_b, length, candidates):
        return cps.extend(log_probs, tf.fill([n], frames), state(r_n, r_b, length), candidates, eos_id=vocab - 1)

    # The beam search's scores: all N hypotheses of one utterance against its scaled posteriors, computed once per
    # utterance outside the search (inputs here).
    matmul_signature = [
        tf.TensorSpec([1, frames, vocab], tf.float32, name="scaled"),
        tf.TensorSpec([1, vocab], tf.float32, name="label_max"),
        *signature[1:],
    ]

    @tf.function(input_signature=matmul_signature)
    def extend_by_matmul(scaled, label_max, r_n, r_b, length, candidates):
        return cps.extend_by_matmul(scaled, label_max, tf.fill([n], frames), state(r_n, r_b, length), candidates,
                                    eos_id=vocab - 1)

    @tf.function(input_signature=signature)
    def select(log_probs, r_n, r_b, length, candidates):
        kept = cps.select(
            log_probs, state(r_n, r_b, length), tf.zeros([n, c]), tf.range(n), tf.zeros([n], tf.int32),
            candidates[:, 0],
        )
        return kept.r_n, kept.r_b

    rng = np.random.default_rng(0)
    log_probs = tf.nn.log_softmax(3.0 * rng.standard_normal((n, frames, vocab)).astype(np.float32)).numpy()
    forward = (rng.standard_normal((frames, n)) - 50.0).astype(np.float32)
    candidates = rng.integers(1, vocab - 1, size=(n, c)).astype(np.int32)
    scaled, label_max = (x.numpy() for x in cps.scaled_posteriors(log_probs[:1], [frames]))
    result: dict = {"benchmark": "ctc_prefix_score", "threads": 1, **vars(args)}
    for name, fn in (("extend", extend), ("extend_by_matmul", extend_by_matmul), ("select", select)):
        run_tflite = tflite_runner(fn)
        for length in (0, frames // 2):
            values = dict(r_n=forward, r_b=forward, length=np.full([n], length, np.int32), candidates=candidates)
            values.update(dict(scaled=scaled, label_max=label_max) if fn is extend_by_matmul else
                          dict(log_probs=log_probs))
            result[f"{name}_parent_length_{length}"] = {
                "tensorflow_ms": round(mean_milliseconds(lambda v=values, f=fn: f(**v), args.repeats), 3),
                "tflite_ms": round(mean_milliseconds(lambda v=values, r=run_tflite: r(**v), args.repeats), 3),
            }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
