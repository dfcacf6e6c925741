"""The character LM layer: `step` scores exactly what teacher forcing (`call`) computes, padding after a
sentence changes nothing before it, and the layer round-trips through its config."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_jointctc.layers.char_lm import CharacterLM

VOCAB = 12


def _layer(layers: int = 2) -> CharacterLM:
    keras.utils.set_random_seed(3)
    layer = CharacterLM(VOCAB, layers=layers, units=16, embedding_dim=8, dropout=0.3, init_scale=0.3)
    layer.build()
    return layer


@pytest.mark.parametrize("layers", [1, 2])
def test_step_by_step_equals_teacher_forcing(layers):
    layer = _layer(layers)
    tokens = tf.constant([[11, 3, 4, 5, 1, 2], [11, 7, 7, 2, 9, 9]], tf.int32)
    forced = tf.nn.log_softmax(layer(tokens, training=False), axis=-1).numpy()
    state = layer.initial_state(2)
    assert len(state) == 2 * layers and all(s.shape == (2, 16) for s in state)
    for u in range(tokens.shape[1]):
        log_probs, state = layer.step(tokens[:, u], state)
        np.testing.assert_allclose(log_probs.numpy(), forced[:, u], atol=1e-5)
    np.testing.assert_allclose(np.exp(forced).sum(-1), 1.0, atol=1e-5)


def test_padding_after_a_sentence_changes_nothing_before_it():
    layer = _layer()
    alone = layer(tf.constant([[11, 3, 4]]), training=False).numpy()
    padded = layer(tf.constant([[11, 3, 4, 0, 0, 0], [11, 5, 6, 7, 8, 9]]), training=False).numpy()
    np.testing.assert_allclose(padded[0, :3], alone[0], atol=1e-6)


def test_dropout_only_in_training():
    layer = _layer()
    tokens = tf.constant([[11, 3, 4, 5]])
    np.testing.assert_array_equal(layer(tokens, training=False).numpy(), layer(tokens, training=False).numpy())
    assert not np.allclose(layer(tokens, training=True).numpy(), layer(tokens, training=False).numpy())


def test_config_round_trip_rebuilds_the_same_layer():
    layer = _layer()
    clone = CharacterLM.from_config(layer.get_config())
    clone.build()
    assert [w.shape for w in clone.weights] == [w.shape for w in layer.weights]
    clone.set_weights(layer.get_weights())
    tokens = tf.constant([[11, 1, 2, 3]])
    np.testing.assert_allclose(clone(tokens).numpy(), layer(tokens).numpy(), atol=1e-6)
    assert clone.num_layers == 2 and clone.units == 16 and clone.dropout_rate == pytest.approx(0.3)


def test_zero_layers_is_refused():
    with pytest.raises(ValueError, match="at least one LSTM layer"):
        CharacterLM(VOCAB, layers=0)


def test_training_dtype_round_trips_and_only_changes_training():
    keras.utils.set_random_seed(3)
    layer = CharacterLM(VOCAB, layers=1, units=16, embedding_dim=8, training_dtype="bfloat16")
    layer.build()
    clone = CharacterLM.from_config(layer.get_config())
    assert clone.training_dtype == "bfloat16"
    reference = CharacterLM(VOCAB, layers=1, units=16, embedding_dim=8)
    reference.build()
    reference.set_weights(layer.get_weights())
    tokens = tf.constant([[11, 1, 2, 3, 4]])
    np.testing.assert_array_equal(layer(tokens, training=False).numpy(), reference(tokens, training=False).numpy())
    trained, exact = layer(tokens, training=True).numpy(), reference(tokens, training=True).numpy()
    assert 0.0 < np.abs(trained - exact).max() < 0.05 * np.abs(exact).max()
    with pytest.raises(ValueError, match="training_dtype"):
        CharacterLM(VOCAB, training_dtype="float16")
