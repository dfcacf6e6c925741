import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_jointctc.layers import encoder as encoder_module
from tf_jointctc.layers.encoder import PyramidalBLSTM


def _inputs(lengths, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((len(lengths), max(lengths), dim)).astype("float32")
    for i, n in enumerate(lengths):
        x[i, n:] = 0.0
    return x, np.asarray(lengths, "int32")


@pytest.mark.parametrize("implementation", ["fused", "keras"])
@pytest.mark.parametrize(
    "subsample, layer_inputs",
    [((1, 1, 2, 2), [13, 13, 7, 4]), ((1, 2, 2, 1), [13, 7, 4, 4])],
)
def test_shapes_lengths_and_zero_padding(subsample, layer_inputs, implementation, monkeypatch):
    enc = PyramidalBLSTM(num_layers=4, units=8, projection_units=5, subsample=subsample,
                         implementation=implementation)
    x, lengths = _inputs([13, 9, 5])
    seen = []  # the number of frames each BLSTM reads
    if implementation == "fused":
        original = encoder_module.bidirectional_lstm

        def spy_fused(inputs, *args, **kwargs):
            seen.append(int(inputs.shape[1]))
            return original(inputs, *args, **kwargs)

        monkeypatch.setattr(encoder_module, "bidirectional_lstm", spy_fused)
    for blstm in enc.blstms if implementation == "keras" else ():
        original_call = blstm.call

        def spy(inputs, *args, _original=original_call, **kwargs):
            seen.append(int(inputs.shape[1]))
            return _original(inputs, *args, **kwargs)

        blstm.call = spy
    h, out_lengths = enc(x, lengths)
    assert seen == layer_inputs
    assert h.shape == (3, 4, 5)
    expected = [math.ceil(math.ceil(n / 2) / 2) for n in (13, 9, 5)]
    assert out_lengths.numpy().tolist() == expected == [4, 3, 2]
    assert PyramidalBLSTM.output_lengths(np.array([13, 9, 5]), subsample).tolist() == expected
    assert PyramidalBLSTM.output_lengths(1, subsample) == 1
    h = h.numpy()
    for i, n in enumerate(expected):
        assert np.all(h[i, n:] == 0.0)
        assert np.all(np.abs(h[i, :n]).sum(-1) > 0)


@pytest.mark.parametrize("implementation", ["fused", "keras"])
def test_layer_outputs_are_each_layers_projection_and_end_with_the_output(implementation):
    enc = PyramidalBLSTM(num_layers=3, units=6, projection_units=5, subsample=(1, 2, 1), input_stack=2,
                         implementation=implementation)
    x, lengths = _inputs([13, 6], seed=2)
    h, out_lengths = enc(x, lengths)  # builds the layer
    outputs = enc.layer_outputs(x, lengths)
    assert [h.shape for h, _ in outputs] == [(2, 7, 5), (2, 4, 5), (2, 4, 5)]
    assert [n.numpy().tolist() for _, n in outputs] == [[7, 3], [4, 2], [4, 2]]
    np.testing.assert_array_equal(outputs[-1][0].numpy(), h.numpy())
    np.testing.assert_array_equal(outputs[-1][1].numpy(), out_lengths.numpy())
    first, first_lengths = outputs[0]
    # The second layer reads every second frame of the first layer's output: feeding that to layers 2-3 alone
    # gives the encoder's output.
    rest = PyramidalBLSTM(num_layers=2, units=6, projection_units=5, subsample=(2, 1), implementation=implementation)
    rest(first, first_lengths)
    rest.set_weights(enc.get_weights()[len(enc.get_weights()) // 3:])
    np.testing.assert_allclose(rest(first, first_lengths)[0].numpy(), h.numpy(), atol=1e-6)
    for (h_i, n_i) in outputs:
        for b, n in enumerate(n_i.numpy()):
            assert np.all(h_i.numpy()[b, n:] == 0.0) and np.any(h_i.numpy()[b, :n] != 0.0)


@pytest.mark.parametrize("implementation", ["fused", "keras"])
def test_a_condition_changes_what_the_next_layer_reads_not_the_layer_output(implementation):
    enc = PyramidalBLSTM(num_layers=3, units=6, projection_units=5, subsample=(1, 2, 1), implementation=implementation)
    x, lengths = _inputs([9, 4], seed=3)
    enc(x, lengths)  # builds the layer
    plain = enc.layer_outputs(x, lengths)
    calls = []

    def condition(layer, h, layer_lengths):
        calls.append((layer, h.shape[1], layer_lengths.numpy().tolist()))
        valid = tf.cast(tf.sequence_mask(layer_lengths, tf.shape(h)[1]), h.dtype)[..., None]
        return h + 5.0 * valid if layer == 1 else h

    conditioned = enc.layer_outputs(x, lengths, condition=condition)
    assert calls == [(1, 9, [9, 4]), (2, 5, [5, 2])]  # after every layer below the top
    np.testing.assert_array_equal(conditioned[0][0].numpy(), plain[0][0].numpy())  # h_1 before the condition
    rest = PyramidalBLSTM(num_layers=2, units=6, projection_units=5, subsample=(2, 1), implementation=implementation)
    rest(plain[0][0], plain[0][1])
    rest.set_weights(enc.get_weights()[len(enc.get_weights()) // 3:])
    valid = tf.cast(tf.sequence_mask(plain[0][1], 9), tf.float32)[..., None]
    np.testing.assert_allclose(rest(plain[0][0] + 5.0 * valid, plain[0][1])[0].numpy(), conditioned[-1][0].numpy(),
                               atol=1e-6)
    assert not np.allclose(conditioned[-1][0].numpy(), plain[-1][0].numpy(), atol=1e-5)
    h, _ = enc(x, lengths, condition=condition)  # through the Keras call as well
    np.testing.assert_array_equal(h.numpy(), conditioned[-1][0].numpy())
    assert len(enc(x, lengths, all_layers=True)) == 3


def test_no_subsampling_keeps_length():
    enc = PyramidalBLSTM(num_layers=2, units=4, projection_units=3, subsample=(1, 1))
    h, out_lengths = enc(*_inputs([7, 3]))
    assert h.shape == (2, 7, 3)
    assert out_lengths.numpy().tolist() == [7, 3]


@pytest.mark.parametrize("implementation", ["fused", "keras"])
@pytest.mark.parametrize("subsample", [(1, 1, 2, 2), (1, 2, 2, 1)])
def test_padding_invariance(subsample, implementation):
    enc = PyramidalBLSTM(num_layers=4, units=8, projection_units=6, subsample=subsample, implementation=implementation)
    x, lengths = _inputs([17, 10], seed=1)
    # Garbage in the padding must not matter either.
    x[1, 10:] = 5.0
    h_batch, l_batch = enc(x, lengths)
    h_alone, l_alone = enc(x[1:2, :10], lengths[1:2])
    n = int(l_alone[0])
    assert int(l_batch[1]) == n
    np.testing.assert_allclose(h_batch[1, :n].numpy(), h_alone[0, :n].numpy(), atol=1e-5)


def test_config_round_trip_and_init_scale():
    enc = PyramidalBLSTM(num_layers=2, units=4, projection_units=3, subsample=(2, 1), init_scale=0.05, name="enc")
    x, lengths = _inputs([6, 4])
    h, _ = enc(x, lengths)
    for w in enc.weights:
        assert np.max(np.abs(w.numpy())) <= 0.05 + 1e-7
    config = enc.get_config()
    clone = PyramidalBLSTM.from_config(config)
    assert clone.get_config() == config
    clone(x, lengths)
    clone.set_weights(enc.get_weights())
    np.testing.assert_array_equal(clone(x, lengths)[0].numpy(), h.numpy())
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(enc))
    assert isinstance(restored, PyramidalBLSTM) and restored.subsample == (2, 1)


def test_fused_and_keras_implementations_agree_on_the_same_weights():
    fused = PyramidalBLSTM(num_layers=4, units=8, projection_units=6, implementation="fused")
    x, lengths = _inputs([17, 12, 5], seed=2)
    h_fused, l_fused = fused(x, lengths, training=True)
    reference = PyramidalBLSTM.from_config({**fused.get_config(), "implementation": "keras"})
    reference(x, lengths)
    reference.set_weights(fused.get_weights())
    h_keras, l_keras = reference(x, lengths)
    np.testing.assert_array_equal(l_fused.numpy(), l_keras.numpy())
    np.testing.assert_allclose(h_fused.numpy(), h_keras.numpy(), atol=1e-6)
    np.testing.assert_allclose(fused(x, lengths, training=False)[0].numpy(), h_keras.numpy(), atol=1e-6)


def test_fused_and_keras_gradients_agree_in_graph_mode():
    import tensorflow as tf

    fused = PyramidalBLSTM(num_layers=2, units=6, projection_units=4, subsample=(1, 2))
    x, lengths = _inputs([11, 6, 3], seed=3)
    fused(x, lengths)
    reference = PyramidalBLSTM.from_config({**fused.get_config(), "implementation": "keras"})
    reference(x, lengths)
    reference.set_weights(fused.get_weights())

    def gradients(encoder):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                h, _ = encoder(x, lengths, training=True)
                loss = tf.reduce_sum(tf.sin(h))
            return tape.gradient(loss, encoder.trainable_variables)

        return step()

    got, want = gradients(fused), gradients(reference)
    assert len(got) == len(want) == 2 * 2 * 3 + 2 * 2  # per layer: 2 x (kernel, recurrent, bias) + projection
    for g, w in zip(got, want):
        assert g is not None
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=1e-6, rtol=1e-5)


def test_rejects_bad_schedule():
    with pytest.raises(ValueError):
        PyramidalBLSTM(num_layers=2, implementation="cudnn")
    with pytest.raises(ValueError):
        PyramidalBLSTM(num_layers=3, subsample=(1, 2))
    with pytest.raises(ValueError):
        PyramidalBLSTM(num_layers=2, subsample=(1, 3))


@pytest.mark.parametrize("k", [2, 3, 4])
def test_stack_frames_concatenates_k_frames_and_zeroes_padding(k):
    x, lengths = _inputs([10, 7, 1], dim=3, seed=4)
    x[1, 7:] = 9.0  # garbage past the length
    stacked, stacked_lengths = PyramidalBLSTM.stack_frames(x, lengths, k)
    assert stacked.shape == (3, math.ceil(10 / k), 3 * k)
    assert stacked_lengths.numpy().tolist() == [math.ceil(n / k) for n in (10, 7, 1)]
    for i, n in enumerate((10, 7, 1)):
        for j in range(math.ceil(10 / k)):
            for offset in range(k):
                frame = j * k + offset
                want = x[i, frame] if frame < n else np.zeros(3, "float32")
                np.testing.assert_array_equal(stacked[i, j, 3 * offset : 3 * offset + 3].numpy(), want)


@pytest.mark.parametrize("implementation", ["fused", "keras"])
@pytest.mark.parametrize("input_stack, subsample", [(3, (1, 1, 1, 1)), (2, (1, 1, 2, 1))])
def test_input_stacking_lengths_and_padding_invariance(input_stack, subsample, implementation):
    enc = PyramidalBLSTM(num_layers=4, units=8, projection_units=6, subsample=subsample,
                         implementation=implementation, input_stack=input_stack)
    x, lengths = _inputs([17, 10], seed=5)
    x[1, 10:] = 5.0
    h_batch, l_batch = enc(x, lengths)
    reduction = encoder_module.time_reduction(subsample, input_stack)
    assert reduction == {(3, (1, 1, 1, 1)): 3, (2, (1, 1, 2, 1)): 4}[(input_stack, subsample)]
    assert l_batch.numpy().tolist() == [math.ceil(17 / reduction), math.ceil(10 / reduction)]
    expected = PyramidalBLSTM.output_lengths(np.array([17, 10]), subsample, input_stack)
    assert expected.tolist() == l_batch.numpy().tolist()
    h_alone, _ = enc(x[1:2, :10], lengths[1:2])
    n = int(l_batch[1])
    np.testing.assert_allclose(h_batch[1, :n].numpy(), h_alone[0, :n].numpy(), atol=1e-5)
    assert np.all(h_batch.numpy()[1, n:] == 0.0)
    clone = PyramidalBLSTM.from_config(enc.get_config())
    assert clone.input_stack == input_stack


def test_rejects_bad_input_stack():
    with pytest.raises(ValueError, match="input_stack"):
        PyramidalBLSTM(num_layers=2, subsample=(1, 1), input_stack=0)


@pytest.mark.parametrize("implementation", ["fused", "keras"])
def test_input_dims_reads_only_the_first_features(implementation):
    """`input_dims` n: the encoder equals one without it run on x[..., :n] (same weights), whatever the other
    features hold; the first layer's kernel reads input_stack x n features; serialization keeps n."""
    x, lengths = _inputs([7, 5], dim=6)
    kwargs = dict(num_layers=2, units=4, projection_units=3, subsample=(1, 2), input_stack=2,
                  implementation=implementation)
    narrow = PyramidalBLSTM(input_dims=2, **kwargs)
    h, out_lengths = narrow(x, lengths)
    assert narrow.blstms[0].forward_layer.cell.kernel.shape == (4, 16)  # 2 stacked frames x 2 features
    reference = PyramidalBLSTM(**kwargs)
    reference(x[..., :2], lengths)
    reference.set_weights(narrow.get_weights())
    expected, expected_lengths = reference(x[..., :2], lengths)
    np.testing.assert_allclose(h.numpy(), expected.numpy(), atol=1e-6)
    np.testing.assert_array_equal(out_lengths.numpy(), expected_lengths.numpy())
    changed = x.copy()
    changed[..., 2:] = 100.0  # what the encoder does not read
    np.testing.assert_allclose(narrow(changed, lengths)[0].numpy(), h.numpy(), atol=1e-6)
    clone = PyramidalBLSTM.from_config(narrow.get_config())
    assert clone.input_dims == 2
    with pytest.raises(ValueError, match="input_dims 8 exceeds the 6 input features"):
        PyramidalBLSTM(input_dims=8, **kwargs)(x, lengths)
    with pytest.raises(ValueError, match="input_dims"):
        PyramidalBLSTM(input_dims=-1, **kwargs)


def test_auto_implementation_picks_keras_with_a_gpu_and_fused_without():
    """The selection of `model.encoder.implementation = "auto"`, with the visible-device list given to the pure
    selection function. No GPU was available to test the cuDNN path itself (Keras' `LSTM` runs cuDNN when a GPU
    is visible and its arguments allow it; the encoder keeps the defaults that do): only the choice is tested."""
    import tensorflow as tf

    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    assert encoder_module.resolve_implementation("auto", [gpu]) == "keras"
    assert encoder_module.resolve_implementation("auto", [gpu, gpu]) == "keras"
    assert encoder_module.resolve_implementation("auto", []) == "fused"
    for explicit in ("fused", "keras"):  # an explicit choice is kept, GPU or not
        assert encoder_module.resolve_implementation(explicit, [gpu]) == explicit
        assert encoder_module.resolve_implementation(explicit, []) == explicit
    with pytest.raises(ValueError, match="implementation"):
        encoder_module.resolve_implementation("cudnn", [])
    # This machine: "auto" asks TensorFlow for the GPUs; without one it is today's fused BLSTM.
    expected = "keras" if tf.config.list_physical_devices("GPU") else "fused"
    assert encoder_module.resolve_implementation("auto") == expected
    layer = PyramidalBLSTM(num_layers=2, units=4, projection_units=4, subsample=(1, 2), implementation="auto")
    assert layer.implementation == expected
    assert layer.get_config()["implementation"] == "auto"  # rebuilt elsewhere, it chooses again


def test_default_config_is_auto_and_builds_the_fused_encoder_on_this_cpu():
    import tensorflow as tf

    from tf_jointctc.config import base_config
    from tf_jointctc.model import build_model
    from tf_jointctc.text import Vocabulary

    config = base_config()
    assert config.model.encoder.implementation == "auto"
    config.model.encoder.update(num_layers=2, units=4, projection_units=4, subsample=(1, 2))
    config.model.update(attention_dim=4, attention_filters=2, attention_width=3, decoder_units=4)
    model = build_model(config.model, config.loss, Vocabulary())
    assert model.encoder.implementation == ("keras" if tf.config.list_physical_devices("GPU") else "fused")


def test_bfloat16_training_projections_keep_float32_weights_and_close_gradients():
    import tensorflow as tf

    exact = PyramidalBLSTM(num_layers=2, units=8, projection_units=6, subsample=(1, 2), implementation="fused")
    x, lengths = _inputs([13, 7, 4], seed=4)
    exact(x, lengths)
    rounded = PyramidalBLSTM.from_config({**exact.get_config(), "training_projection_dtype": "bfloat16"})
    rounded(x, lengths)
    rounded.set_weights(exact.get_weights())
    assert PyramidalBLSTM.from_config(rounded.get_config()).training_projection_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in rounded.weights)
    np.testing.assert_array_equal(rounded(x, lengths)[0].numpy(), exact(x, lengths)[0].numpy())  # inference

    def gradients(encoder):
        with tf.GradientTape() as tape:
            h, _ = encoder(x, lengths, training=True)
            loss = tf.reduce_sum(tf.sin(h))
        return h, tape.gradient(loss, encoder.trainable_variables)

    (h_exact, g_exact), (h_rounded, g_rounded) = gradients(exact), gradients(rounded)
    assert 0.0 < np.abs(h_rounded.numpy() - h_exact.numpy()).max() < 0.02
    for got, want in zip(g_rounded, g_exact):
        assert got.dtype == tf.float32
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=0.05 * np.abs(want.numpy()).max() + 1e-3)
    with pytest.raises(ValueError, match="training_projection_dtype"):
        PyramidalBLSTM(num_layers=2, subsample=(1, 1), training_projection_dtype="float16")


@pytest.mark.parametrize("dtype, native, warns", [("bfloat16", False, True), ("auto", True, True),
                                                  ("auto", False, False), ("float32", True, False)])
def test_a_keras_encoder_warns_only_when_its_projections_would_have_been_bfloat16(monkeypatch, dtype, native,
                                                                                  warns):
    """The Keras encoder trains in float32: it says so when the setting asks for bfloat16, and "auto" asks for
    it only on a CPU with native bfloat16 matmuls."""
    from tf_jointctc.layers import fused_lstm

    monkeypatch.setattr(fused_lstm, "cpu_has_native_bfloat16", lambda: native)
    warnings = []
    monkeypatch.setattr(encoder_module.logging, "warning", lambda *args: warnings.append(args[0] % args[1:]))
    PyramidalBLSTM(num_layers=2, units=4, projection_units=4, subsample=(1, 2), implementation="keras",
                   training_projection_dtype=dtype)
    assert bool(warnings) == warns and all("fused encoder only" in w for w in warnings)
