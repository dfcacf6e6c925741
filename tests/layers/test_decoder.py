import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_jointctc.layers.decoder import AttentionDecoder

V, P = 9, 6


def _decoder(kind="location", **kwargs):
    return AttentionDecoder(
        V, units=8, embedding_dim=5, attention=kind, attention_dim=7, attention_filters=3, attention_width=5, **kwargs
    )


def _inputs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((len(lengths), max(lengths), P)).astype("float32")
    for i, n in enumerate(lengths):
        h[i, n:] = 0.0
    return tf.constant(h), tf.sequence_mask(lengths, max(lengths))


@pytest.mark.parametrize("kind", ["location", "content"])
def test_teacher_forcing_equals_stepping(kind):
    dec = _decoder(kind)
    h, mask = _inputs([7, 4])
    targets_in = tf.constant([[8, 1, 2, 3, 4], [8, 5, 6, 0, 0]], tf.int32)
    logits, weights = dec.teacher_forcing(h, mask, targets_in)
    assert logits.shape == (2, 5, V) and weights.shape == (2, 5, 7)
    h_proj = dec.precompute(h)
    state = dec.initial_state(h, mask)
    assert [tuple(s.shape) for s in state] == [(2, 8), (2, 8), (2, P), (2, 7)]
    for u in range(5):
        log_probs, state = dec.step(targets_in[:, u], state, h, h_proj, mask)
        np.testing.assert_allclose(log_probs.numpy(), tf.nn.log_softmax(logits[:, u]).numpy(), atol=1e-5)
        np.testing.assert_allclose(state[3].numpy(), weights[:, u].numpy(), atol=1e-6)
    np.testing.assert_allclose(np.exp(log_probs.numpy()).sum(-1), 1.0, rtol=1e-5)
    assert np.all(weights.numpy()[1, :, 4:] == 0.0)


def test_teacher_forcing_in_tf_function_and_causal():
    dec = _decoder()
    h, mask = _inputs([6])
    short = tf.constant([[8, 1, 2]])
    longer = tf.constant([[8, 1, 2, 7, 7]])
    fn = tf.function(dec.teacher_forcing)
    a, _ = fn(h, mask, short)
    b, _ = fn(h, mask, longer)
    np.testing.assert_allclose(a.numpy(), b.numpy()[:, :3], atol=1e-6)
    eager, _ = dec.teacher_forcing(h, mask, short)
    np.testing.assert_allclose(a.numpy(), eager.numpy(), atol=1e-6)


def test_gradients_reach_every_weight():
    dec = _decoder()
    h, mask = _inputs([6, 3])
    with tf.GradientTape() as tape:
        logits, _ = dec(h, mask, tf.constant([[8, 1, 2], [8, 3, 0]]))
        loss = tf.reduce_sum(logits**2)
    grads = tape.gradient(loss, dec.trainable_weights)
    assert len(grads) == 12
    for g, v in zip(grads, dec.trainable_weights):
        assert g is not None and np.all(np.isfinite(tf.convert_to_tensor(g).numpy())), v.path
        assert np.any(tf.convert_to_tensor(g).numpy() != 0), v.path


def test_config_round_trip():
    dec = _decoder("content", init_scale=0.05, sharpening=1.0)
    h, mask = _inputs([5])
    targets = tf.constant([[8, 3, 4]])
    expected, _ = dec.teacher_forcing(h, mask, targets)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(dec))
    assert restored.get_config() == dec.get_config()
    restored.build(tuple(h.shape))
    restored.set_weights(dec.get_weights())
    np.testing.assert_array_equal(restored.teacher_forcing(h, mask, targets)[0].numpy(), expected.numpy())


@pytest.mark.parametrize("frames", [7, 20])  # width 5: the location matrix is used up to 15 frames, conv2d beyond
def test_both_location_paths_in_graph_equal_stepping_and_differentiate(frames):
    dec = _decoder()
    h, mask = _inputs([frames, frames - 3])
    targets_in = tf.constant([[8, 1, 2, 3], [8, 5, 6, 0]], tf.int32)
    specs = [tf.TensorSpec([None, None, P]), tf.TensorSpec([None, None], tf.bool),
             tf.TensorSpec([None, None], tf.int32)]

    @tf.function(input_signature=specs)  # dynamic L: the path is chosen in the graph
    def forward_and_grads(h, mask, targets_in):
        with tf.GradientTape() as tape:
            logits, _ = dec.teacher_forcing(h, mask, targets_in, training=True)
            loss = tf.reduce_sum(logits**2)
        return logits, tape.gradient(loss, dec.trainable_weights)

    logits, grads = forward_and_grads(h, mask, targets_in)
    h_proj = dec.precompute(h)
    state = dec.initial_state(h, mask)
    for u in range(4):
        log_probs, state = dec.step(targets_in[:, u], state, h, h_proj, mask)
        np.testing.assert_allclose(log_probs.numpy(), tf.nn.log_softmax(logits[:, u]).numpy(), atol=1e-5)
    for g, v in zip(grads, dec.trainable_weights):
        g = tf.convert_to_tensor(g).numpy()
        assert np.all(np.isfinite(g)) and np.any(g != 0), v.path
