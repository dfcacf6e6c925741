"""Batched, in-graph beam search for attention and joint CTC/attention decoding (paper section 3.2).

Everything runs in one `tf.while_loop` over output steps on N = B * K hypotheses (B utterances, beam K) with
fixed shapes, so it traces into a SavedModel signature and uses TFLite built-in ops (TOPK_V2, GATHER,
SELECT_V2, WHILE, ...).

One step (ESPnet's `BatchBeamSearch`, with fixed shapes):

1. every full scorer scores the whole vocabulary; their weighted sum is the pre-beam score;
2. with partial scorers (CTC prefix), the candidates are the `pre_beam` best non-eos tokens of each
   hypothesis plus eos; partial scorers score only those; otherwise the candidates are all V tokens;
3. eos is forbidden before the minimum length, every other token at the last step (forced eos);
4. the K best of the K * C (parent, candidate) pairs of each utterance are kept (if one of them was scored by a
   bounded partial scorer's upper bound, the candidates are scored exactly and the K best chosen again, so the
   kept pairs are those of exact scoring: `scorers.py`); those ending in eos move to
   the utterance's finished set (its K best are kept, with their final scores), the others stay live (a live
   slot taken by an eos is dead until the next step refills the beam).

At the first step only one copy of the sos hypothesis is live (the others start at a dead score), so the beam
never holds duplicates. An utterance is done when every live hypothesis is dead, at its maximum length, or
when it has K finished hypotheses and the K-th is at least the best score any live hypothesis could still
reach (live score + remaining steps * the scorers' per-step bound + what a total-bounded scorer can still add
to it; exact: it never changes the result).
Utterances are independent: padding and other utterances in the batch do not change an utterance's result.

`beam_search` builds the scorers of the attention and joint modes (attention, CTC prefix, length bonus) and,
with `lm_weight > 0`, a character language model's `RNNLMScorer` (shallow fusion, issue 13), with
`coverage_weight > 0` the `CoverageScorer`, with `max_repeats > 0` the `RepeatLimit` (no unit repeated more than
`max_repeats` times in a row), with `max_attention_stall > 0` the `AttentionStallLimit` (a hypothesis whose
attention peak has stayed behind its furthest frame for more than that many tokens in a row may only end).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tf_jointctc.decoding.scorers import (
    IMPOSSIBLE,
    AttentionScorer,
    AttentionStallLimit,
    CoverageScorer,
    CTCPrefixScorer,
    LengthBonus,
    RepeatLimit,
    RNNLMScorer,
    Scorer,
)

DEAD = -1e10  # score of dead hypotheses / forbidden extensions
_DEAD_THRESHOLD = DEAD / 2


def _max_step_gain(weighted_scorers: Sequence[tuple[Scorer, float]]) -> float | None:
    """Upper bound of one step's weighted score increment over the scorers that are not `total_bounded` (those
    bound their sum instead: `remaining_gain`), or None if unbounded."""
    total = 0.0
    for scorer, weight in weighted_scorers:
        low, high = scorer.bounds
        if weight == 0 or scorer.total_bounded:
            continue
        ends = [weight * low, weight * high] if high is not None else [math.inf]
        gain = max(e for e in ends if not math.isnan(e))
        if math.isinf(gain):
            return None
        total += gain
    return max(total, 0.0)


def batch_beam_search(
    weighted_scorers: Sequence[tuple[Scorer, float]],
    *,
    batch_size: Any,
    vocab_size: int,
    sos_id: int,
    eos_id: int,
    max_lengths: tf.Tensor,
    min_lengths: tf.Tensor,
    beam: int = 20,
    pre_beam: int | None = None,
    nbest: int = 1,
) -> dict[str, tf.Tensor]:
    """Generic beam search over weighted scorers (see `scorers.py`).

    Args:
      weighted_scorers: (scorer, weight) pairs; the total score is `sum weight * score`.
      batch_size: B (int or scalar tensor).
      vocab_size, sos_id, eos_id: output vocabulary.
      max_lengths: [B] int32 maximum number of output steps, eos included (so at most `max_lengths - 1`
        tokens; eos is forced at the last step; values < 1 are raised to 1).
      min_lengths: [B] int32 minimum number of tokens before eos (overridden by the forced last-step eos).
      beam: K.
      pre_beam: candidates per hypothesis for the partial scorers (plus eos; capped at V - 1). Required when
        there is a partial scorer.
      nbest: hypotheses returned per utterance (<= beam).

    Returns:
      dict(token_ids [B, nbest, S] int32 padded with -1 (eos not included; S = max(max_lengths)),
      num_tokens [B, nbest] int32, score [B, nbest] float32 best first). Slots without a valid hypothesis have
      no tokens and score -inf.
    """
    beam = int(beam)
    nbest = int(nbest)
    vocab_size = int(vocab_size)
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    if not 1 <= nbest <= beam:
        raise ValueError(f"nbest must be in [1, beam={beam}], got {nbest}")
    full = [(s, float(w)) for s, w in weighted_scorers if not s.partial]
    partial = [(s, float(w)) for s, w in weighted_scorers if s.partial]
    if not full:
        raise ValueError("beam search needs at least one full scorer")
    if partial:
        if pre_beam is None:
            raise ValueError("pre_beam is required with partial scorers")
        num_pre = max(1, min(int(pre_beam), vocab_size - 1))
        num_candidates = num_pre + 1
    else:
        num_candidates = vocab_size
    gain = _max_step_gain(weighted_scorers)
    # Total-bounded scorers that can raise a score (weight > 0; they never lower one: gains >= 0).
    total_bounded = [i for i, (s, w) in enumerate(full + partial) if s.total_bounded and w > 0]

    batch = tf.convert_to_tensor(batch_size, tf.int32)
    n = batch * beam
    max_lengths = tf.maximum(tf.cast(max_lengths, tf.int32), 1)
    min_lengths = tf.cast(min_lengths, tf.int32)
    steps = tf.reduce_max(max_lengths)
    row_utterance = tf.range(n) // beam
    max_n = tf.expand_dims(tf.gather(max_lengths, row_utterance), 1)  # [N, 1]
    min_n = tf.expand_dims(tf.gather(min_lengths, row_utterance), 1)
    positions = tf.expand_dims(tf.range(steps), 0)  # [1, S]
    row_offsets = tf.expand_dims(tf.range(batch) * beam, 1)  # [B, 1]

    states = tuple(s.init_state(beam) for s, _ in full + partial)
    live_scores = tf.where(tf.equal(tf.range(n) % beam, 0), 0.0, DEAD)
    history = tf.fill(tf.stack([n, steps]), -1)
    last = tf.fill(tf.expand_dims(n, 0), int(sos_id))
    fin_scores = tf.fill(tf.stack([batch, beam]), tf.constant(DEAD, tf.float32))
    fin_history = tf.fill(tf.stack([batch, beam, steps]), -1)
    fin_lengths = tf.zeros(tf.stack([batch, beam]), tf.int32)
    done = tf.zeros(tf.expand_dims(batch, 0), tf.bool)
    dead = tf.constant(DEAD, tf.float32)

    def body(t, last, states, live_scores, history, fin_scores, fin_history, fin_lengths, done):
        new_states = []
        full_total = 0.0
        impossible = None
        for (scorer, weight), state in zip(full, states[: len(full)]):
            scores, new_state = scorer.score(last, state)
            new_states.append(new_state)
            bad = scores <= IMPOSSIBLE
            impossible = bad if impossible is None else impossible | bad
            full_total = full_total + weight * scores
        # Length constraints: the last step allows only eos; eos needs the minimum length.
        last_step = t >= max_n - 1  # [N, 1]
        allow_eos = (t >= min_n) | last_step
        alive = tf.expand_dims(live_scores > _DEAD_THRESHOLD, 1)

        def best(candidates: tf.Tensor, cand_scores: tf.Tensor, cand_impossible: tf.Tensor) -> tuple:
            """The K best allowed (parent, candidate) pairs of each utterance: (scores [B, K], index [B, K])."""
            is_eos = tf.equal(candidates, eos_id)
            allowed = tf.where(is_eos, allow_eos, tf.logical_not(last_step))
            allowed = allowed & tf.logical_not(cand_impossible) & alive
            total = tf.where(allowed, tf.maximum(tf.expand_dims(live_scores, 1) + cand_scores, dead), dead)
            return tf.math.top_k(tf.reshape(total, tf.stack([batch, beam * num_candidates])), k=beam)

        if partial:
            is_eos_column = tf.expand_dims(tf.equal(tf.range(vocab_size), eos_id), 0)
            _, top = tf.math.top_k(tf.where(is_eos_column, dead, full_total), k=num_pre)
            candidates = tf.concat([top, tf.fill(tf.stack([n, 1]), int(eos_id))], axis=1)  # [N, C]
            full_scores = tf.gather(full_total, candidates, batch_dims=1)
            full_impossible = tf.gather(impossible, candidates, batch_dims=1)

            def partial_step(exact: bool) -> tuple:
                """The partial scorers' scores (bounds where a bounded scorer flags them, unless `exact`), the
                K best pairs, the partial scorers' new states and the flags [N, C]."""
                cand_scores, cand_impossible = full_scores, full_impossible
                partial_states, inexact = [], tf.zeros(tf.shape(candidates), tf.bool)
                for (scorer, weight), state in zip(partial, states[len(full) :]):
                    if scorer.bounded:
                        scores, new_state = scorer.score(last, state, candidates, exact=exact)
                        inexact = inexact | scorer.inexact(new_state)
                    else:
                        scores, new_state = scorer.score(last, state, candidates)
                    partial_states.append(new_state)
                    cand_impossible = cand_impossible | (scores <= IMPOSSIBLE)
                    cand_scores = cand_scores + weight * scores
                top_scores, top_index = best(candidates, cand_scores, cand_impossible)
                return top_scores, top_index, tuple(partial_states), inexact

            top_scores, top_index, partial_states, inexact = partial_step(exact=False)
            if any(scorer.bounded for scorer, _ in partial):
                # A kept pair scored by its bound: rank again with exact scores (module `scorers`).
                kept_inexact = tf.gather(tf.reshape(inexact, tf.stack([batch, -1])), top_index, batch_dims=1)
                rescore = tf.reduce_any(kept_inexact & (top_scores > _DEAD_THRESHOLD))
                top_scores, top_index, partial_states = tf.cond(
                    rescore, lambda: partial_step(exact=True)[:3], lambda: (top_scores, top_index, partial_states)
                )
            new_states.extend(partial_states)
        else:
            candidates = tf.zeros(tf.stack([n, 1]), tf.int32) + tf.expand_dims(tf.range(vocab_size), 0)
            top_scores, top_index = best(candidates, full_total, impossible)

        parent = tf.reshape(top_index // num_candidates + row_offsets, [-1])  # [N] flat parent rows
        slot = tf.reshape(top_index % num_candidates, [-1])
        tokens = tf.gather(tf.reshape(candidates, [-1]), parent * num_candidates + slot)
        top_scores = tf.reshape(top_scores, [-1])
        valid = top_scores > _DEAD_THRESHOLD
        ended = valid & tf.equal(tokens, eos_id)
        continuing = valid & tf.logical_not(ended)
        parent_history = tf.gather(history, parent)  # tokens 0..t-1, -1 after

        # Finished set: merge this step's eos hypotheses, keep the K best (frozen once an utterance is done).
        new_fin = tf.reshape(tf.where(ended, top_scores, dead), tf.stack([batch, beam]))
        new_fin = tf.where(tf.expand_dims(done, 1), dead, new_fin)
        merged_scores = tf.concat([fin_scores, new_fin], axis=1)
        merged_history = tf.concat([fin_history, tf.reshape(parent_history, tf.stack([batch, beam, steps]))], 1)
        merged_lengths = tf.concat([fin_lengths, tf.fill(tf.stack([batch, beam]), t)], axis=1)
        fin_scores, order = tf.math.top_k(merged_scores, k=beam)
        fin_history = tf.gather(merged_history, order, batch_dims=1)
        fin_lengths = tf.gather(merged_lengths, order, batch_dims=1)

        # Live hypotheses.
        live_scores = tf.where(continuing, top_scores, dead)
        history = tf.where(tf.equal(positions, t), tf.expand_dims(tokens, 1), parent_history)
        all_scorers = full + partial
        states = tuple(
            scorer.select(new_state, parent, tokens, slot) for (scorer, _), new_state in zip(all_scorers, new_states)
        )

        # Done: no live hypothesis, maximum length reached, or K finished ones no live one can beat.
        best_live = tf.reduce_max(tf.reshape(live_scores, tf.stack([batch, beam])), axis=1)
        finished_now = (best_live <= _DEAD_THRESHOLD) | (t + 1 >= max_lengths)
        if gain is not None:
            remaining = tf.cast(tf.maximum(max_lengths - 1 - t, 0), tf.float32)
            best_reach = best_live  # [B]; with total-bounded scorers, the best live score plus what they can add
            if total_bounded:
                reach = live_scores + tf.add_n(
                    [all_scorers[i][1] * all_scorers[i][0].remaining_gain(states[i]) for i in total_bounded])
                best_reach = tf.reduce_max(tf.reshape(reach, tf.stack([batch, beam])), axis=1)
            bound = best_reach + gain * remaining
            worst_kept = tf.reduce_min(fin_scores, axis=1)
            finished_now = finished_now | ((worst_kept > _DEAD_THRESHOLD) & (worst_kept >= bound))
        done = done | finished_now
        return t + 1, tokens, states, live_scores, history, fin_scores, fin_history, fin_lengths, done

    def cond(t, last, states, live_scores, history, fin_scores, fin_history, fin_lengths, done):
        return (t < steps) & tf.reduce_any(tf.logical_not(done))

    loop_vars = (tf.constant(0), last, states, live_scores, history, fin_scores, fin_history, fin_lengths, done)
    outputs = tf.while_loop(cond, body, loop_vars)
    fin_scores, fin_history, fin_lengths = outputs[5], outputs[6], outputs[7]

    keep = tf.range(nbest)
    scores = tf.gather(fin_scores, keep, axis=1)
    history = tf.gather(fin_history, keep, axis=1)
    lengths = tf.gather(fin_lengths, keep, axis=1)
    valid = scores > _DEAD_THRESHOLD
    lengths = tf.where(valid, lengths, 0)
    token_ids = tf.where(
        tf.reshape(tf.range(steps), [1, 1, -1]) < tf.expand_dims(lengths, 2), history, tf.constant(-1, tf.int32)
    )
    scores = tf.where(valid, scores, tf.constant(-math.inf, tf.float32))
    return {"token_ids": token_ids, "num_tokens": lengths, "score": scores}


def length_limits(
    encoder_lengths: tf.Tensor, max_length_ratio: float = 1.0, min_length_ratio: float = 0.0
) -> tuple[tf.Tensor, tf.Tensor]:
    """(max_lengths = max(ceil(max_ratio * L), 1) output steps incl. eos, min_lengths = ceil(min_ratio * L))."""
    lengths = tf.cast(encoder_lengths, tf.float32)
    max_lengths = tf.maximum(tf.cast(tf.math.ceil(max_length_ratio * lengths), tf.int32), 1)
    min_lengths = tf.cast(tf.math.ceil(min_length_ratio * lengths), tf.int32)
    return max_lengths, min_lengths


def check_lm(model: Any, lm: Any, lm_weight: float) -> None:
    """Raises ValueError unless `lm_weight` >= 0, an LM is given when it is > 0, and the LM's output layer
    (size, sos and eos ids) is the model's. (Whether both vocabularies hold the same characters only the
    `Vocabulary` objects tell: `data.lm_text.vocabulary_mismatch_message`.)"""
    if not lm_weight >= 0.0 or math.isinf(lm_weight):
        raise ValueError(f"lm_weight must be a finite number >= 0, got {lm_weight}")
    if lm_weight > 0.0 and lm is None:
        raise ValueError(f"lm_weight={lm_weight} needs a language model (lm)")
    if lm is None:
        return
    lm_ids = (int(lm.vocab_size), int(lm.sos_id), int(lm.eos_id))
    model_ids = (int(model.vocab_size), int(model.sos_id), int(model.eos_id))
    if lm_ids != model_ids:
        raise ValueError(
            f"the language model's vocabulary (size, sos, eos) = {lm_ids} differs from the recognizer's {model_ids}"
        )


def beam_search(
    model: Any,
    h: tf.Tensor,
    encoder_lengths: tf.Tensor,
    *,
    beam: int = 20,
    ctc_weight: float = 0.0,
    length_penalty: float = 0.0,
    max_length_ratio: float = 1.0,
    min_length_ratio: float = 0.0,
    pre_beam_ratio: float = 1.5,
    nbest: int = 1,
    force_length: int | None = None,
    lm: Any = None,
    lm_weight: float = 0.0,
    coverage_weight: float = 0.0,
    coverage_threshold: float = 0.5,
    max_repeats: int = 0,
    max_attention_stall: int = 0,
    extra_scorers: Sequence[tuple[Scorer, float]] = (),
) -> dict[str, tf.Tensor]:
    """Attention (ctc_weight = 0) or joint CTC/attention (ctc_weight > 0) beam search, optionally fused with a
    language model.

    Score of a hypothesis y (eos included in the log-probabilities, not in |y|):
    `(1 - ctc_weight) * log p_att(y, eos | x) + ctc_weight * log p_ctc(y | x) + lm_weight * log p_lm(y, eos)
    + length_penalty * |y| + coverage_weight * coverage(y)` (+ `weight * score` of each `extra_scorers` entry; see
    `scorers.py`), where coverage(y) counts the encoder frames whose attention summed over y's tokens exceeds
    `coverage_threshold` (`CoverageScorer`). With `max_repeats > 0` no hypothesis holds more than `max_repeats`
    consecutive copies of a unit of 2 to 24 tokens (`RepeatLimit`), and with `max_attention_stall > 0` a hypothesis
    whose attention peak has not passed the furthest frame it reached for more than that many tokens in a row may
    only end there (`AttentionStallLimit`). The CTC term
    is the prefix score (`ctc_prefix_score.py`), evaluated only on the `int(pre_beam_ratio * beam)` best
    attention candidates of each hypothesis (and eos), as ESPnet does.

    Args:
      model: a `JointCTCAttention` with an attention decoder (`model.compute_attention`).
      h: [B, L, P] encoder output; encoder_lengths: [B] int32.
      beam: K (paper: 20).
      ctc_weight: lambda in [0, 1); > 0 needs a model trained with CTC (`model.compute_ctc`).
      length_penalty: per-token bonus (paper: 0.1 WSJ, 0.3 CHiME-4).
      max_length_ratio: at most `max(ceil(ratio * L), 1)` output steps including eos (ESPnet's maxlen:
        at most that minus one tokens; eos is forced at the last step).
      min_length_ratio: eos is forbidden before `ceil(ratio * L)` tokens.
      pre_beam_ratio: CTC pre-beam size relative to the beam.
      nbest: hypotheses returned per utterance (<= beam).
      force_length: benchmarking only: every hypothesis has exactly this many tokens (eos forbidden before,
        forced after), so a random-weight model runs a fixed number of steps (`force_length + 1`).
      lm: a character language model over the model's vocabulary (`CharacterLanguageModel`: `initial_state`,
        `step`, `vocab_size`, `sos_id`, `eos_id`), scored by `RNNLMScorer` (shallow fusion). Unused when
        `lm_weight` is 0: the search is then exactly the one without an LM.
      lm_weight: beta >= 0, the LM's weight; > 0 needs `lm`.
      coverage_weight: >= 0, the coverage term's weight per covered frame (0: none).
      coverage_threshold: > 0, the summed attention at which a frame counts as covered.
      max_repeats: >= 0, how many consecutive copies of a unit a hypothesis may hold (0: no limit).
      max_attention_stall: >= 0, how many tokens in a row may leave the attention peak's furthest frame where it
        is (0: no limit).
      extra_scorers: more (scorer, weight) pairs.

    Returns:
      dict(token_ids [B, nbest, S] int32 padded with -1, num_tokens [B, nbest] int32, score [B, nbest] float32),
      best first.
    """
    if not getattr(model, "compute_attention", True):
        raise ValueError("beam_search needs an attention decoder; decode a pure CTC model with ctc_greedy_decode")
    ctc_weight = float(ctc_weight)
    if not 0.0 <= ctc_weight < 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1), got {ctc_weight}")
    if ctc_weight > 0.0 and not getattr(model, "compute_ctc", False):
        raise ValueError(
            f"ctc_weight={ctc_weight} needs a CTC branch, but this model was trained attention-only "
            "(model.compute_ctc is False); use ctc_weight=0"
        )
    lm_weight = float(lm_weight)
    check_lm(model, lm, lm_weight)
    coverage_weight = float(coverage_weight)
    if not (coverage_weight >= 0.0 and math.isfinite(coverage_weight)):
        raise ValueError(f"coverage_weight must be a finite number >= 0, got {coverage_weight}")
    if int(max_repeats) < 0:
        raise ValueError(f"max_repeats must be >= 0, got {max_repeats}")
    if int(max_attention_stall) < 0:
        raise ValueError(f"max_attention_stall must be >= 0, got {max_attention_stall}")
    encoder_lengths = tf.cast(encoder_lengths, tf.int32)
    vocab_size = int(model.vocab_size)
    attention = AttentionScorer(model, h, encoder_lengths)
    scorers: list[tuple[Scorer, float]] = [(attention, 1.0 - ctc_weight)]
    if int(max_attention_stall) > 0:
        limit = AttentionStallLimit(attention, vocab_size, model.eos_id, int(max_attention_stall))
        scorers.append((limit, 1.0))
    if coverage_weight > 0.0:
        scorers.append((CoverageScorer(attention, vocab_size, model.eos_id, coverage_threshold), coverage_weight))
    if length_penalty != 0.0:
        scorers.append((LengthBonus(vocab_size, model.eos_id), float(length_penalty)))
    if ctc_weight > 0.0:
        scorers.append((CTCPrefixScorer.from_model(model, h, encoder_lengths), ctc_weight))
    if lm_weight > 0.0:
        scorers.append((RNNLMScorer(lm, tf.shape(h)[0]), lm_weight))
    if int(max_repeats) > 0:
        scorers.append((RepeatLimit(tf.shape(h)[0], vocab_size, model.sos_id, int(max_repeats)), 1.0))
    scorers.extend(extra_scorers)
    if force_length is not None:
        batch = tf.shape(encoder_lengths)
        max_lengths = tf.fill(batch, int(force_length) + 1)
        min_lengths = tf.fill(batch, int(force_length))
    else:
        max_lengths, min_lengths = length_limits(encoder_lengths, max_length_ratio, min_length_ratio)
    return batch_beam_search(
        scorers,
        batch_size=tf.shape(h)[0],
        vocab_size=vocab_size,
        sos_id=model.sos_id,
        eos_id=model.eos_id,
        max_lengths=max_lengths,
        min_lengths=min_lengths,
        beam=beam,
        pre_beam=max(1, int(pre_beam_ratio * beam)),
        nbest=nbest,
    )


def beam_search_decode(
    model: Any, h: tf.Tensor, encoder_lengths: tf.Tensor, **kwargs: Any
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """1-best of `beam_search` in the greedy decoders' convention:
    (token_ids [B, S] int32 padded with -1, num_tokens [B] int32, score [B] float32)."""
    kwargs["nbest"] = 1
    out = beam_search(model, h, encoder_lengths, **kwargs)
    return out["token_ids"][:, 0], out["num_tokens"][:, 0], out["score"][:, 0]
