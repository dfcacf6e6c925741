"""CTC best-path decoding in plain TensorFlow ops (argmax, top_k, gather) so that it converts to TFLite
built-ins: `tf.nn.ctc_greedy_decoder` converts only as a Flex (select TF) op, which `ai_edge_litert`'s
interpreter cannot run."""

from __future__ import annotations

import tensorflow as tf


def ctc_greedy_decode(
    logits: tf.Tensor, lengths: tf.Tensor, blank_id: int = 0
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Best path: argmax per frame, collapse repeats, drop blanks.

    Args:
      logits: [batch, frames, vocab] float32 CTC logits (or log-probabilities).
      lengths: [batch] int32 valid frames per utterance.
      blank_id: the blank's id.

    Returns:
      token_ids: [batch, frames] int32, each row's tokens first, then -1 padding.
      num_tokens: [batch] int32.
      score: [batch] float32 log-probability of the best path (sum over valid frames of the max log-softmax).
    """
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    frames = tf.shape(logits)[1]
    best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)  # [B, L]
    valid = tf.sequence_mask(lengths, frames)
    previous = tf.concat([tf.fill([tf.shape(best)[0], 1], -1), best[:, :-1]], axis=1)
    keep = valid & tf.not_equal(best, blank_id) & tf.not_equal(best, previous)
    num_tokens = tf.reduce_sum(tf.cast(keep, tf.int32), axis=1)
    # Move kept frames to the front of each row, in order: sort by (dropped, position) using top_k.
    positions = tf.range(frames)[tf.newaxis, :]
    sort_key = tf.where(keep, positions, positions + frames)
    _, order = tf.math.top_k(-sort_key, k=frames)
    compacted = tf.gather(best, order, batch_dims=1)
    token_ids = tf.where(tf.sequence_mask(num_tokens, frames), compacted, -1)
    max_log_probs = tf.reduce_max(log_probs, axis=-1)
    score = tf.reduce_sum(tf.where(valid, max_log_probs, 0.0), axis=1)
    return token_ids, num_tokens, score
