"""`jointctc-export --workdir W --saved_model DIR [--tflite F.tflite] [--quantize none|float16|int8]
[--lm_workdir LM] [--lm_weight BETA] [--attention_lm_weight BETA] [--attention_lm_length_penalty BONUS]
[--joint_lm_ctc_weight W]`
(docs/interfaces.md).

Rebuilds the model of a jointctc-train work dir (`--which` best or latest checkpoint) and writes a SavedModel
(signatures `serving_default`, `ctc_greedy`, `attention_beam`, see `tf_jointctc.export.signatures`) and
optionally a built-ins-only TFLite model (batch 1, same signature names, vocabulary in its metadata). Decoding options
default to the work dir's `config.decode`; `--beam`, `--ctc_weight`, `--length_penalty`, `--max_length_ratio`,
`--min_length_ratio` override them. Prints last one JSON line with the paths, sizes and what was exported.

Shallow fusion (issue 13): `--lm_workdir` (a jointctc-train-lm work dir; default `config.decode.lm_workdir`,
`--lm_workdir=` for none) puts its best character LM inside the beam-search signatures (`serving_default`,
`attention_beam`) of both formats with weight `--lm_weight` (default `config.decode.lm_weight`). Refused (exit 2, a
message on stderr): an LM whose vocabulary differs from the recognizer's, `--lm_weight > 0` without an LM, and an
explicit `--lm_workdir` with weight 0. The config's `decode.lm_weight` is the weight *when* an LM is fused: without
an LM (`--lm_workdir=`, or none in the config) it exports without one, and a `decode.lm_workdir` of the config with
`decode.lm_weight` 0 exports without the LM (the config's "0 = no LM"). With an LM, a signature that decodes mode
attention (`attention_beam`) takes its own beta and length bonus: `--attention_lm_weight` /
`--attention_lm_length_penalty`, else the config's `decode.attention_lm_weight` /
`decode.attention_lm_length_penalty`, else the shared `--lm_weight` / `--length_penalty` and their config values
(`DecodeOptions.for_mode`); a signature that decodes mode joint (`serving_default`) takes its own CTC weight:
`--joint_lm_ctc_weight`, else the config's `decode.joint_lm_ctc_weight`, else the shared `--ctc_weight` and its
config value. Each signature's values are in `export_info["signatures"]`. The export itself is
`tf_jointctc.export.from_workdir.export_workdir`.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from tf_jointctc.export.from_workdir import ExportRefused, export_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "jointctc-train work dir.")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Output SavedModel folder.")
_TFLITE = flags.DEFINE_string("tflite", None, "Optional output .tflite file.")
_QUANTIZE = flags.DEFINE_enum(
    "quantize", "none", ["none", "float16", "int8"],
    "TFLite weights: none (float32), float16, or int8 (dynamic-range quantization).",
)
_WHICH = flags.DEFINE_enum(
    "which", "best", ["best", "latest"],
    "Checkpoint to export: best dev CER (averaged weights with train.ema_decay) or the newest (as trained).",
)
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
_ATTENTION_LM_WEIGHT = flags.DEFINE_float(
    "attention_lm_weight", None,
    "LM weight of the attention_beam signature (default: config.decode.attention_lm_weight, else --lm_weight).",
)
_ATTENTION_LM_LENGTH_PENALTY = flags.DEFINE_float(
    "attention_lm_length_penalty", None,
    "Per-token bonus of the attention_beam signature with an LM (default: config.decode."
    "attention_lm_length_penalty, else --length_penalty).",
)
_JOINT_LM_CTC_WEIGHT = flags.DEFINE_float(
    "joint_lm_ctc_weight", None,
    "CTC weight of a joint serving_default with an LM (default: config.decode.joint_lm_ctc_weight, else --ctc_weight).",
)


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
        summary = export_workdir(
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
            attention_lm_weight=_ATTENTION_LM_WEIGHT.value,
            attention_lm_length_penalty=_ATTENTION_LM_LENGTH_PENALTY.value,
            joint_lm_ctc_weight=_JOINT_LM_CTC_WEIGHT.value,
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
