"""fused_lstm.bidirectional_lstm against keras.layers.Bidirectional(LSTM) with a padding mask, and
fused_lstm.unidirectional_lstm against keras.layers.LSTM: outputs and the gradients of the inputs and of every
weight, both the training (hand-written backward) and inference paths."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_jointctc.layers.fused_lstm import bidirectional_lstm, unidirectional_lstm


def _reference_and_fused(batch_lengths, dim, units, seed, training):
    rng = np.random.default_rng(seed)
    steps = max(batch_lengths)
    x = tf.constant(rng.standard_normal((len(batch_lengths), steps, dim)).astype("float32"))
    lengths = tf.constant(batch_lengths, tf.int32)
    mask = tf.sequence_mask(lengths, steps)
    weights = tf.constant(rng.standard_normal((len(batch_lengths), steps, 2 * units)).astype("float32"))
    keras.utils.set_random_seed(seed)
    layer = keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True))
    layer.build((None, None, dim))

    def cell_weights(direction):
        cell = direction.cell
        return cell.kernel.value, cell.recurrent_kernel.value, cell.bias.value

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        expected = layer(x, mask=mask) * tf.cast(mask, tf.float32)[..., None]
        actual = bidirectional_lstm(x, lengths, cell_weights(layer.forward_layer), cell_weights(layer.backward_layer),
                                    training=training)
        loss_expected = tf.reduce_sum(expected * weights)
        loss_actual = tf.reduce_sum(actual * weights)
    sources = [x, *layer.trainable_variables]
    return (expected, tape.gradient(loss_expected, sources)), (actual, tape.gradient(loss_actual, sources))


@pytest.mark.parametrize("training", [True, False])
def test_outputs_and_gradients_equal_keras_bidirectional_lstm(training):
    (expected, expected_grads), (actual, actual_grads) = _reference_and_fused([9, 4, 7, 1], 5, 6, 0, training)
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-6)
    assert np.all(actual.numpy()[1, 4:] == 0.0) and np.all(actual.numpy()[3, 1:] == 0.0)
    assert len(actual_grads) == 7  # the input and 2 x (kernel, recurrent kernel, bias)
    for got, want in zip(actual_grads, expected_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-5, rtol=1e-4)


@settings(max_examples=12, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 8), min_size=1, max_size=4),
    dim=st.integers(1, 4),
    units=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_hand_written_gradient_matches_keras_on_random_shapes(lengths, dim, units, seed):
    (expected, expected_grads), (actual, actual_grads) = _reference_and_fused(lengths, dim, units, seed, True)
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-6)
    for got, want in zip(actual_grads, expected_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-5, rtol=1e-4)


def test_graph_mode_with_unknown_time_and_batch():
    fn = tf.function(
        lambda x, n, k, r, b: bidirectional_lstm(x, n, (k, r, b), (k, r, b), training=True),
        input_signature=[tf.TensorSpec([None, None, 3]), tf.TensorSpec([None], tf.int32), tf.TensorSpec([3, 8]),
                         tf.TensorSpec([2, 8]), tf.TensorSpec([8])],
    )
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype("float32") for s in ((2, 5, 3), (3, 8), (2, 8), (8,))]
    out = fn(args[0], np.array([5, 2], "int32"), *args[1:])
    assert out.shape == (2, 5, 4)
    assert np.all(out.numpy()[1, 2:] == 0.0)


@settings(max_examples=8, deadline=None)
@given(
    batch=st.integers(1, 3),
    steps=st.integers(1, 7),
    dim=st.integers(1, 4),
    units=st.integers(1, 5),
    seed=st.integers(0, 1000),
    training=st.booleans(),
)
def test_unidirectional_lstm_equals_keras_lstm(batch, steps, dim, units, seed, training):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.standard_normal((batch, steps, dim)).astype("float32"))
    output_weights = tf.constant(rng.standard_normal((batch, steps, units)).astype("float32"))
    keras.utils.set_random_seed(seed)
    layer = keras.layers.LSTM(units, return_sequences=True)
    layer.build((None, None, dim))
    cell = layer.cell
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        expected = layer(x)
        actual = unidirectional_lstm(x, (cell.kernel.value, cell.recurrent_kernel.value, cell.bias.value),
                                     training=training)
        loss_expected = tf.reduce_sum(expected * output_weights)
        loss_actual = tf.reduce_sum(actual * output_weights)
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-6)
    sources = [x, *layer.trainable_variables]
    for got, want in zip(tape.gradient(loss_actual, sources), tape.gradient(loss_expected, sources)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-5, rtol=1e-4)
