"""Decoding a data set and scoring it: the work of jointctc-eval, reusable from Python."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterable
from typing import Any

import tensorflow as tf
from absl import logging

from tf_jointctc import metrics
from tf_jointctc.decoding import modes
from tf_jointctc.decoding.options import DecodeOptions, explicit_mode_settings, fused_lm_weight
from tf_jointctc.text import Vocabulary


def make_decoder(model: Any, mode: str, options: DecodeOptions, lm: Any = None):
    """A traced function: (features [B, T, 120], feature_lengths [B]) -> (token_ids [B, N], num_tokens, score).

    `mode`: one of `decoding.modes.MODES` (ctc_greedy, attention, joint); refused if the model cannot run it.
    `lm`: a character LM fused with weight `options.lm_weight` (attention and joint modes), or None.
    """
    modes.check_mode(model, mode, options, lm)

    def decode(features: tf.Tensor, feature_lengths: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        h, lengths = model.encode(features, feature_lengths, training=False)
        return modes.decode(model, h, lengths, mode, options, lm)

    return tf.function(decode, reduce_retracing=True)


@dataclasses.dataclass
class UtteranceResult:
    id: str
    reference: str
    hypothesis: str
    score: float
    chars: metrics.EditCounts
    words: metrics.EditCounts

    def as_dict(self) -> dict[str, Any]:
        def counts(c: metrics.EditCounts) -> dict[str, int]:
            return {"sub": c.substitutions, "del": c.deletions, "ins": c.insertions, "ref": c.reference_length}

        return {"id": self.id, "reference": self.reference, "hypothesis": self.hypothesis, "score": self.score,
                "cer": self.chars.rate(), "chars": counts(self.chars), "words": counts(self.words)}


def decode_dataset(
    model: Any,
    vocab: Vocabulary,
    batches: Iterable[dict[str, tf.Tensor]],
    mode: str,
    options: DecodeOptions,
    lm: Any = None,
) -> tuple[list[UtteranceResult], float]:
    """Decodes batches (with `texts` and `ids`) and scores each utterance; returns (results, decode seconds).
    `lm`: as for `make_decoder`."""
    decode = make_decoder(model, mode, options, lm)
    results: list[UtteranceResult] = []
    seconds = 0.0
    for batch in batches:
        started = time.perf_counter()
        token_ids, num_tokens, score = decode(batch["features"], batch["feature_lengths"])
        token_ids, num_tokens, score = token_ids.numpy(), num_tokens.numpy(), score.numpy()
        seconds += time.perf_counter() - started
        for i, (utt_id, reference) in enumerate(zip(batch["ids"].numpy(), batch["texts"].numpy())):
            reference = reference.decode()
            hypothesis = vocab.decode(token_ids[i, : num_tokens[i]])
            results.append(UtteranceResult(
                utt_id.decode(), reference, hypothesis, float(score[i]),
                metrics.char_counts(reference, hypothesis), metrics.word_counts(reference, hypothesis),
            ))
    return results, seconds


def summarize(results: list[UtteranceResult], audio_seconds: float, decode_seconds: float) -> dict[str, Any]:
    """The JSON line of jointctc-eval: CER/WER in percent, counts, timing and real-time factor."""
    chars = sum((r.chars for r in results), metrics.EditCounts())
    words = sum((r.words for r in results), metrics.EditCounts())
    return {
        "cer": round(chars.rate(), 3),
        "wer": round(words.rate(), 3),
        "utterances": len(results),
        "audio_seconds": round(audio_seconds, 3),
        "decode_seconds": round(decode_seconds, 3),
        "rtf": round(decode_seconds / audio_seconds, 5) if audio_seconds else None,
        "char_errors": {"sub": chars.substitutions, "del": chars.deletions, "ins": chars.insertions,
                        "ref": chars.reference_length},
        "word_errors": {"sub": words.substitutions, "del": words.deletions, "ins": words.insertions,
                        "ref": words.reference_length},
    }


def load_fusion_lm(lm_workdir: str, vocab: Vocabulary, workdir: str = "the recognizer") -> tuple[Any, str]:
    """The best character LM of a jointctc-train-lm work dir, for shallow fusion with a recognizer over `vocab`
    (of `workdir`, for the message); returns (lm, checkpoint path).

    Raises ValueError naming both when the LM's vocabulary is not the recognizer's, FileNotFoundError or
    ValueError when `lm_workdir` is not a trained jointctc-train-lm work dir.
    """
    from tf_jointctc.data.lm_text import vocabulary_mismatch_message
    from tf_jointctc.trained_model import load_trained_lm

    lm, _, lm_vocab, lm_checkpoint = load_trained_lm(lm_workdir, "best")
    mismatch = vocabulary_mismatch_message(lm_vocab, vocab)
    if mismatch is not None:
        raise ValueError(f"the language model of {lm_workdir} cannot be fused with the recognizer of {workdir}: "
                         f"{mismatch}")
    return lm, lm_checkpoint


def evaluation_options(decode_config: Any, mode: str, lm_workdir: str | None = None, lm_weight: float | None = None,
                       **overrides: float | int | None) -> tuple[DecodeOptions, str]:
    """What `evaluate_workdir` decodes `mode` with, from a work dir's `config.decode` and the caller's arguments
    (their meaning: `evaluate_workdir`): (the options for this mode, the LM work dir to fuse, "" for none).

    Mode ctc_greedy never fuses an LM; its options keep an explicit `lm_weight` so that `modes.check_mode` refuses
    it, saying why. Raises ValueError for an override that is no `DecodeOptions` field, for a weight that is not a
    finite number >= 0, and for an explicit `lm_weight > 0` without an LM (`fused_lm_weight`).
    """
    if lm_workdir is None:
        lm_workdir = decode_config.get("lm_workdir", "") or ""
    if mode == modes.CTC_GREEDY:
        lm_workdir = ""
        weight = float(lm_weight or 0.0)
    else:
        weight = fused_lm_weight(decode_config.get("lm_weight", 0.0), lm_weight, bool(lm_workdir))
    # An explicit lm_weight / length_penalty / ctc_weight is this mode's, so it also beats the attention and joint
    # modes' own settings.
    values = {**overrides, "lm_weight": weight}
    values.update(
        (name, value) for name, value in explicit_mode_settings({**overrides, "lm_weight": lm_weight}).items()
        if value is not None
    )
    options = DecodeOptions.from_config(decode_config, **values)
    return options.for_mode(mode, with_lm=bool(lm_workdir)), lm_workdir


def evaluate_workdir(workdir: str, data: str, mode: str, output: str | None = None, which: str = "best",
                     batch_size: int = 8, lm_workdir: str | None = None, lm_weight: float | None = None,
                     **overrides: float | int | None) -> dict:
    """Decodes `data` with the model of a jointctc-train work dir; returns the jointctc-eval summary.

    Decoding options default to the work dir's `config.decode`; `overrides` are `DecodeOptions` fields (beam,
    ctc_weight, length_penalty, the length ratios, the coverage term, the repeat and stall limits; None: the
    config's), a name that is no field is refused (ValueError). Evaluation keeps every
    readable utterance: no length limit and no CTC-feasibility filter (a 4x-subsampled CTC model simply cannot emit
    some of them).
    With `output`, writes one JSON object per utterance (reference, hypothesis, score, edit counts).

    Shallow fusion: `lm_workdir` (default `config.decode.lm_workdir`; "" for none) is a jointctc-train-lm work dir
    whose best LM joins the attention and joint beam searches with weight `lm_weight` (default
    `config.decode.lm_weight`; in mode attention `config.decode.attention_lm_weight` and
    `attention_lm_length_penalty` where set, unless `lm_weight` / `length_penalty` are given, and in mode joint
    `config.decode.joint_lm_ctc_weight` where set, unless `ctc_weight` is given: `DecodeOptions.for_mode`).
    The config's weights are the weights *when* an LM is fused: without an LM (none configured, `lm_workdir` "", or
    mode ctc_greedy, which never loads one) the search runs without it (`options.fused_lm_weight`). It is refused
    (ValueError) when its vocabulary differs from the recognizer's, and for an explicit `lm_weight > 0` with no LM
    or in mode ctc_greedy.
    The summary records `lm_workdir`, `lm_weight` and `lm_checkpoint` (None, 0.0, None without an LM).
    """
    from tf_jointctc.data import make_dataset, prepare_dataset
    from tf_jointctc.features import FeatureExtractor
    from tf_jointctc.trained_model import load_trained_model
    from tf_jointctc.training import atomic

    model, config, vocab, checkpoint = load_trained_model(workdir, which)
    options, lm_workdir = evaluation_options(config.decode, mode, lm_workdir, lm_weight, **overrides)
    lm = lm_checkpoint = None
    if lm_workdir:
        lm, lm_checkpoint = load_fusion_lm(lm_workdir, vocab, workdir)
    modes.check_mode(model, mode, options, lm)
    key = hashlib.sha1(os.path.abspath(data).encode()).hexdigest()[:12]
    prepared = prepare_dataset(data, os.path.join(workdir, "cache", f"eval-{key}"), vocab, num_shards=1,
                               max_seconds=None, subsampling=None)
    dataset = make_dataset(prepared["shards"], batch_size=batch_size, training=False, include_text=True,
                           feature_extractor=FeatureExtractor(num_mel_bins=model.num_mel_bins))
    results, seconds = decode_dataset(model, vocab, dataset, mode, options, lm)
    summary = summarize(results, prepared["total_seconds"], seconds)
    summary.update(mode=mode, **options.search_settings())
    summary.update(ctc_weight=options.ctc_weight if mode == modes.JOINT else None, skipped=prepared["num_skipped"],
                   checkpoint=checkpoint, data=os.path.abspath(data),
                   lm_workdir=os.path.abspath(lm_workdir) if lm is not None else None, lm_checkpoint=lm_checkpoint)
    if output:
        atomic.write_text(output, "".join(json.dumps(r.as_dict()) + "\n" for r in results))
        logging.info("wrote %d hypotheses to %s", len(results), output)
    return summary
