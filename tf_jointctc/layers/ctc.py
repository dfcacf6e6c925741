"""CTC output layer and loss (paper eq. 1-3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tf_jointctc.layers.encoder import uniform_initializer


def ctc_loss(
    logits: tf.Tensor, logit_lengths: tf.Tensor, labels: tf.Tensor, label_lengths: tf.Tensor | None = None
) -> tf.Tensor:
    """Per-utterance CTC negative log likelihood, `-ln P(y* | x)` (eq. 3).

    Args:
      logits: [B, L, V] unnormalized scores; blank is id 0.
      logit_lengths: [B] int, valid frames per utterance.
      labels: [B, U] int, padded with 0. Labels never contain the blank, so `tf.sparse.from_dense` drops
        exactly the padding (sparse labels also select the faster C++ kernel). Empty rows are supported.
      label_lengths: [B] int; ignored and not checked against `labels` (the sparse labels imply the
        lengths); accepted so that callers pass the usual CTC arguments.
    Returns:
      [B] float32 losses.
    """
    del label_lengths  # implied by the sparse labels
    logits = tf.cast(logits, tf.float32)
    logit_lengths = tf.cast(logit_lengths, tf.int32)
    labels = tf.pad(tf.cast(labels, tf.int32), [[0, 0], [0, 1]])  # at least one column
    # The C++ kernel rejects empty label sequences: give those rows a dummy label, then replace their loss by
    # the exact NLL of the empty sequence, -sum_t log q_t(blank).
    empty = tf.reduce_all(tf.equal(labels, 0), axis=1)
    first_column = tf.equal(tf.range(tf.shape(labels)[1]), 0)
    safe_labels = tf.where(tf.logical_and(tf.expand_dims(empty, 1), tf.expand_dims(first_column, 0)), 1, labels)
    loss = tf.nn.ctc_loss(
        labels=tf.sparse.from_dense(safe_labels),
        logits=logits,
        label_length=None,
        logit_length=logit_lengths,
        logits_time_major=False,
        blank_index=0,
    )
    frames = tf.cast(tf.sequence_mask(logit_lengths, maxlen=tf.shape(logits)[1]), tf.float32)
    blank_nll = -tf.reduce_sum(tf.nn.log_softmax(logits, axis=-1)[:, :, 0] * frames, axis=1)
    return tf.where(empty, blank_nll, loss)


@keras.saving.register_keras_serializable(package="tf_jointctc")
class CTCHead(keras.layers.Layer):
    """Dense projection of the shared encoder to CTC logits: [B, L, P] -> [B, L, V] (V includes blank 0)."""

    def __init__(self, vocab_size: int, init_scale: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.init_scale = float(init_scale)
        init = uniform_initializer(self.init_scale)
        self.dense = keras.layers.Dense(self.vocab_size, kernel_initializer=init, bias_initializer=init, name="dense")

    def build(self, h_shape: Sequence[int | None]) -> None:
        if not self.dense.built:
            self.dense.build((None, None, h_shape[-1]))
        self.built = True

    def call(self, h: tf.Tensor) -> tf.Tensor:
        return self.dense(h)

    def compute_output_shape(self, h_shape: Sequence[int | None]) -> tuple:
        return (*tuple(h_shape)[:-1], self.vocab_size)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, init_scale=self.init_scale)
        return config
