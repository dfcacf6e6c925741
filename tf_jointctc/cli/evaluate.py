"""`jointctc-eval --workdir W --data D --mode {ctc_greedy,attention,joint} [--beam 20] [--ctc_weight 0.3]
[--length_penalty 0.1] [--output H.jsonl]` (CONTRACT.md): decodes a data set with a trained model and prints
one JSON line `{"cer", "wer", "utterances", "audio_seconds", "decode_seconds", "rtf", ...}`.

`--output` receives one JSON object per utterance: reference, hypothesis, score and its edit counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from absl import app, flags, logging

from tf_jointctc.evaluation import MODES

_WORKDIR = flags.DEFINE_string("workdir", None, "A jointctc-train work dir.")
_DATA = flags.DEFINE_string("data", None, "Data set: a .jsonl manifest or a Kaldi data dir.")
_MODE = flags.DEFINE_enum("mode", "joint", list(MODES), "Decoding: CTC best path, attention beam, or joint beam.")
_BEAM = flags.DEFINE_integer("beam", None, "Beam size (default: the config's decode.beam, paper: 20).")
_CTC_WEIGHT = flags.DEFINE_float("ctc_weight", None, "CTC weight of joint decoding (default: decode.ctc_weight).")
_LENGTH_PENALTY = flags.DEFINE_float("length_penalty", None, "Score bonus per output token (default: config).")
_OUTPUT = flags.DEFINE_string("output", None, "Write per-utterance hypotheses and errors to this JSONL file.")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint: best dev CER or the newest.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Utterances decoded together.")


def evaluate(workdir: str, data: str, mode: str, beam: int | None = None, ctc_weight: float | None = None,
             length_penalty: float | None = None, output: str | None = None, which: str = "best",
             batch_size: int = 8) -> dict:
    from tf_jointctc.data import make_dataset, prepare_dataset
    from tf_jointctc.evaluation import DecodeOptions, decode_dataset, summarize
    from tf_jointctc.training import atomic
    from tf_jointctc.training.workdir import load_trained_model

    model, config, vocab, checkpoint = load_trained_model(workdir, which)
    decode = config.decode
    options = DecodeOptions(
        mode=mode,
        beam=beam if beam is not None else decode.beam,
        ctc_weight=ctc_weight if ctc_weight is not None else decode.ctc_weight,
        length_penalty=length_penalty if length_penalty is not None else decode.length_penalty,
        max_length_ratio=decode.max_length_ratio,
        min_length_ratio=decode.min_length_ratio,
    )
    options.check(model)
    # Evaluation keeps every readable utterance: no length limit, no CTC feasibility filter.
    key = hashlib.sha1(os.path.abspath(data).encode()).hexdigest()[:12]
    prepared = prepare_dataset(data, os.path.join(workdir, "cache", f"eval-{key}"), vocab, num_shards=1,
                               max_seconds=None, subsampling=1)
    dataset = make_dataset(prepared["shards"], batch_size=batch_size, training=False, include_text=True)
    results, seconds = decode_dataset(model, vocab, dataset, options)
    summary = summarize(results, prepared["total_seconds"], seconds)
    summary.update(mode=mode, beam=options.beam, ctc_weight=options.ctc_weight if mode == "joint" else None,
                   length_penalty=options.length_penalty, skipped=prepared["num_skipped"], checkpoint=checkpoint,
                   data=os.path.abspath(data))
    if output:
        atomic.write_text(output, "".join(json.dumps(r.as_dict()) + "\n" for r in results))
        logging.info("wrote %d hypotheses to %s", len(results), output)
    return summary


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        summary = evaluate(_WORKDIR.value, _DATA.value, _MODE.value, _BEAM.value, _CTC_WEIGHT.value,
                           _LENGTH_PENALTY.value, _OUTPUT.value, _WHICH.value, _BATCH_SIZE.value)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"jointctc-eval: {error}") from None
    sys.stdout.write(json.dumps(summary) + "\n")


def run() -> None:
    flags.mark_flags_as_required(["workdir", "data"])
    app.run(main)


if __name__ == "__main__":
    run()
