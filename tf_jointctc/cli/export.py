"""`jointctc-export --workdir W --saved_model DIR [--tflite F.tflite] [--quantize none|float16|int8]`
(docs/interfaces.md).

Rebuilds the model of a jointctc-train work dir (`--which` best or latest checkpoint) and writes a SavedModel
(signatures `serving_default`, `ctc_greedy`, `attention_beam`, see `tf_jointctc.export.signatures`) and
optionally a built-ins-only TFLite model (batch 1, same signature names, vocabulary in its metadata). Decoding options
default to the work dir's `config.decode`; `--beam`, `--ctc_weight`, `--length_penalty`, `--max_length_ratio`,
`--min_length_ratio` override them. Prints last one JSON line with the paths, sizes and what was exported.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "jointctc-train work dir.")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Output SavedModel folder.")
_TFLITE = flags.DEFINE_string("tflite", None, "Optional output .tflite file.")
_QUANTIZE = flags.DEFINE_enum(
    "quantize", "none", ["none", "float16", "int8"],
    "TFLite weights: none (float32), float16, or int8 (dynamic-range quantization).",
)
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint to export.")
_BEAM = flags.DEFINE_integer("beam", None, "Beam size (default: the work dir's config.decode.beam).")
_CTC_WEIGHT = flags.DEFINE_float("ctc_weight", None, "Joint decoding CTC weight (default: config.decode).")
_LENGTH_PENALTY = flags.DEFINE_float("length_penalty", None, "Per-token bonus (default: config.decode).")
_MAX_LENGTH_RATIO = flags.DEFINE_float("max_length_ratio", None, "Max tokens per encoder frame (default: config).")
_MIN_LENGTH_RATIO = flags.DEFINE_float("min_length_ratio", None, "Min tokens per encoder frame (default: config).")


def export(
    workdir: str,
    saved_model: str,
    tflite: str | None = None,
    quantize: str = "none",
    which: str = "best",
    **overrides: float | int | None,
) -> dict:
    """Runs the export; returns the summary printed as JSON."""
    from tf_jointctc.decoding.options import DecodeOptions
    from tf_jointctc.export.to_saved_model import directory_size, export_saved_model
    from tf_jointctc.export.to_tflite import export_tflite
    from tf_jointctc.trained_model import load_trained_model

    started = time.time()
    model, config, vocab, checkpoint = load_trained_model(workdir, which)
    options = DecodeOptions.from_config(config.get("decode"), **overrides)
    extra = {"checkpoint": str(checkpoint), "workdir": os.path.abspath(workdir), "which": which}
    info = export_saved_model(model, vocab, saved_model, options, extra_info=extra)
    summary = {
        "saved_model": os.path.abspath(saved_model),
        "saved_model_bytes": directory_size(saved_model),
        "signatures": sorted(info["signatures"]),
        "serving_default": info["serving_default"],
        "decode": info["decode"],
        "checkpoint": str(checkpoint),
    }
    if tflite:
        export_tflite(model, vocab, tflite, options, quantize=quantize, extra_info=extra)
        summary.update(tflite=os.path.abspath(tflite), tflite_bytes=os.path.getsize(tflite), quantize=quantize)
    summary["seconds"] = round(time.time() - started, 1)
    return summary


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _WORKDIR.value or not _SAVED_MODEL.value:
        sys.stderr.write("jointctc-export: --workdir and --saved_model are required\n")
        sys.exit(2)
    if not os.path.isfile(os.path.join(_WORKDIR.value, "config.json")):
        sys.stderr.write(f"jointctc-export: {_WORKDIR.value} is not a jointctc-train work dir (no config.json)\n")
        sys.exit(2)
    summary = export(
        _WORKDIR.value,
        _SAVED_MODEL.value,
        _TFLITE.value,
        _QUANTIZE.value,
        _WHICH.value,
        beam=_BEAM.value,
        ctc_weight=_CTC_WEIGHT.value,
        length_penalty=_LENGTH_PENALTY.value,
        max_length_ratio=_MAX_LENGTH_RATIO.value,
        min_length_ratio=_MIN_LENGTH_RATIO.value,
    )
    print(json.dumps(summary), flush=True)


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
