"""`jointctc-export --workdir W --saved_model DIR [--tflite F.tflite] [--quantize none|float16|int8]
[--lm_workdir LM] [--lm_weight BETA]` (docs/interfaces.md).

Rebuilds the model of a jointctc-train work dir (`--which` best or latest checkpoint) and writes a SavedModel
(signatures `serving_default`, `ctc_greedy`, `attention_beam`, see `tf_jointctc.export.signatures`) and
optionally a built-ins-only TFLite model (batch 1, same signature names, vocabulary in its metadata). Decoding options
default to the work dir's `config.decode`; `--beam`, `--ctc_weight`, `--length_penalty`, `--max_length_ratio`,
`--min_length_ratio` override them. Prints last one JSON line with the paths, sizes and what was exported.

Shallow fusion (issue 13): `--lm_workdir` (a jointctc-train-lm work dir; default `config.decode.lm_workdir`,
`--lm_workdir=` for none) puts its best character LM inside the beam-search signatures (`serving_default`,
`attention_beam`) of both formats with weight `--lm_weight` (default `config.decode.lm_weight`). Refused (exit 2,
a message on stderr): an LM whose vocabulary differs from the recognizer's, `--lm_weight > 0` without an LM, and
an explicit `--lm_workdir` with weight 0. A `decode.lm_workdir` of the config with `decode.lm_weight` 0 exports
without the LM (the config's "0 = no LM").
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

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
_LM_WORKDIR = flags.DEFINE_string(
    "lm_workdir", None,
    "jointctc-train-lm work dir whose best character LM is fused into the beam-search signatures (default: "
    "config.decode.lm_workdir; --lm_workdir= for none).",
)
_LM_WEIGHT = flags.DEFINE_float("lm_weight", None, "LM weight beta (default: config.decode.lm_weight).")


class ExportRefused(ValueError):
    """The export cannot be made as asked (the language model options); the message says why."""


def fusion_lm(
    config: Any, vocab: Any, workdir: str, lm_workdir: str | None = None, lm_weight: float | None = None
) -> tuple[Any, float]:
    """The language model to export with the model of `workdir` (config, vocab) and its weight:
    (`tf_jointctc.export.FusionLM` or None, lm_weight). See the module docstring for the defaults.

    Raises ExportRefused saying why (both work dirs and both vocabularies named for a vocabulary mismatch).
    """
    decode = config.get("decode") or {}
    explicit = lm_workdir is not None
    if not explicit:
        lm_workdir = decode.get("lm_workdir", "") or ""
    weight = float(decode.get("lm_weight", 0.0) if lm_weight is None else lm_weight)
    if not (weight >= 0.0 and math.isfinite(weight)):
        raise ExportRefused(f"lm_weight must be a finite number >= 0, got {weight}")
    if not lm_workdir:
        if weight > 0.0:
            raise ExportRefused(
                f"lm_weight={weight} needs a language model: pass --lm_workdir (a jointctc-train-lm work dir) or "
                "set decode.lm_workdir, or set the weight to 0"
            )
        return None, weight
    if weight <= 0.0:
        if not explicit:
            return None, 0.0  # decode.lm_workdir with decode.lm_weight 0: no LM, as in jointctc-eval
        raise ExportRefused(
            f"--lm_workdir={lm_workdir} with lm_weight 0 would export without the language model: pass "
            "--lm_weight > 0 (beta, e.g. the value chosen on dev) or --lm_workdir= for none"
        )
    from tf_jointctc.evaluation import load_fusion_lm
    from tf_jointctc.export.signatures import FusionLM
    from tf_jointctc.trained_model import load_vocab

    try:
        lm, checkpoint = load_fusion_lm(lm_workdir, vocab, workdir)
    except (OSError, ValueError) as error:
        raise ExportRefused(str(error)) from error
    return FusionLM(lm, load_vocab(lm_workdir), os.path.abspath(lm_workdir), str(checkpoint)), weight


def export(
    workdir: str,
    saved_model: str,
    tflite: str | None = None,
    quantize: str = "none",
    which: str = "best",
    lm_workdir: str | None = None,
    lm_weight: float | None = None,
    **overrides: float | int | None,
) -> dict:
    """Runs the export; returns the summary printed as JSON (with `"lm"`, export_info's LM record, when a
    language model is inside). Raises ExportRefused for language model options that cannot be exported."""
    from tf_jointctc.decoding.options import DecodeOptions
    from tf_jointctc.export.signatures import available_modes, lm_record
    from tf_jointctc.export.to_saved_model import directory_size, export_saved_model
    from tf_jointctc.export.to_tflite import export_tflite
    from tf_jointctc.trained_model import load_trained_model

    started = time.time()
    model, config, vocab, checkpoint = load_trained_model(workdir, which)
    lm, weight = fusion_lm(config, vocab, workdir, lm_workdir, lm_weight)
    options = DecodeOptions.from_config(config.get("decode"), **overrides, lm_weight=weight)
    extra = {"checkpoint": str(checkpoint), "workdir": os.path.abspath(workdir), "which": which}
    if lm is not None:
        try:  # before tracing anything: e.g. a model without a beam-search signature has no place for an LM
            lm_record(model, vocab, options, lm, available_modes(model, options))
        except ValueError as error:
            raise ExportRefused(str(error)) from error
    info = export_saved_model(model, vocab, saved_model, options, extra_info=extra, lm=lm)
    summary = {
        "saved_model": os.path.abspath(saved_model),
        "saved_model_bytes": directory_size(saved_model),
        "signatures": sorted(info["signatures"]),
        "serving_default": info["serving_default"],
        "decode": info["decode"],
        "checkpoint": str(checkpoint),
    }
    if lm is not None:
        summary["lm"] = info["lm"]
    if tflite:
        export_tflite(model, vocab, tflite, options, quantize=quantize, extra_info=extra, lm=lm)
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
    try:
        summary = export(
            _WORKDIR.value,
            _SAVED_MODEL.value,
            _TFLITE.value,
            _QUANTIZE.value,
            _WHICH.value,
            lm_workdir=_LM_WORKDIR.value,
            lm_weight=_LM_WEIGHT.value,
            beam=_BEAM.value,
            ctc_weight=_CTC_WEIGHT.value,
            length_penalty=_LENGTH_PENALTY.value,
            max_length_ratio=_MAX_LENGTH_RATIO.value,
            min_length_ratio=_MIN_LENGTH_RATIO.value,
        )
    except ExportRefused as error:
        sys.stderr.write(f"jointctc-export: {error}\n")
        sys.exit(2)
    print(json.dumps(summary), flush=True)


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
