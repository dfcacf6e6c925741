"""Attention decoder: one LSTM layer with location-aware or content attention (paper eq. 7, 12, 13).

Indexing convention (ESPnet-like, equal to the paper's eq. 12-13 up to a shift of the state index): one step
consumes the previous token `y_{u-1}` and produces the distribution of `y_u`:

    s_u        = LSTM(s_{u-1}, [embed(y_{u-1}); c_{u-1}])          # Recurrency (eq. 13)
    c_u, a_u   = Attention(s_u, h, a_{u-1})                       # eq. 9-11
    logits_u   = Dense([s_u; c_u])                                # Generate (eq. 12)

with `y_0 = sos`, `s_0 = 0`, `c_0 = 0` and `a_0` uniform over the valid encoder frames. In the paper's
notation our `s_u` is its `s_{u-1}` after having consumed `y_{u-1}` and `c_{u-1}`: the attention reads the
state that already knows the previous label, and Generate sees exactly (c_u, that state), as in eq. 12.

Teacher forcing (`teacher_forcing`/`call`) and beam search (`step`) run the same `_step` function, so that
decoding reproduces training exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tf_jointctc.layers.attention import LocationMatrix, make_attention
from tf_jointctc.layers.encoder import uniform_initializer

DecoderState = tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]


@keras.saving.register_keras_serializable(package="tf_jointctc")
class AttentionDecoder(keras.layers.Layer):
    """One-layer LSTM attention decoder.

    Args:
      vocab_size: V, width of the output logits (also the embedding table size).
      units: S, LSTM cells (paper: 320).
      embedding_dim: E, token embedding width (default: `units`).
      attention: "location" (paper) or "content".
      attention_dim: A.
      attention_filters, attention_width: location filters and taps (paper: 10, 100).
      sharpening: gamma (paper: 2).
      init_scale: all weights uniform in [-init_scale, init_scale].

    State (a tuple, in this order): `(lstm_h [B, S], lstm_c [B, S], context [B, P], attention_weights [B, L])`.
    """

    def __init__(
        self,
        vocab_size: int,
        units: int = 320,
        embedding_dim: int | None = None,
        attention: str = "location",
        attention_dim: int = 320,
        attention_filters: int = 10,
        attention_width: int = 100,
        sharpening: float = 2.0,
        init_scale: float = 0.1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.units = int(units)
        self.embedding_dim = int(embedding_dim) if embedding_dim is not None else self.units
        self.attention_type = attention
        self.attention_dim = int(attention_dim)
        self.attention_filters = int(attention_filters)
        self.attention_width = int(attention_width)
        self.sharpening = float(sharpening)
        self.init_scale = float(init_scale)
        init = uniform_initializer(self.init_scale)
        self.embedding = keras.layers.Embedding(
            self.vocab_size, self.embedding_dim, embeddings_initializer=init, name="embedding"
        )
        self.cell = keras.layers.LSTMCell(
            self.units,
            kernel_initializer=init,
            recurrent_initializer=init,
            bias_initializer=init,
            unit_forget_bias=False,
            name="lstm_cell",
        )
        self.attention = make_attention(
            attention,
            self.attention_dim,
            conv_filters=self.attention_filters,
            conv_width=self.attention_width,
            sharpening=self.sharpening,
            init_scale=self.init_scale,
            name="attention",
        )
        self.output_dense = keras.layers.Dense(
            self.vocab_size, kernel_initializer=init, bias_initializer=init, name="output"
        )

    def build(self, h_shape: Sequence[int | None], *args: Any, **kwargs: Any) -> None:
        encoder_dim = h_shape[-1]
        if not self.embedding.built:
            self.embedding.build((None,))
        if not self.cell.built:
            self.cell.build((None, self.embedding_dim + encoder_dim))
        if not self.attention.built:
            self.attention.build((None, self.units), (None, None, encoder_dim))
        if not self.output_dense.built:
            self.output_dense.build((None, self.units + encoder_dim))
        self.built = True

    def _ensure_built(self, h: tf.Tensor) -> None:
        if not self.built:
            self.build(tuple(h.shape))

    def precompute(self, h: tf.Tensor) -> tf.Tensor:
        """Attention's `V h + b`: [B, L, P] -> [B, L, A]; compute once per utterance (and tile for beams)."""
        self._ensure_built(h)
        return self.attention.precompute(h)

    def search_location(self, h: tf.Tensor) -> LocationMatrix:
        """The attention's `search_location` for h [B, L, P]: pass it to every `step` of one search."""
        self._ensure_built(h)
        return self.attention.search_location(tf.shape(h)[1])

    def initial_state(self, h: tf.Tensor, h_mask: tf.Tensor) -> DecoderState:
        """Zero LSTM state and context, uniform attention over valid frames.

        Args:
          h: encoder output [B, L, P].
          h_mask: [B, L] bool, True on valid frames.
        Returns:
          (lstm_h [B, S], lstm_c [B, S], context [B, P], attention_weights [B, L]).
        """
        self._ensure_built(h)
        batch = tf.shape(h)[0]
        zeros = tf.zeros(tf.stack([batch, self.units]), dtype=h.dtype)
        context = tf.zeros_like(h[:, 0, :])
        return zeros, zeros, context, self.attention.initial_weights(h_mask)

    def _step(
        self,
        prev_token: tf.Tensor,
        state: DecoderState,
        h: tf.Tensor,
        h_proj: tf.Tensor,
        h_mask: tf.Tensor,
        training: bool | None = None,
        location_matrix: LocationMatrix = None,
    ) -> tuple[tf.Tensor, DecoderState]:
        """One decoder step -> (logits [B, V], new state). The single source of truth for both entry points."""
        lstm_h, lstm_c, context, weights = state
        x = tf.concat([self.embedding(prev_token), context], axis=-1)
        out, (lstm_h, lstm_c) = self.cell(x, [lstm_h, lstm_c], training=training)
        context, weights = self.attention(out, h, h_proj, h_mask, weights, location_matrix=location_matrix)
        logits = self.output_dense(tf.concat([out, context], axis=-1))
        return logits, (lstm_h, lstm_c, context, weights)

    def step(
        self,
        prev_token: tf.Tensor,
        state: DecoderState,
        h: tf.Tensor,
        h_proj: tf.Tensor,
        h_mask: tf.Tensor,
        location_matrix: LocationMatrix = None,
    ) -> tuple[tf.Tensor, DecoderState]:
        """Beam-search step on N = B * K rows: K hypotheses per utterance, consecutive (row n reads utterance
        n // K; K = 1 is one row per utterance).

        Args:
          prev_token: [N] int32, the previous token (sos at the first step).
          state: from `initial_state` (tiled to N rows) or a previous `step`.
          h: [B, L, P] encoder output; h_proj: `precompute(h)` [B, L, A]; h_mask: [B, L] bool.
          location_matrix: optional `search_location(h)`, built once per search.
        Returns:
          (log_probs [N, V] (log-softmax), new_state). The new state's last element is this step's attention
          weights a_u [N, L].
        """
        self._ensure_built(h)
        logits, state = self._step(tf.cast(prev_token, tf.int32), state, h, h_proj, h_mask, training=False,
                                   location_matrix=location_matrix)
        return tf.nn.log_softmax(logits, axis=-1), state

    def teacher_forcing(
        self,
        h: tf.Tensor,
        h_mask: tf.Tensor,
        targets_in: tf.Tensor,
        training: bool | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Runs `_step` over the reference history with `tf.scan`. For encoder outputs short enough
        (`location_matrix_pays_off`), the location convolution is done as one matmul by the attention's
        `location_matrix` (built once here; same values as the conv2d that `step` uses, which keeps the
        exported graph on CONV_2D).

        Args:
          h: [B, L, P] encoder output; h_mask: [B, L] bool.
          targets_in: [B, U] int32 decoder inputs (sos + labels; padding after the end is harmless, the loss
            masks it: the decoder is causal).
        Returns:
          (logits [B, U, V], attention_weights [B, U, L]).
        """
        self._ensure_built(h)
        h_mask = tf.cast(h_mask, tf.bool)
        h_proj = self.attention.precompute(h)
        state = self.initial_state(h, h_mask)
        batch = tf.shape(h)[0]
        logits0 = tf.zeros(tf.stack([batch, self.vocab_size]), dtype=h.dtype)
        tokens = tf.transpose(tf.cast(targets_in, tf.int32))  # [U, B]

        def scan(location_matrix: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
            def body(carry: tuple, token: tf.Tensor) -> tuple:
                _, _, previous_state = carry
                logits, new_state = self._step(
                    token, previous_state, h, h_proj, h_mask, training=training, location_matrix=location_matrix
                )
                return logits, new_state[3], new_state

            logits, weights, _ = tf.scan(body, tokens, initializer=(logits0, state[3], state))
            return logits, weights

        frames = tf.shape(h)[1]
        use_matrix = self.attention.location_matrix_pays_off(frames)
        if use_matrix is None:  # content attention
            logits, weights = scan(None)
        else:  # decided once per batch, outside the loop (a per-step cond costs more than it saves)
            logits, weights = tf.cond(
                use_matrix, lambda: scan(self.attention.location_matrix(frames)), lambda: scan(None)
            )
        return tf.transpose(logits, [1, 0, 2]), tf.transpose(weights, [1, 0, 2])

    def call(
        self, h: tf.Tensor, h_mask: tf.Tensor, targets_in: tf.Tensor, training: bool | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Same as `teacher_forcing`."""
        return self.teacher_forcing(h, h_mask, targets_in, training=training)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            units=self.units,
            embedding_dim=self.embedding_dim,
            attention=self.attention_type,
            attention_dim=self.attention_dim,
            attention_filters=self.attention_filters,
            attention_width=self.attention_width,
            sharpening=self.sharpening,
            init_scale=self.init_scale,
        )
        return config
