"""Export of a jointctc-train work dir (its model, decoding options and, by its config, its language model):
what `jointctc-export` and `jointctc-transcribe --model <work dir>` both run.

- `fusion_lm(config, vocab, workdir, lm_workdir=None, lm_weight=None)`: the character LM to fuse and its weight.
  `lm_workdir` None takes the config's `decode.lm_workdir`, "" means none; `lm_weight` None takes
  `decode.lm_weight`, the weight *when* an LM is fused: without an LM it is not used (no LM, weight 0), as in
  jointctc-eval (both by `tf_jointctc.decoding.options.fused_lm_weight`). Refused (`ExportRefused`): an LM whose
  vocabulary differs from the recognizer's, an explicit `lm_weight` > 0 without an LM, an explicit LM with weight 0.
  A `decode.lm_workdir` with `decode.lm_weight` 0 is no LM (the config's "0 = no LM"), as in jointctc-eval.
- `export_workdir(workdir, saved_model, tflite=None, ...)`: the SavedModel (and TFLite) of the work dir's best
  or latest checkpoint, with that LM inside the beam-search signatures; returns the summary jointctc-export prints.
"""

from __future__ import annotations

import os
import time
from typing import Any


class ExportRefused(ValueError):
    """The export cannot be made as asked (the language model options); the message says why."""


def fusion_lm(
    config: Any, vocab: Any, workdir: str, lm_workdir: str | None = None, lm_weight: float | None = None
) -> tuple[Any, float]:
    """The language model to export with the model of `workdir` (config, vocab) and its weight:
    (`tf_jointctc.export.FusionLM` or None, lm_weight). See the module docstring for the defaults.

    Raises ExportRefused saying why (both work dirs and both vocabularies named for a vocabulary mismatch).
    """
    from tf_jointctc.decoding.options import fused_lm_weight

    decode = config.get("decode") or {}
    explicit = lm_workdir is not None
    if not explicit:
        lm_workdir = decode.get("lm_workdir", "") or ""
    try:  # the config's weight is the weight *when* an LM is fused, as in jointctc-eval
        weight = fused_lm_weight(decode.get("lm_weight", 0.0), lm_weight, with_lm=bool(lm_workdir))
    except ValueError as error:
        raise ExportRefused(str(error)) from error
    if not lm_workdir:
        return None, 0.0
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


def export_workdir(
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
