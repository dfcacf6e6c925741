"""Export sizes and serving speed: SavedModel and TFLite (float32, float16, int8) of random-weight models.

For each architecture (`demo`: configs/demo.py; `wsj`: the paper's WSJ model, configs/wsj_si284.py) builds
the model with random weights (`build_model(config.model, config.loss, Vocabulary())`, seeded), exports it
with the real export functions (export/to_saved_model.py, export/to_tflite.py: one batch-1 trace, three
conversions) and times every signature on one 8-second utterance (low-level noise) at 1 thread (TensorFlow
intra/inter-op threads 1, TFLite `num_threads=1`): one warm-up call per format, then `--repeats` rounds in
which the SavedModel and each TFLite file are called once in turn, so that the machine's drift (up to ~1.5x
within minutes on the project machine) hits every format alike; `seconds` is the median over the rounds.
rtf = seconds / audio seconds. The decoding is the exported one (no `force_length`): a random model may emit
eos early, so each timing reports its number of tokens, and the encoder alone (features + CMVN + BLSTM,
Keras `tf.function`; the median of `--repeats` calls after a warm-up) is timed as well. Prints exactly one JSON
line on stdout.

    python bench/export.py [--arch demo,wsj] [--seconds 8] [--repeats 2] [--beam 20] [--out_dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import tf_jointctc  # noqa: F401  its TensorFlow settings, before TensorFlow loads (tf_jointctc/runtime.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import interleaved_rounds, load_config  # noqa: E402

from tf_jointctc.decoding.options import DecodeOptions  # noqa: E402
from tf_jointctc.export.to_saved_model import directory_size, export_saved_model  # noqa: E402
from tf_jointctc.export.to_tflite import QUANTIZATIONS, export_tflite  # noqa: E402
from tf_jointctc.features import FeatureExtractor  # noqa: E402
from tf_jointctc.model import build_model  # noqa: E402
from tf_jointctc.recognizer import TFLiteSignatures  # noqa: E402
from tf_jointctc.text import Vocabulary  # noqa: E402

SAMPLE_RATE = 16000


def interleaved(calls: dict, name: str, repeats: int) -> dict[str, tuple[float, object]]:
    """Times `fn(name)` for every entry of `calls` ({format: fn}, e.g. one signature in each exported format):
    one warm-up call each, then `repeats` interleaved rounds (`common.interleaved_rounds`); {format: (median
    seconds, the warm-up call's output)}."""
    outputs = {key: fn(name) for key, fn in calls.items()}
    seconds = interleaved_rounds({key: (lambda fn=fn: fn(name)) for key, fn in calls.items()}, repeats)
    return {key: (statistics.median(seconds[key]), outputs[key]) for key in calls}


def bench_arch(arch: str, args: argparse.Namespace, folder: str) -> dict:
    config = load_config(arch)
    keras.utils.set_random_seed(0)
    vocab = Vocabulary()
    model = build_model(config.model, config.loss, vocab)
    options = DecodeOptions.from_config(config.decode, beam=args.beam, lm_weight=0.0)  # no LM in this benchmark
    seconds = float(args.seconds)
    samples = int(seconds * SAMPLE_RATE)
    waveform = (0.05 * np.random.default_rng(0).standard_normal((1, samples))).astype(np.float32)
    num_samples = np.array([samples], np.int32)
    result: dict = {"parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables))}

    extractor = FeatureExtractor()

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.float32), tf.TensorSpec([1], tf.int32)])
    def encoder_only(w, n):
        features, frames = extractor(w, n)
        h, lengths = model.encode(features, frames, training=False)
        return tf.reduce_sum(h), lengths

    encoder = interleaved({"encoder_only": lambda _: encoder_only(waveform, num_samples)}, "", args.repeats)
    latency = encoder["encoder_only"][0]
    result["encoder_only"] = {"seconds": round(latency, 4), "rtf": round(latency / seconds, 4)}

    sm_dir = os.path.join(folder, f"{arch}_saved_model")
    started = time.perf_counter()
    info = export_saved_model(model, vocab, sm_dir, options)
    result["saved_model"] = {"bytes": directory_size(sm_dir), "export_seconds": round(time.perf_counter() - started, 1)}
    loaded = tf.saved_model.load(sm_dir)

    from ai_edge_litert.interpreter import Interpreter

    paths = {q: os.path.join(folder, f"{arch}_{q}.tflite") for q in QUANTIZATIONS}
    started = time.perf_counter()
    export_tflite(model, vocab, paths, options)
    result["tflite_export_seconds"] = round(time.perf_counter() - started, 1)
    names = list(info["signatures"])
    calls = {"saved_model": lambda name: loaded.signatures[name](
        waveform=tf.constant(waveform), num_samples=tf.constant(num_samples))}
    for quantize, path in paths.items():
        result[f"tflite_{quantize}"] = {"bytes": os.path.getsize(path)}
        signatures = TFLiteSignatures(Interpreter(model_path=path, num_threads=1), names)
        calls[f"tflite_{quantize}"] = lambda name, s=signatures: s(name, waveform[0])
    for name in names:
        for key, (latency, out) in interleaved(calls, name, args.repeats).items():
            tokens = int(np.asarray(out["num_tokens"]).reshape(-1)[0])
            result[key][name] = {"seconds": round(latency, 4), "rtf": round(latency / seconds, 4), "tokens": tokens}
    result["decode"] = info["decode"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="demo,wsj", help="comma-separated: demo, wsj")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--beam", type=int, default=None, help="default: the config's decode.beam (20)")
    parser.add_argument("--out_dir", default=None, help="keep the exports here (default: a temporary folder)")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    summary = {"seconds_of_audio": args.seconds, "threads": 1, "tensorflow": tf.__version__}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        folder = args.out_dir or tmp
        os.makedirs(folder, exist_ok=True)
        for arch in args.arch.split(","):
            summary[arch] = bench_arch(arch.strip(), args, folder)
    summary["bench_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
