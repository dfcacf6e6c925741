import itertools

import keras
import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_jointctc.layers.ctc import CTCHead, ctc_loss
from tf_jointctc.text import ctc_min_frames


def _collapse(path):
    out = []
    previous = None
    for p in path:
        if p != previous and p != 0:
            out.append(p)
        previous = p
    return out


def _brute_force_nll(logits, labels):
    """-log sum over all T-length paths (blank 0) that collapse to `labels`."""
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    steps, vocab = log_probs.shape
    total = 0.0
    for path in itertools.product(range(vocab), repeat=steps):
        if _collapse(path) == list(labels):
            total += np.exp(sum(log_probs[t, k] for t, k in enumerate(path)))
    return -np.log(total)


def test_tiny_case_matches_brute_force():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((1, 4, 3)).astype("float64")
    labels = [1, 2]
    loss = ctc_loss(tf.constant(logits, tf.float32), tf.constant([4]), tf.constant([labels]), tf.constant([2]))
    assert loss.shape == (1,)
    np.testing.assert_allclose(loss.numpy()[0], _brute_force_nll(logits[0], labels), rtol=1e-5)


def test_repeated_label_and_padding_in_batch():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 5, 3)).astype("float32")
    labels = np.array([[1, 1], [2, 0], [0, 0]], "int32")  # repeat, padded, empty
    lengths = np.array([5, 3, 2], "int32")
    loss = ctc_loss(tf.constant(logits), tf.constant(lengths), tf.constant(labels), tf.constant([2, 1, 0])).numpy()
    expected = [
        _brute_force_nll(logits[0].astype("float64"), [1, 1]),
        _brute_force_nll(logits[1, :3].astype("float64"), [2]),
        _brute_force_nll(logits[2, :2].astype("float64"), []),
    ]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_small_cases_match_brute_force(data):
    vocab = data.draw(st.integers(2, 4), label="vocab")
    steps = data.draw(st.integers(1, 5), label="steps")
    labels = data.draw(st.lists(st.integers(1, vocab - 1), max_size=3), label="labels")
    if ctc_min_frames(labels) > steps:
        labels = labels[:0]
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    logits = np.random.default_rng(seed).normal(scale=2.0, size=(1, steps, vocab))
    padded = np.zeros((1, 3), "int32")
    padded[0, : len(labels)] = labels
    loss = ctc_loss(
        tf.constant(logits, tf.float32), tf.constant([steps]), tf.constant(padded), tf.constant([len(labels)])
    )
    np.testing.assert_allclose(loss.numpy()[0], _brute_force_nll(logits[0], labels), rtol=1e-4, atol=1e-5)


def test_head_shape_and_config():
    head = CTCHead(33, init_scale=0.1, name="ctc")
    h = np.random.default_rng(0).standard_normal((2, 7, 12)).astype("float32")
    logits = head(h)
    assert logits.shape == (2, 7, 33)
    assert np.max(np.abs(head.weights[0].numpy())) <= 0.1 + 1e-7
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
    restored(h)
    restored.set_weights(head.get_weights())
    np.testing.assert_array_equal(restored(h).numpy(), logits.numpy())
    assert restored.get_config() == head.get_config()
