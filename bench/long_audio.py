"""Decode time and memory against utterance length (issue 14, item 3): 4, 8, 16, 32 and 60 s.

Two parts, both at 1 thread:

- **Graphs** (`tf.function`, the SavedModel's code): `bench/decode.py`'s random-weight model (the paper's WSJ
  architecture or the demo config, seeded) and modes, on random features of each length: the encoder alone,
  CTC greedy, attention beam and joint CTC/attention beam (CTC weight 0.3). A random model emits eos at random
  times, so the beam searches run with `force_length` = `--tokens_per_second` x seconds (eos forbidden before,
  forced after): 12.5 tokens per second is `bench/decode.py`'s 100 tokens per 8 s. Per length: seconds (mean
  of `--repeats` calls after a warm-up call) and seconds per audio second.
- **TFLite** (`--tflite`, one or more `.tflite` files with `export_info` metadata, e.g. from `make demo`): each
  length runs in a fresh process that loads the interpreter (`recognizer.TFLiteSignatures`, which warms every
  signature up on a short input) and records its resident memory; then, per signature (`ctc_greedy`,
  `attention_beam`, `serving_default`), one call on the waveform (it includes resizing the tensors to the new
  length), its seconds, and the peak resident memory during it (`VmHWM` after resetting it through
  `/proc/self/clear_refs`; Linux). The waveform is `--wav` (speech: a trained model then emits realistic numbers
  of tokens; it is repeated to each length) or low-level noise. Each call reports its tokens: a beam search's
  time depends on them. With `--segment_seconds S` each length is decoded as the Recognizer does with
  `segment_seconds=S`: in pieces of at most S seconds cut at the quietest points (`pieces`; seconds and tokens
  are the pieces' sums). With `--manifest`, each length is the manifest's utterances one after the other (whole
  utterances, as many as fit), and the transcript is scored against theirs (`cer`, `wer`: long-form accuracy).

Prints exactly one JSON line on stdout.

    python bench/long_audio.py [--arch wsj|demo] [--seconds 4,8,16,32,60] [--modes encoder,ctc_greedy,...]
        [--tflite a.tflite,b.tflite] [--wav speech.wav | --manifest m.jsonl] [--segment_seconds S] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time

import tf_jointctc  # noqa: F401  its TensorFlow settings, before TensorFlow loads (tf_jointctc/runtime.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SAMPLE_RATE = 16000
FRAME_SECONDS = 0.01
GRAPH_MODES = ("encoder", "ctc_greedy", "attention", "joint")
JOINT_CTC_WEIGHT = 0.3
TFLITE_SIGNATURES = ("ctc_greedy", "attention_beam", "serving_default")


def _memory_mb(field: str) -> float:
    """`VmRSS` (resident now) or `VmHWM` (peak resident since the last `_reset_peak`) of this process, MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Resets `VmHWM` to the current resident size (Linux `clear_refs`, value 5)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def graph_timings(args: argparse.Namespace, lengths: list[float]) -> dict:
    """Per mode and length: seconds of one call (mean of `--repeats` after a warm-up), by `bench/decode.py`'s
    modes with `force_length` = tokens per second x seconds (a new set of functions per length)."""
    import keras
    import tensorflow as tf
    from decode import make_modes, random_model

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    config, model = random_model(args.arch)
    length_penalty = float(config.decode.length_penalty)
    rng = np.random.default_rng(0)
    result: dict = {mode: [] for mode in args.modes.split(",")}
    for seconds in lengths:
        frames = int(round(seconds / FRAME_SECONDS))
        features = tf.constant(rng.standard_normal((1, frames, model.feature_dim)).astype(np.float32))
        frame_counts = tf.constant([frames], tf.int32)
        tokens = int(round(args.tokens_per_second * seconds))
        search = argparse.Namespace(beam=args.beam, tokens=tokens, ctc_weight=JOINT_CTC_WEIGHT, lm_weight=0.0)
        functions = make_modes(model, search, length_penalty)
        for mode in result:
            functions[mode](features, frame_counts)
            started = time.perf_counter()
            for _ in range(args.repeats):
                out = functions[mode](features, frame_counts)
            elapsed = (time.perf_counter() - started) / args.repeats
            row = {"audio_seconds": seconds, "seconds": round(elapsed, 4),
                   "seconds_per_audio_second": round(elapsed / seconds, 4)}
            if mode in ("attention", "joint"):
                row["tokens"] = int(np.asarray(out[1])[0, 0])
            result[mode].append(row)
    result["encoder_frames_per_second_of_audio"] = int(model.encoder.output_lengths(100, model.encoder_subsample))
    return result


def _waveform(args: argparse.Namespace, seconds: float) -> tuple[np.ndarray, str | None]:
    """The audio of one length and its transcript (None for noise and a repeated `--wav`)."""
    samples = int(seconds * SAMPLE_RATE)
    if args.manifest:
        from tf_jointctc.data.audio import read_audio
        from tf_jointctc.data.manifest import read_manifest
        from tf_jointctc.data.skips import SkipReport

        parts, texts, total = [], [], 0
        for utterance in read_manifest(args.manifest, SkipReport()):
            pcm = read_audio(utterance.audio).astype(np.float32) / 32768.0
            if total + len(pcm) > samples and parts:
                break
            parts.append(pcm)
            texts.append(utterance.text)
            total += len(pcm)
        return np.concatenate(parts), " ".join(texts)
    if args.wav:
        from tf_jointctc.data.audio import read_audio

        speech = read_audio(args.wav).astype(np.float32) / 32768.0
        return np.resize(speech, samples), None  # the recording repeated to the length
    return (0.05 * np.random.default_rng(0).standard_normal(samples)).astype(np.float32), None


def _tflite_child(path: str, seconds: float, args: argparse.Namespace, queue) -> None:
    """In a fresh process: per signature, the seconds of one call on `seconds` of audio and the peak resident
    memory during it (the interpreter is loaded and every signature warmed up on a short input first)."""
    from ai_edge_litert.interpreter import Interpreter

    from tf_jointctc.recognizer import TFLiteSignatures
    from tf_jointctc.segmentation import split_long_audio
    from tf_jointctc.tflite_metadata import read_export_info

    waveform, reference = _waveform(args, seconds)
    signatures = TFLiteSignatures(Interpreter(model_path=path, num_threads=1))
    pieces = split_long_audio(waveform, args.segment_seconds) if args.segment_seconds else [(0, len(waveform))]
    info = read_export_info(path) if reference is not None else None
    row: dict = {"audio_seconds": round(len(waveform) / SAMPLE_RATE, 2), "pieces": len(pieces),
                 "rss_loaded_mb": round(_memory_mb("VmRSS"), 1)}
    for name in TFLITE_SIGNATURES:
        if name not in signatures.runners:
            continue
        _reset_peak()
        before = _memory_mb("VmRSS")
        started = time.perf_counter()
        # Each call resizes the tensors to its piece's length, then decodes.
        outputs = [signatures(name, waveform[start:end]) for start, end in pieces]
        elapsed = time.perf_counter() - started
        peak = _memory_mb("VmHWM")
        row[name] = {"seconds": round(elapsed, 4), "tokens": sum(int(out["num_tokens"]) for out in outputs),
                     "peak_rss_mb": round(peak, 1), "peak_increase_mb": round(peak - before, 1)}
        if reference is not None:
            row[name].update(_scores(info, reference, outputs))
    queue.put(row)


def _scores(info: dict, reference: str, outputs: list[dict]) -> dict:
    """CER and WER (%) of the pieces' transcripts joined as the Recognizer joins them, against `reference`."""
    from tf_jointctc.metrics import error_rates
    from tf_jointctc.recognizer import decode_ids, join_pieces

    vocabulary = info["vocabulary"]
    pieces = [{"text": decode_ids(info, out["token_ids"], int(out["num_tokens"])),
               "token_ids": [int(i) for i in out["token_ids"][: int(out["num_tokens"])]], "score": out["score"]}
              for out in outputs]
    joined = join_pieces(pieces, vocabulary.index(" ") if " " in vocabulary else None)
    rates = error_rates([reference], [joined["text"]])
    return {"cer": round(rates["cer"], 1), "wer": round(rates["wer"], 1)}


def tflite_memory(args: argparse.Namespace, lengths: list[float]) -> dict:
    context = multiprocessing.get_context("spawn")
    result: dict = {}
    for path in args.tflite.split(","):
        rows = []
        for seconds in lengths:
            queue = context.Queue()
            child = context.Process(target=_tflite_child, args=(path, seconds, args, queue))
            child.start()
            row = queue.get()
            child.join()
            rows.append(row)
        result[os.path.basename(path)] = rows
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("wsj", "demo"), default="wsj")
    parser.add_argument("--seconds", default="4,8,16,32,60", help="utterance lengths, comma-separated")
    parser.add_argument("--modes", default=",".join(GRAPH_MODES), help="graph modes; empty: none")
    parser.add_argument("--tokens_per_second", type=float, default=12.5)
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--tflite", default="", help="comma-separated .tflite files (jointctc exports)")
    parser.add_argument("--wav", default="", help="speech to repeat to each length (default: noise)")
    parser.add_argument("--manifest", default="",
                        help="a JSONL manifest whose utterances, in order, make each length (whole utterances, "
                        "at most the length): its transcript is scored (cer, wer)")
    parser.add_argument("--segment_seconds", type=float, default=0.0,
                        help="TFLite: decode pieces of at most this many seconds cut at the quietest points, as "
                        "Recognizer.transcribe(segment_seconds=...) does (0: each length whole)")
    args = parser.parse_args(argv)
    lengths = [float(s) for s in args.seconds.split(",")]
    result: dict = {"benchmark": "long_audio", "threads": 1, "seconds": lengths}
    started = time.perf_counter()
    if args.modes:
        result["graphs"] = {"arch": args.arch, "beam": args.beam, "tokens_per_second": args.tokens_per_second,
                            **graph_timings(args, lengths)}
    if args.tflite:
        result["tflite"] = {"waveform": args.manifest or args.wav or "noise", "segment_seconds": args.segment_seconds,
                            **tflite_memory(args, lengths)}
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
