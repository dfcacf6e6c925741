"""The serving functions of an exported model: waveform in, token ids (and text) out, everything in-graph.

Every decoding signature has the same inputs and outputs (docs/interfaces.md, "Public contract"):

- inputs `waveform: float32 [batch, samples]` (16 kHz mono in [-1, 1]), `num_samples: int32 [batch]`;
- outputs `token_ids: int32 [batch, max_len]` (padded with -1), `num_tokens: int32 [batch]`,
  `score: float32 [batch]` and, in the SavedModel only, `text: string [batch]` (TFLite has no string outputs).

The signatures (a model gets those it can run; `available_modes`):

- `serving_default`: joint CTC/attention beam search. Falls back to attention beam search if the model has
  no CTC branch (trained with ctc_weight 0) or the decode ctc_weight is 0, and to CTC greedy if it has no
  attention branch (trained with ctc_weight 1) or the decode ctc_weight is 1;
- `ctc_greedy`: CTC best path; only for models with a CTC branch;
- `attention_beam`: attention-only beam search (decode ctc_weight 0); only for models with an attention
  branch.

Each signature runs one decoding mode of `tf_jointctc.decoding.modes` (`joint`, `attention`, `ctc_greedy`,
the names of `jointctc-eval --mode`); what each one runs is recorded in the export's `export_info`
(`"signatures"`: {signature: {"mode": ..., decoding options}}, `"serving_default"`: its mode).

Feature extraction, CMVN and the vocabulary are inside the graph. The decoding options (beam, CTC weight,
length penalty, length ratios) are baked in as constants and recorded in `export_info`.

A character language model (`FusionLM`, issue 13) joins the beam searches of `serving_default` (when it runs
`joint` or `attention`) and `attention_beam` by shallow fusion with weight `options.lm_weight` (beta > 0; a
signature decoding mode `attention` takes `options.attention_lm_weight` and `attention_lm_length_penalty` where
set, one decoding mode `joint` takes `options.joint_lm_ctc_weight` where set, `DecodeOptions.for_mode`), exactly as
`modes.decode(..., lm=)` does; `ctc_greedy` stays LM-free. Its weights are inside the export, its signatures'
records gain `"lm_weight"` and `export_info` gains `"lm"` (`lm_record`). Without an LM (and `lm_weight` 0) the
export is the one without LM support: same signatures, same graphs, same `export_info` (but for the attention and
joint modes' own LM settings in `"decode"` where a config sets them).

Behaviour at the serving boundary (the same in SavedModel and TFLite):

- `num_samples` is clipped to `[0, samples]`;
- non-finite samples (NaN, +-inf) are replaced by 0 (`tf.where(|x| <= FLT_MAX, x, 0)`: `tf.math.is_finite` is
  not a TFLite built-in, and NaN fails every comparison);
- an utterance shorter than one 25 ms frame (`MIN_SAMPLES` = 400 samples, including 0) gives an empty result
  (`num_tokens` 0, `token_ids` all -1, `score` 0, `text` ""); every waveform is zero-padded in-graph to at
  least two encoder frames (`min_width`) so that no layer or decoder ever sees an empty time axis (padding
  does not change the result);
- a waveform wider than `MAX_SAMPLES` (60 s) is refused by `tf.debugging.assert_less_equal` in the SavedModel
  (`InvalidArgumentError`). The TFLite converter drops assertions, so the `.tflite` file cannot refuse it
  itself: `tf_jointctc.Recognizer` refuses such audio before invoking either format (ValueError);
- wrong rank or dtype is refused by the signature's `TensorSpec` (SavedModel) and by the interpreter's
  input tensor type (TFLite; `Recognizer` checks both before calling).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from tf_jointctc.data.lm_text import vocabulary_mismatch_message
from tf_jointctc.decoding import modes
from tf_jointctc.decoding.beam_search import check_lm
from tf_jointctc.decoding.options import DecodeOptions
from tf_jointctc.features import FRAME_LENGTH, FRAME_STEP, SAMPLE_RATE, FeatureExtractor

MAX_SECONDS = 60.0
MAX_SAMPLES = int(MAX_SECONDS * SAMPLE_RATE)  # 960000: longer audio is refused
MIN_SAMPLES = FRAME_LENGTH  # 400 (25 ms): shorter audio has no complete frame and gives an empty transcript
FORMAT_VERSION = 1
_FLOAT_MAX = float(np.finfo(np.float32).max)

SERVING_DEFAULT = "serving_default"
CTC_GREEDY = "ctc_greedy"
ATTENTION_BEAM = "attention_beam"
DECODING_SIGNATURES = (SERVING_DEFAULT, CTC_GREEDY, ATTENTION_BEAM)
EXPORT_INFO_SIGNATURE = "export_info"  # SavedModel only: no inputs -> export_info (JSON), vocabulary [V]

# The mode of each signature but serving_default, whose mode depends on the model (`serving_mode`).
SIGNATURE_MODES = {CTC_GREEDY: modes.CTC_GREEDY, ATTENTION_BEAM: modes.ATTENTION}


def serving_mode(model: Any, options: DecodeOptions) -> str:
    """What `serving_default` decodes: `joint` when the model has both branches and 0 < options.ctc_weight < 1;
    else `attention` if the model has an attention branch and options.ctc_weight < 1 (or it has no CTC branch);
    else `ctc_greedy`."""
    if modes.unsupported_reason(model, modes.JOINT, options) is None:
        return modes.JOINT
    if model.compute_attention and (options.ctc_weight < 1.0 or not model.compute_ctc):
        return modes.ATTENTION
    return modes.CTC_GREEDY


def _mode_info(mode: str, options: DecodeOptions) -> dict[str, Any]:
    if mode == modes.CTC_GREEDY:
        return {"mode": mode}
    options = options.for_mode(mode, with_lm=options.lm_weight > 0.0)  # the attention and joint modes' own LM settings
    # to_dict leaves out the LM weight, the coverage term and the limits when off, so an LM-free record reads as
    # before they existed; the CTC weight is the search's (0 in mode attention).
    return {"mode": mode, **options.to_dict(), "ctc_weight": modes.beam_ctc_weight(mode, options)}


def available_modes(model: Any, options: DecodeOptions) -> dict[str, dict[str, Any]]:
    """Which signatures `model` gets and what each decodes: {signature: {"mode": ..., decoding options}}.

    `serving_default` always (its mode: `serving_mode`); `ctc_greedy` needs a CTC branch, `attention_beam` an
    attention branch (`modes.unsupported_reason`). With `options.lm_weight > 0` the beam-search signatures'
    entries hold `"lm_weight"` (they fuse the LM; a signature decoding mode "attention" takes
    `options.attention_lm_weight` and `attention_lm_length_penalty` where set, one decoding mode "joint"
    `options.joint_lm_ctc_weight` where set, `DecodeOptions.for_mode`);
    `ctc_greedy`'s never does.
    """
    if not model.compute_attention and not model.compute_ctc:  # pragma: no cover - a model always has one
        raise ValueError("the model has neither a CTC nor an attention branch")
    available = {SERVING_DEFAULT: _mode_info(serving_mode(model, options), options)}
    for name, mode in SIGNATURE_MODES.items():
        if modes.unsupported_reason(model, mode, options) is None:
            available[name] = _mode_info(mode, options)
    return available


@dataclasses.dataclass(frozen=True)
class FusionLM:
    """A character language model to put into an export's beam-search signatures (shallow fusion).

    Attributes:
      model: a `CharacterLanguageModel` (`initial_state`, `step`, `vocab_size`, `sos_id`, `eos_id`; e.g. from
        `trained_model.load_trained_lm`).
      vocab: its vocabulary (a `Vocabulary`): it must be the recognizer's, token for token (checked).
      workdir, checkpoint: where it came from (recorded in `export_info["lm"]`; None when unknown).
    """

    model: Any
    vocab: Any
    workdir: str | None = None
    checkpoint: str | None = None


def _lm_layer(lm_model: Any) -> Any:
    """The `CharacterLM` layer of a `CharacterLanguageModel` (it holds the weights; built at construction)."""
    return getattr(lm_model, "lm", lm_model)


def lm_record(
    model: Any, vocab: Any, options: DecodeOptions, lm: FusionLM | None, signatures: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """`export_info["lm"]` (None without an LM), after checking that `lm` can be fused at `options.lm_weight`.

    `signatures` is `available_modes(model, options)`. Raises ValueError when `options.lm_weight > 0` without an
    LM, an LM with weight 0 (it would not be in the export), an LM whose vocabulary is not `vocab` (the message
    names both, `data.lm_text.vocabulary_mismatch_message`) or whose output layer is not the model's, and an LM
    for a model without a beam-search signature (trained with lambda = 1, or exported with ctc_weight 1).
    """
    weight = float(options.lm_weight)
    if lm is None:
        if weight > 0.0:
            raise ValueError(f"lm_weight={weight} needs a language model; pass one (lm=) or set lm_weight to 0")
        return None
    where = f" of {lm.workdir}" if lm.workdir else ""
    if weight <= 0.0:
        raise ValueError(
            f"the language model{where} would not be in the export with lm_weight 0: set lm_weight (beta) > 0, "
            "or export without a language model"
        )
    mismatch = vocabulary_mismatch_message(lm.vocab, vocab)
    if mismatch is not None:
        raise ValueError(f"the language model{where} cannot be exported with the recognizer: {mismatch}")
    check_lm(model, lm.model, weight)
    fused = sorted(name for name, info in signatures.items() if "lm_weight" in info)
    if not fused:
        raise ValueError(
            f"the language model{where} has no place in this export: none of its signatures "
            f"({', '.join(sorted(signatures))}) runs a beam search (the model has no attention decoder, or "
            "ctc_weight is 1); export without a language model"
        )
    layer = _lm_layer(lm.model)
    return {
        "workdir": lm.workdir,
        "checkpoint": lm.checkpoint,
        "weight": weight,
        "layers": int(layer.num_layers),
        "units": int(layer.units),
        "embedding_dim": int(layer.embedding_dim),
        "vocab_size": int(lm.model.vocab_size),
        "vocabulary_check": f"passed: the same {int(vocab.size)} tokens with the same ids as the recognizer's",
        "signatures": fused,
    }


def input_signature(batch_size: int | None = None) -> list[tf.TensorSpec]:
    """`[waveform float32 [batch, samples], num_samples int32 [batch]]`; TFLite needs `batch_size=1`."""
    return [
        tf.TensorSpec([batch_size, None], tf.float32, name="waveform"),
        tf.TensorSpec([batch_size], tf.int32, name="num_samples"),
    ]


def min_width(model: Any) -> int:
    """Samples the waveform is zero-padded to, so that the encoder output has at least 2 frames: the decoders
    cannot run on an empty time axis. (One frame would do since the CTC prefix scan handles single-frame input;
    the second is a margin kept because the TFLite parity tests were measured with it.) Padding never changes
    the result of the valid samples."""
    return FRAME_LENGTH + FRAME_STEP * int(model.time_reduction)


def sanitize_inputs(
    waveform: tf.Tensor,
    num_samples: tf.Tensor,
    max_samples: int = MAX_SAMPLES,
    check_max: bool = True,
    pad_to: int = FRAME_LENGTH,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The boundary rules of the module docstring: refuse > max_samples, zero non-finite samples, clip
    num_samples to [0, width], zero-pad the width to at least `pad_to` samples."""
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    num_samples = tf.convert_to_tensor(num_samples, tf.int32)
    width = tf.shape(waveform)[1]
    if check_max:
        check = tf.debugging.assert_less_equal(
            width,
            tf.constant(max_samples, tf.int32),
            message=f"audio too long: at most {max_samples} samples ({max_samples / SAMPLE_RATE:g} s at 16 kHz)",
        )
        with tf.control_dependencies([check]):
            waveform = tf.identity(waveform)
    waveform = tf.where(tf.abs(waveform) <= _FLOAT_MAX, waveform, tf.zeros_like(waveform))
    num_samples = tf.minimum(tf.maximum(num_samples, 0), width)
    pad = tf.maximum(pad_to - width, 0)
    padding = tf.zeros(tf.stack([tf.shape(waveform)[0], pad]), tf.float32)
    return tf.concat([waveform, padding], axis=1), num_samples


def _mask_empty(
    token_ids: tf.Tensor, num_tokens: tf.Tensor, score: tf.Tensor, empty: tf.Tensor
) -> dict[str, tf.Tensor]:
    token_ids = tf.cast(token_ids, tf.int32)
    num_tokens = tf.where(empty, tf.zeros_like(num_tokens), tf.cast(num_tokens, tf.int32))
    score = tf.where(empty, tf.zeros_like(score), tf.cast(score, tf.float32))
    token_ids = tf.where(tf.expand_dims(empty, 1), tf.constant(-1, tf.int32), token_ids)
    return {"token_ids": token_ids, "num_tokens": num_tokens, "score": score}


def ids_to_text(token_ids: tf.Tensor, num_tokens: tf.Tensor, tokens: tf.Tensor, skip_ids: tuple[int, ...]) -> tf.Tensor:
    """In-graph `Vocabulary.decode`: [B, N] ids (-1 padded) -> [B] strings (tf.gather + reduce_join)."""
    vocab_size = tf.shape(tokens)[0]
    positions = tf.expand_dims(tf.range(tf.shape(token_ids)[1]), 0)
    keep = (positions < tf.expand_dims(num_tokens, 1)) & (token_ids >= 0) & (token_ids < vocab_size)
    for skip in skip_ids:
        keep &= tf.not_equal(token_ids, skip)
    pieces = tf.gather(tokens, tf.clip_by_value(token_ids, 0, vocab_size - 1))
    pieces = tf.where(keep, pieces, tf.constant("", tf.string))
    return tf.strings.reduce_join(pieces, axis=1)


def make_decode_fn(
    model: Any,
    mode_info: Mapping[str, Any],
    *,
    vocab_tokens: tuple[str, ...] | None = None,
    skip_ids: tuple[int, ...] = (),
    check_max: bool = True,
    lm: Any = None,
) -> Callable[[tf.Tensor, tf.Tensor], dict[str, tf.Tensor]]:
    """The serving function `(waveform, num_samples) -> outputs` of one signature (not yet traced).

    Args:
      model: a `JointCTCAttention`.
      mode_info: one entry of `available_modes`; with `"lm_weight"` the beam search fuses `lm`.
      vocab_tokens: if given, a `text` output is added (SavedModel only: TFLite has no string outputs).
      skip_ids: ids left out of `text` (blank and sos/eos).
      check_max: assert the width is at most MAX_SAMPLES (dropped by the TFLite converter anyway).
      lm: the character LM (a `CharacterLanguageModel`, not a `FusionLM`) fused with weight
        `mode_info["lm_weight"]`; unused when the entry has none (ctc_greedy, or no LM).
    """
    extractor = FeatureExtractor(num_mel_bins=model.num_mel_bins, name="features")
    mode = mode_info["mode"]
    options = DecodeOptions.from_config(mode_info)  # ctc_greedy: the defaults, unused
    if options.lm_weight > 0.0:
        modes.check_mode(model, mode, options, lm)
    else:
        lm = None
    pad_to = min_width(model)
    tokens_constant = None if vocab_tokens is None else np.array(list(vocab_tokens), dtype=object)

    def decode(waveform: tf.Tensor, num_samples: tf.Tensor) -> dict[str, tf.Tensor]:
        waveform, num_samples = sanitize_inputs(waveform, num_samples, check_max=check_max, pad_to=pad_to)
        features, num_frames = extractor(waveform, num_samples)
        h, encoder_lengths = model.encode(features, num_frames, training=False)
        # The decoders need at least one valid encoder frame: decode one (all-zero) frame and blank the result.
        empty = num_frames <= 0
        encoder_lengths = tf.maximum(encoder_lengths, 1)
        token_ids, num_tokens, score = modes.decode(model, h, encoder_lengths, mode, options, lm)
        outputs = _mask_empty(token_ids, num_tokens, score, empty)
        if tokens_constant is not None:
            outputs["text"] = ids_to_text(
                outputs["token_ids"], outputs["num_tokens"], tf.constant(tokens_constant, tf.string), skip_ids
            )
        return outputs

    return decode


def export_info(
    model: Any,
    vocab: Any,
    options: DecodeOptions,
    *,
    batch_size: int | None,
    extra: Mapping[str, Any] | None = None,
    lm: FusionLM | None = None,
) -> dict[str, Any]:
    """What an export records about itself (JSON-serializable); `"lm"` only with a language model (`lm_record`,
    which also refuses an LM that cannot be fused)."""
    modes = available_modes(model, options)
    fused = lm_record(model, vocab, options, lm, modes)
    info = {
        "format_version": FORMAT_VERSION,
        "sample_rate": SAMPLE_RATE,
        "min_samples": MIN_SAMPLES,
        "max_samples": MAX_SAMPLES,
        "batch_size": batch_size,
        "decode": options.to_dict(),
        "signatures": modes,
        "serving_default": modes[SERVING_DEFAULT]["mode"],
        "model_ctc_weight": float(getattr(model, "ctc_weight", float("nan"))),
        "vocabulary": list(vocab.tokens),
        "blank_id": int(vocab.blank_id),
        "sos_id": int(vocab.sos_id),
        "eos_id": int(vocab.eos_id),
    }
    if fused is not None:
        info["lm"] = fused
    if extra:
        info.update(dict(extra))
    return info


def export_info_json(info: Mapping[str, Any]) -> str:
    return json.dumps(dict(info), sort_keys=True)


def build_archive(
    model: Any,
    vocab: Any,
    options: DecodeOptions,
    *,
    batch_size: int | None = None,
    with_text: bool = True,
    check_max: bool = True,
    extra_info: Mapping[str, Any] | None = None,
    lm: FusionLM | None = None,
) -> tuple[Any, dict[str, Any]]:
    """An `ExportArchive` with the decoding signatures (and, with text, the `export_info` signature).

    Returns (archive, export_info dict). `batch_size=None` is a dynamic batch (SavedModel); TFLite needs 1.
    `lm`: a character LM fused into the beam-search signatures with weight `options.lm_weight` (its weights
    are tracked into the archive).
    """
    import keras

    info = export_info(model, vocab, options, batch_size=batch_size, extra=extra_info, lm=lm)
    archive = keras.export.ExportArchive()
    archive.track(model)
    if lm is not None:
        archive.track(_lm_layer(lm.model))
    skip_ids = (int(vocab.blank_id), int(vocab.sos_id), int(vocab.eos_id))
    for name in DECODING_SIGNATURES:
        if name not in info["signatures"]:
            continue
        fn = make_decode_fn(
            model,
            info["signatures"][name],
            vocab_tokens=tuple(vocab.tokens) if with_text else None,
            skip_ids=skip_ids,
            check_max=check_max,
            lm=None if lm is None else lm.model,
        )
        archive.add_endpoint(name, fn, input_signature=input_signature(batch_size))
    if with_text:
        info_json = export_info_json(info)
        tokens = list(vocab.tokens)

        def describe() -> dict[str, tf.Tensor]:
            return {
                "export_info": tf.constant(info_json, tf.string),
                "vocabulary": tf.constant(tokens, tf.string),
            }

        archive.add_endpoint(EXPORT_INFO_SIGNATURE, describe, input_signature=[])
    return archive, info
