"""Character LSTM language model: the third scorer of joint decoding (shallow fusion, issue 13).

Over the recognizer's vocabulary (`text.Vocabulary`: blank 0, the characters, sos/eos last). One step consumes
the previous token and gives the distribution of the next one, like the attention decoder:

    x_u       = embed(y_{u-1})                      # y_0 = sos
    s^l_u     = LSTM_l(s^l_{u-1}, s^{l-1}_u)        # l = 1..layers, s^0_u = x_u, s_0 = 0
    log p(y_u | y_<u) = log_softmax(Dense(s^L_u))  # y_{U+1} = eos ends the sentence

Teacher forcing (`call`) runs each LSTM layer's weights over the whole history with
`fused_lstm.unidirectional_lstm` (one input GEMM for all tokens and a hand-written backward pass: a demo-LM
training step ran 1.24x faster than with Keras' generic RNN loop, same-process A/B); `step` runs the same
layers' Keras cells one token at a time, so decoding scores exactly what training learned (tested). The Keras
LSTM layers hold the weights (checkpoints and configs are Keras'). The blank never occurs in text: it pads token
matrices, and the model still gives it a (learned, tiny) probability.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tf_jointctc.layers.encoder import uniform_initializer
from tf_jointctc.layers.fused_lstm import check_training_dtype, unidirectional_lstm

LMState = tuple[tf.Tensor, ...]  # (h_1, c_1, ..., h_L, c_L), each [N, units]


@keras.saving.register_keras_serializable(package="tf_jointctc")
class CharacterLM(keras.layers.Layer):
    """Embedding, `layers` LSTM layers of `units` cells, and a Dense output over the vocabulary.

    Args:
      vocab_size: V.
      layers: L, stacked LSTM layers.
      units: S, cells per layer.
      embedding_dim: E, token embedding width.
      dropout: dropout on the embedding and between layers (training only).
      init_scale: all weights uniform in [-init_scale, init_scale] (the recognizer's initialization).
      training_dtype: "float32", "bfloat16" or "auto": the operands of the LSTM layers' matmuls in training
        (`fused_lstm.unidirectional_lstm`); weights, states, gates, `step` and inference stay float32.

    State (a flat tuple): `(h_1 [N, S], c_1 [N, S], ..., h_L [N, S], c_L [N, S])`.
    """

    def __init__(
        self,
        vocab_size: int,
        layers: int = 1,
        units: int = 256,
        embedding_dim: int = 64,
        dropout: float = 0.0,
        init_scale: float = 0.1,
        training_dtype: str = "float32",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_training_dtype(training_dtype, "training_dtype")
        self.training_dtype = training_dtype
        self.vocab_size = int(vocab_size)
        self.num_layers = int(layers)
        self.units = int(units)
        self.embedding_dim = int(embedding_dim)
        self.dropout_rate = float(dropout)
        self.init_scale = float(init_scale)
        if self.num_layers < 1:
            raise ValueError(f"a character LM needs at least one LSTM layer, got layers={layers}")
        init = uniform_initializer(self.init_scale)
        self.embedding = keras.layers.Embedding(
            self.vocab_size, self.embedding_dim, embeddings_initializer=init, name="embedding"
        )
        self.lstms = [
            keras.layers.LSTM(
                self.units,
                return_sequences=True,
                kernel_initializer=init,
                recurrent_initializer=init,
                bias_initializer=init,
                unit_forget_bias=False,
                name=f"lstm_{i}",
            )
            for i in range(self.num_layers)
        ]
        self.dropout = keras.layers.Dropout(self.dropout_rate, name="dropout")
        self.output_dense = keras.layers.Dense(
            self.vocab_size, kernel_initializer=init, bias_initializer=init, name="output"
        )

    def build(self, tokens_shape: tuple | None = None) -> None:
        if not self.embedding.built:
            self.embedding.build((None,))
        width = self.embedding_dim
        for lstm in self.lstms:
            if not lstm.built:
                lstm.build((None, None, width))
            width = self.units
        if not self.output_dense.built:
            self.output_dense.build((None, self.units))
        self.built = True

    def _ensure_built(self) -> None:
        if not self.built:
            self.build()

    def initial_state(self, batch_size: Any) -> LMState:
        """Zero LSTM states: `2 * layers` tensors [N, S] (float32)."""
        self._ensure_built()
        zeros = tf.zeros(tf.stack([batch_size, self.units]), dtype=tf.float32)
        return tuple(zeros for _ in range(2 * self.num_layers))

    def step(self, prev_token: tf.Tensor, state: LMState) -> tuple[tf.Tensor, LMState]:
        """One token.

        Args:
          prev_token: [N] int32, the previous token (sos at the first step).
          state: from `initial_state` or a previous `step`.
        Returns:
          (log_probs [N, V] (log-softmax over the next token), new_state).
        """
        self._ensure_built()
        x = self.embedding(tf.cast(prev_token, tf.int32))
        new_state = []
        for i, lstm in enumerate(self.lstms):
            x, (h, c) = lstm.cell(x, [state[2 * i], state[2 * i + 1]], training=False)
            new_state += [h, c]
        logits = self.output_dense(x)
        return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1), tuple(new_state)

    def call(self, tokens_in: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Teacher forcing.

        Args:
          tokens_in: [B, U] int32 inputs (sos + the sentence's labels). Padding after a sentence's end changes
            nothing before it (the model is causal); the loss masks it.
        Returns:
          logits [B, U, V] of the next token at every position.
        """
        self._ensure_built()
        x = self.dropout(self.embedding(tf.cast(tokens_in, tf.int32)), training=training)
        for lstm in self.lstms:
            weights = (lstm.cell.kernel.value, lstm.cell.recurrent_kernel.value, lstm.cell.bias.value)
            x = unidirectional_lstm(x, weights, training=bool(training), training_dtype=self.training_dtype)
            x = self.dropout(x, training=training)
        return self.output_dense(x)

    def compute_output_shape(self, tokens_shape: tuple) -> tuple:
        return (*tokens_shape, self.vocab_size)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            layers=self.num_layers,
            units=self.units,
            embedding_dim=self.embedding_dim,
            dropout=self.dropout_rate,
            init_scale=self.init_scale,
            training_dtype=self.training_dtype,
        )
        return config
