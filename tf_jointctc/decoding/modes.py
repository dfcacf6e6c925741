"""Decoding modes: one vocabulary and one dispatch for evaluation (jointctc-eval) and the exported signatures.

| mode         | decoder                                                | needs                                  |
|--------------|--------------------------------------------------------|----------------------------------------|
| `ctc_greedy` | `ctc_greedy_decode` (CTC best path); no LM             | a CTC branch (trained with lambda > 0) |
| `attention`  | `beam_search_decode`: CTC weight 0, LM by `lm_weight`  | an attention decoder (lambda < 1)      |
| `joint`      | `beam_search_decode`: `ctc_weight`, LM by `lm_weight`  | both branches and 0 < ctc_weight < 1   |

These are the names of `jointctc-eval --mode` (the public contract in docs/interfaces.md). The SavedModel/TFLite
signature names (`serving_default`, `ctc_greedy`, `attention_beam`) are another part of that contract;
`export/signatures.py` maps each signature to one of these modes.

A character language model joins the beam search of `attention` and `joint` by shallow fusion
(`options.lm_weight` = beta > 0 and the LM passed to `decode`); `ctc_greedy` has no place for one, and
`check_mode` refuses it with `lm_weight > 0`. `unsupported_reason` says only what the model itself can decode.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tf_jointctc.decoding.beam_search import beam_search_decode, check_lm
from tf_jointctc.decoding.greedy import ctc_greedy_decode
from tf_jointctc.decoding.options import DecodeOptions

CTC_GREEDY = "ctc_greedy"
ATTENTION = "attention"
JOINT = "joint"
MODES = (CTC_GREEDY, ATTENTION, JOINT)

_NEEDS_CTC = (CTC_GREEDY, JOINT)
_NEEDS_ATTENTION = (ATTENTION, JOINT)


def unsupported_reason(model: Any, mode: str, options: DecodeOptions) -> str | None:
    """Why `model` cannot decode with `mode` and `options` (a sentence), or None if it can.

    `model` needs only `compute_ctc` and `compute_attention` (which branches its training lambda kept).
    """
    if mode not in MODES:
        return f"unknown mode {mode!r}; choose one of {', '.join(MODES)}"
    if mode in _NEEDS_CTC and not model.compute_ctc:
        return f"mode {mode!r} needs a CTC branch; this model was trained with lambda = 0"
    if mode in _NEEDS_ATTENTION and not model.compute_attention:
        return f"mode {mode!r} needs an attention decoder; this model was trained with lambda = 1"
    if mode == JOINT and not 0.0 < options.ctc_weight < 1.0:
        return f"joint decoding needs 0 < ctc_weight < 1, got {options.ctc_weight}"
    return None


def check_mode(model: Any, mode: str, options: DecodeOptions, lm: Any = None) -> None:
    """Raises ValueError (saying why) if `model` cannot decode with `mode` and `options`, or with the language
    model `lm` (None: none) at `options.lm_weight`: ctc_greedy takes no LM, `lm_weight > 0` needs an LM, and the
    LM's output vocabulary (size, sos, eos) must be the model's."""
    reason = unsupported_reason(model, mode, options)
    if reason is not None:
        raise ValueError(reason)
    lm_weight = float(options.lm_weight)
    if mode == CTC_GREEDY:
        if lm_weight > 0.0:
            raise ValueError(
                f"mode {mode!r} cannot use a language model (lm_weight={lm_weight}): shallow fusion is part of "
                "beam search; decode with mode 'attention' or 'joint', or set lm_weight to 0"
            )
        return
    check_lm(model, lm, lm_weight)


def beam_ctc_weight(mode: str, options: DecodeOptions) -> float:
    """The CTC weight beam search uses in `mode`: `options.ctc_weight` when joint, 0 when attention only."""
    return float(options.ctc_weight) if mode == JOINT else 0.0


def decode(
    model: Any, h: tf.Tensor, lengths: tf.Tensor, mode: str, options: DecodeOptions, lm: Any = None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Decodes encoder outputs with `mode` (not checked here: see `check_mode`).

    Args:
      model: a `JointCTCAttention`.
      h: encoder outputs, float32 [B, L, P].
      lengths: valid encoder frames, int32 [B] (at least 1 each).
      mode: one of `MODES`.
      options: the search's settings, after `DecodeOptions.for_mode` (`search_settings`: beam, ctc_weight in mode
        joint only, length_penalty, length ratios, lm_weight, the coverage term, the repeat and stall limits; unused
        by ctc_greedy).
      lm: the character language model fused with weight `options.lm_weight` (attention and joint; unused when
        the weight is 0, and by ctc_greedy).

    Returns:
      (token_ids int32 [B, N] padded with -1, num_tokens int32 [B], score float32 [B]).
    """
    if mode == CTC_GREEDY:
        return ctc_greedy_decode(model.ctc_logits(h), lengths)
    settings = options.search_settings()  # beam_search's keywords: `DecodeOptions`' shared fields
    settings["ctc_weight"] = beam_ctc_weight(mode, options)
    return beam_search_decode(model, h, lengths, lm=lm, **settings)
