"""Greedy (beam 1) attention decoding in a `tf.while_loop`: the dev-set check for pure-attention models."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def attention_greedy_decode(
    model: Any, h: tf.Tensor, encoder_lengths: tf.Tensor, max_length_ratio: float = 1.0
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Emits the most likely next token until eos (or the maximum length) for every utterance.

    Args:
      model: a `JointCTCAttention` (uses `decoder_initial_state` and `decoder_step`).
      h: [batch, frames, dim] encoder output.
      encoder_lengths: [batch] int32.
      max_length_ratio: at most `ceil(ratio * encoder_length)` tokens (at least 1) per utterance.

    Returns:
      token_ids [batch, max_steps] int32 padded with -1 (eos not included), num_tokens [batch] int32,
      score [batch] float32 (sum of the chosen tokens' log-probabilities, eos included).
    """
    batch = tf.shape(h)[0]
    limit = tf.math.ceil(max_length_ratio * tf.cast(encoder_lengths, tf.float32))
    max_lengths = tf.maximum(tf.cast(limit, tf.int32), 1)
    max_steps = tf.reduce_max(max_lengths)
    h_proj, state = model.decoder_initial_state(h, encoder_lengths)
    eos = model.eos_id
    tokens = tf.TensorArray(tf.int32, size=max_steps, element_shape=tf.TensorShape([None]))
    prev = tf.fill([batch], model.sos_id)
    finished = tf.zeros([batch], tf.bool)
    score = tf.zeros([batch], tf.float32)
    num_tokens = tf.zeros([batch], tf.int32)

    def body(step, prev, state, finished, score, num_tokens, tokens):
        log_probs, state = model.decoder_step(prev, state, h, h_proj, encoder_lengths)
        best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        # The last allowed step must end the hypothesis.
        best = tf.where(step + 1 >= max_lengths, eos, best)
        best_log_prob = tf.gather(log_probs, best, batch_dims=1)
        active = tf.logical_not(finished)
        score += tf.where(active, best_log_prob, 0.0)
        emits = active & tf.not_equal(best, eos)
        tokens = tokens.write(step, tf.where(emits, best, -1))
        num_tokens += tf.cast(emits, tf.int32)
        finished = finished | tf.equal(best, eos)
        return step + 1, best, state, finished, score, num_tokens, tokens

    def cond(step, prev, state, finished, score, num_tokens, tokens):
        return (step < max_steps) & tf.logical_not(tf.reduce_all(finished))

    _, _, _, _, score, num_tokens, tokens = tf.while_loop(
        cond, body, (0, prev, state, finished, score, num_tokens, tokens)
    )
    token_ids = tf.transpose(tokens.stack())  # [B, steps]; -1 after eos, tokens before it are contiguous
    return token_ids, num_tokens, score
