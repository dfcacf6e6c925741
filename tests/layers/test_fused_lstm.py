"""fused_lstm.bidirectional_lstm against keras.layers.Bidirectional(LSTM) with a padding mask, and
fused_lstm.unidirectional_lstm against keras.layers.LSTM: outputs and the gradients of the inputs and of every
weight, both the training (hand-written backward) and inference paths."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_jointctc.layers import fused_lstm
from tf_jointctc.layers.fused_lstm import (
    TRAINING_DTYPES,
    bidirectional_lstm,
    check_training_dtype,
    input_projection,
    lstm_loop,
    lstm_loop_with_gradient,
    resolve_training_dtype,
    unidirectional_lstm,
)


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


def test_input_projection_in_bfloat16_rounds_only_the_gemm_operands():
    rng = np.random.default_rng(5)
    x = tf.constant(rng.standard_normal((7, 3, 40)).astype("float32"))
    kernel = tf.Variable(rng.standard_normal((40, 24)).astype("float32"))
    bias = tf.constant(rng.standard_normal(24).astype("float32"))
    upstream = tf.constant(rng.standard_normal((7, 3, 24)).astype("float32"))  # d loss / d projection
    with tf.GradientTape() as tape:
        tape.watch(x)
        rounded = input_projection(x, kernel, bias, "bfloat16")
        loss = tf.reduce_sum(rounded * upstream)
    grad_x, grad_kernel = tape.gradient(loss, [x, kernel])
    assert rounded.dtype == grad_x.dtype == grad_kernel.dtype == kernel.dtype == tf.float32

    def to_bf16(a):
        return tf.cast(tf.cast(a, tf.bfloat16), tf.float64).numpy()

    # Each GEMM against float64 products of the bfloat16-rounded operands: only the result's rounding to
    # bfloat16 (8 bits of mantissa) remains, under 1 % of the largest entry.
    def assert_bf16_close(got, want):
        np.testing.assert_allclose(got, want, atol=0.01 * np.abs(want).max())

    assert_bf16_close(rounded.numpy() - bias.numpy(), np.einsum("tbd,dg->tbg", to_bf16(x), to_bf16(kernel)))
    assert_bf16_close(grad_x.numpy(), np.einsum("tbg,dg->tbd", to_bf16(upstream), to_bf16(kernel)))
    assert_bf16_close(grad_kernel.numpy(), np.einsum("tbd,tbg->dg", to_bf16(x), to_bf16(upstream)))
    exact = input_projection(x, kernel, bias)
    assert np.abs(rounded.numpy() - exact.numpy()).max() > 0.0  # really rounded
    with pytest.raises(ValueError, match="float16"):
        input_projection(x, kernel, bias, "float16")


def test_bfloat16_projections_apply_to_training_only():
    rng = np.random.default_rng(6)
    x = tf.constant(rng.standard_normal((3, 9, 5)).astype("float32"))
    lengths = tf.constant([9, 4, 6])
    weights = [tuple(tf.constant(rng.uniform(-0.5, 0.5, shape).astype("float32"))
                     for shape in ((5, 24), (6, 24), (24,))) for _ in range(2)]
    reference = bidirectional_lstm(x, lengths, *weights, training=False)
    inference = bidirectional_lstm(x, lengths, *weights, training=False, training_projection_dtype="bfloat16")
    training = bidirectional_lstm(x, lengths, *weights, training=True, training_projection_dtype="bfloat16")
    np.testing.assert_array_equal(inference.numpy(), reference.numpy())
    difference = np.abs(training.numpy() - reference.numpy()).max()
    assert 0.0 < difference < 0.05
    assert np.all(training.numpy()[1, 4:] == 0.0)  # padding stays exactly zero


def test_bfloat16_training_matmuls_stay_close_to_float32_and_inference_is_exact():
    """`unidirectional_lstm(training_dtype="bfloat16")` (the demo LM's training): outputs and every gradient
    within bfloat16 rounding of the float32 ones (but not equal to them); inference ignores the setting."""
    rng = np.random.default_rng(7)
    x = tf.constant(rng.standard_normal((4, 12, 6)).astype("float32"))
    weights = [tf.Variable(rng.uniform(-0.5, 0.5, shape).astype("float32")) for shape in ((6, 32), (8, 32), (32,))]
    upstream = tf.constant(rng.standard_normal((4, 12, 8)).astype("float32"))

    def outputs_and_gradients(dtype):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = unidirectional_lstm(x, tuple(tf.convert_to_tensor(w) for w in weights), training=True,
                                      training_dtype=dtype)
            loss = tf.reduce_sum(out * upstream)
        return [out, *tape.gradient(loss, [x, *weights])]

    exact, rounded = outputs_and_gradients("float32"), outputs_and_gradients("bfloat16")
    for want, got in zip(exact, rounded):
        assert got.dtype == tf.float32
        scale = np.abs(want.numpy()).max()
        difference = np.abs(got.numpy() - want.numpy()).max()
        assert 0.0 < difference < 0.03 * scale
    tensors = tuple(tf.convert_to_tensor(w) for w in weights)
    inference = unidirectional_lstm(x, tensors, training=False, training_dtype="bfloat16")
    np.testing.assert_array_equal(inference.numpy(), unidirectional_lstm(x, tensors).numpy())
    with pytest.raises(ValueError, match="float16"):
        unidirectional_lstm(x, tensors, training=True, training_dtype="float16")


def test_check_training_dtype_names_the_setting():
    for dtype in TRAINING_DTYPES:
        check_training_dtype(dtype)  # accepted
    with pytest.raises(ValueError, match=r"training_dtype must be 'float32', 'bfloat16' or 'auto', got 'float16'"):
        check_training_dtype("float16", "training_dtype")


def test_auto_training_dtype_is_bfloat16_only_where_the_cpu_multiplies_it_natively(monkeypatch):
    for native, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(fused_lstm, "cpu_has_native_bfloat16", lambda native=native: native)
        assert resolve_training_dtype("auto") == expected
        assert resolve_training_dtype("float32") == "float32" and resolve_training_dtype("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match="float16"):
        resolve_training_dtype("float16")
    with pytest.raises(ValueError, match="^projection dtype must be"):
        resolve_training_dtype("float16", "projection dtype")


def test_cpu_has_native_bfloat16_reads_the_cpu_flags():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            words = cpuinfo.read().split()
    except OSError:  # no /proc: no flags to read
        words = []
    assert fused_lstm.cpu_has_native_bfloat16() == ("amx_bf16" in words or "avx512_bf16" in words)


@pytest.mark.parametrize("native", [True, False])
def test_bfloat16_products_are_the_same_with_and_without_native_bfloat16(monkeypatch, native):
    """The emulated operands (rounded, then float32) give the native path's product: bfloat16 operands, float32
    accumulation and a bfloat16 result (TensorFlow's native kernel returns bfloat16), so a long sum lands within
    one bfloat16 rounding of the exact product of the rounded operands."""
    if native and not fused_lstm.cpu_has_native_bfloat16():
        pytest.skip("this CPU has no native bfloat16 matmul")
    monkeypatch.setattr(fused_lstm, "cpu_has_native_bfloat16", lambda: native)
    rng = np.random.default_rng(8)
    a = tf.constant(rng.standard_normal((6, 4096)).astype("float32"))
    b = tf.constant(rng.standard_normal((4096, 5)).astype("float32"))
    product = fused_lstm._matmul(a, fused_lstm._operand(b, "bfloat16"), "bfloat16")
    assert product.dtype == tf.float32

    def rounded(x):
        return tf.cast(tf.cast(x, tf.bfloat16), tf.float64).numpy()

    exact = rounded(a) @ rounded(b)
    np.testing.assert_array_equal(product.numpy(), rounded(product))  # a bfloat16 value
    np.testing.assert_allclose(product.numpy(), exact, rtol=2.0 ** -8, atol=1e-3)
    assert np.abs(product.numpy() - (a.numpy().astype(np.float64) @ b.numpy())).max() > 1e-2  # really rounded


@pytest.mark.parametrize("steps", [0, 1, 3, 4, 9])
def test_inference_loop_gives_the_same_outputs_for_any_steps_per_iteration(steps):
    """Blocks of frames per loop iteration (the last one padded) change only how the loop is driven: the
    outputs equal the one-frame-per-iteration loop's bit for bit, also in graph mode with unknown time."""
    rng = np.random.default_rng(steps)
    inputs = tf.constant(rng.standard_normal((steps, 2, 12)).astype("float32"))
    recurrent = tf.constant(rng.standard_normal((3, 12)).astype("float32"))
    expected = lstm_loop(inputs, recurrent, steps_per_iteration=1)
    spec = tf.TensorSpec([None, 2, 12]), tf.TensorSpec([3, 12])
    for block in (2, 4, 5):
        traced = tf.function(lambda x, r, block=block: lstm_loop(x, r, steps_per_iteration=block),
                             input_signature=spec)
        actual = traced(inputs, recurrent)
        assert actual.shape == (steps, 2, 3)
        np.testing.assert_array_equal(actual.numpy(), expected.numpy())


@pytest.mark.parametrize("steps", [1, 4, 7])
def test_training_loop_gives_the_same_outputs_and_gradients_for_any_steps_per_iteration(steps):
    rng = np.random.default_rng(10 + steps)
    inputs = [tf.constant(rng.standard_normal((steps, 2, 12)).astype("float32")) for _ in range(2)]
    recurrent = [tf.constant(rng.standard_normal((3, 12)).astype("float32")) for _ in range(2)]
    upstream = [tf.constant(rng.standard_normal((steps, 2, 3)).astype("float32")) for _ in range(2)]

    def outputs_and_gradients(block):
        with tf.GradientTape() as tape:
            tape.watch([*inputs, *recurrent])
            out = lstm_loop_with_gradient(inputs, recurrent, steps_per_iteration=block)
            loss = tf.add_n([tf.reduce_sum(o * u) for o, u in zip(out, upstream)])
        return out + tape.gradient(loss, [*inputs, *recurrent])

    reference = outputs_and_gradients(1)
    for block in (3, 4):
        for expected, actual in zip(reference, outputs_and_gradients(block)):
            np.testing.assert_array_equal(actual.numpy(), expected.numpy())


def test_blocked_loops_keep_the_static_state_shape():
    """With a static batch (the TFLite export) the loop states enter with a static shape and must keep it."""
    inputs = tf.TensorSpec([None, 1, 12])
    recurrent = tf.TensorSpec([3, 12])
    inference = tf.function(lambda x, r: lstm_loop(x, r)).get_concrete_function(inputs, recurrent)
    training = tf.function(lambda x, r: lstm_loop_with_gradient([x], [r])[0]).get_concrete_function(inputs, recurrent)
    assert inference.output_shapes.as_list() == [None, 1, 3]
    assert training.output_shapes.as_list() == [None, 1, 3]


@pytest.mark.parametrize("training, loops", [(False, 2), (True, 1)])
def test_inference_runs_one_loop_per_direction(training, loops):
    """At inference each direction has its own while loop (one recurrent kernel per loop stays in cache, and two
    threads run the two loops at once); training keeps both directions in one forward loop."""
    rng = np.random.default_rng(3)
    weights = [tuple(tf.constant(rng.standard_normal(shape).astype("float32")) for shape in ((3, 8), (2, 8), (8,)))
               for _ in range(2)]
    traced = tf.function(lambda x, lengths: bidirectional_lstm(x, lengths, *weights, training=training))
    graph = traced.get_concrete_function(tf.TensorSpec([None, None, 3]), tf.TensorSpec([None], tf.int32)).graph
    forward_loops = [op for op in graph.get_operations() if op.type in ("While", "StatelessWhile")]
    assert len(forward_loops) == loops
