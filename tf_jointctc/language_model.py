"""The character language model as a trainable Keras model (issue 13): `layers.char_lm.CharacterLM` with its
training loss, the mean negative log-likelihood per predicted character (the sentence's labels and its eos).

Training reports it in nats (`loss`) and in bits per character (`bits_per_char`; perplexity per character is
`2 ** bits_per_char`), weighted by characters over the epoch, so an epoch's figure is the corpus figure.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import ml_collections
import tensorflow as tf

from tf_jointctc.layers.char_lm import CharacterLM
from tf_jointctc.text import Vocabulary


@keras.saving.register_keras_serializable(package="tf_jointctc")
class CharacterLanguageModel(keras.Model):
    """A `CharacterLM` trained by next-character cross-entropy.

    Data: `(tokens_in [B, U], targets [B, U])` int32 batches (`data.lm_batches`): `tokens_in` is sos + the
    labels, `targets` the labels + eos, both padded with `pad_id` (the blank, which text never contains) after
    the sentence; padded positions are not scored.

    Args:
      vocab_size, sos_id, eos_id, pad_id: the recognizer's vocabulary.
      layers, units, embedding_dim, dropout, init_scale, training_dtype: `CharacterLM`'s.

    Gradient clipping is the optimizer's (`model.make_optimizer`'s `global_clipnorm`).
    """

    def __init__(
        self,
        vocab_size: int,
        sos_id: int,
        eos_id: int,
        pad_id: int = 0,
        layers: int = 1,
        units: int = 256,
        embedding_dim: int = 64,
        dropout: float = 0.0,
        init_scale: float = 0.1,
        training_dtype: str = "float32",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.sos_id, self.eos_id, self.pad_id = int(sos_id), int(eos_id), int(pad_id)
        self.lm = CharacterLM(
            vocab_size, layers=layers, units=units, embedding_dim=embedding_dim, dropout=dropout,
            init_scale=init_scale, training_dtype=training_dtype, name="char_lm",
        )
        self.lm.build()
        self.nats_per_char = keras.metrics.Mean(name="loss")
        self.bits_per_char = keras.metrics.Mean(name="bits_per_char")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.nats_per_char, self.bits_per_char]

    def call(self, tokens_in: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """[B, U] int32 -> logits [B, U, V]."""
        return self.lm(tokens_in, training=training)

    def initial_state(self, batch_size: Any) -> tuple[tf.Tensor, ...]:
        return self.lm.initial_state(batch_size)

    def step(self, prev_token: tf.Tensor, state: tuple[tf.Tensor, ...]) -> tuple[tf.Tensor, tuple[tf.Tensor, ...]]:
        """`CharacterLM.step`: ([N] int32, state) -> (log_probs [N, V], new_state)."""
        return self.lm.step(prev_token, state)

    def negative_log_likelihood(self, tokens_in: tf.Tensor, targets: tf.Tensor,
                                training: bool | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """-> (sum of -log p(target) over the scored positions (nats), number of scored positions), scalars."""
        logits = tf.cast(self(tokens_in, training=training), tf.float32)
        targets = tf.cast(targets, tf.int32)
        scored = tf.cast(tf.not_equal(targets, self.pad_id), tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        return tf.reduce_sum(nll * scored), tf.reduce_sum(scored)

    def _update_metrics(self, nll_sum: tf.Tensor, count: tf.Tensor) -> dict[str, tf.Tensor]:
        mean = nll_sum / tf.maximum(count, 1.0)
        self.nats_per_char.update_state(mean, sample_weight=count)
        self.bits_per_char.update_state(mean / math.log(2.0), sample_weight=count)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        tokens_in, targets = data
        with tf.GradientTape() as tape:
            nll_sum, count = self.negative_log_likelihood(tokens_in, targets, training=True)
            loss = nll_sum / tf.maximum(count, 1.0)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_metrics(nll_sum, count)

    def test_step(self, data: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        tokens_in, targets = data
        return self._update_metrics(*self.negative_log_likelihood(tokens_in, targets, training=False))

    def get_config(self) -> dict[str, Any]:
        return {
            "vocab_size": self.vocab_size, "sos_id": self.sos_id, "eos_id": self.eos_id, "pad_id": self.pad_id,
            "layers": self.lm.num_layers, "units": self.lm.units, "embedding_dim": self.lm.embedding_dim,
            "dropout": self.lm.dropout_rate, "init_scale": self.lm.init_scale,
            "training_dtype": self.lm.training_dtype, "name": self.name,
        }


def build_language_model(model_config: ml_collections.ConfigDict, vocab: Vocabulary) -> CharacterLanguageModel:
    """A `CharacterLanguageModel` over `vocab` from an LM config's `model` section (`config.lm_base_config`)."""
    return CharacterLanguageModel(
        vocab.size, sos_id=vocab.sos_id, eos_id=vocab.eos_id, pad_id=vocab.blank_id,
        layers=model_config.layers, units=model_config.units, embedding_dim=model_config.embedding_dim,
        dropout=model_config.dropout, init_scale=model_config.init_scale,
        training_dtype=model_config.get("training_dtype", "float32"),  # absent from LMs trained before it
        name="character_lm",
    )
