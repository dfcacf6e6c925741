import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_jointctc.layers.attention import (
    ContentAttention,
    LocationAwareAttention,
    convolution_in_search,
    initial_weights,
    make_attention,
)

P, S, A = 6, 5, 7


def _make(kind, **kwargs):
    if kind == "location":
        return LocationAwareAttention(A, conv_filters=3, conv_width=kwargs.pop("width", 5), **kwargs)
    kwargs.pop("width", None)
    return ContentAttention(A, **kwargs)


def _inputs(lengths, seed=0, garbage=3.0):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((len(lengths), max(lengths), P)).astype("float32")
    for i, n in enumerate(lengths):
        h[i, n:] = garbage
    mask = tf.sequence_mask(lengths, max(lengths))
    state = rng.standard_normal((len(lengths), S)).astype("float32")
    return tf.constant(h), mask, tf.constant(state)


def _run(att, h, mask, state, steps=2):
    h_proj = att.precompute(h)
    weights = initial_weights(mask)
    out = []
    for _ in range(steps):
        context, weights = att(state, h, h_proj, mask, weights)
        out.append((context.numpy(), weights.numpy()))
    return out


@pytest.mark.parametrize("kind", ["content", "location"])
def test_weights_normalized_and_zero_on_padding(kind):
    att = _make(kind)
    h, mask, state = _inputs([9, 4, 1])
    for context, weights in _run(att, h, mask, state):
        np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-6)
        assert np.all(weights[1, 4:] == 0.0) and np.all(weights[2, 1:] == 0.0)
        assert np.all(weights[0] > 0)
        np.testing.assert_allclose(context, np.einsum("bl,blp->bp", weights, h.numpy()), atol=1e-6)
        assert context.shape == (3, P) and weights.shape == (3, 9)


def test_initial_weights_uniform_over_valid_frames():
    w = initial_weights(tf.sequence_mask([4, 2], 4)).numpy()
    np.testing.assert_allclose(w, [[0.25] * 4, [0.5, 0.5, 0, 0]])


@pytest.mark.parametrize("kind", ["content", "location"])
def test_sharpening_lowers_entropy(kind):
    h, mask, state = _inputs([12], seed=3)
    soft = _make(kind, sharpening=1.0)
    sharp = _make(kind, sharpening=4.0)
    w1 = _run(soft, h, mask, state, steps=1)[0][1]
    _run(sharp, h, mask, state, steps=1)
    sharp.set_weights(soft.get_weights())
    w4 = _run(sharp, h, mask, state, steps=1)[0][1]

    def entropy(w):
        return float(-(w * np.log(w)).sum())

    assert entropy(w4) < entropy(w1) - 1e-3
    # softmax(4 e) is softmax(e) ** 4 renormalized.
    expected = w1**4 / (w1**4).sum(-1, keepdims=True)
    np.testing.assert_allclose(w4, expected, rtol=1e-4)


@pytest.mark.parametrize("kind", ["content", "location"])
def test_padding_invariance(kind):
    att = _make(kind, width=7)
    h, mask, state = _inputs([11, 6], seed=5, garbage=10.0)
    batch = _run(att, h, mask, state, steps=3)
    alone = _run(att, h[1:, :6], mask[1:, :6], state[1:], steps=3)
    for (cb, wb), (ca, wa) in zip(batch, alone):
        np.testing.assert_allclose(wb[1, :6], wa[0], atol=1e-6)
        assert np.all(wb[1, 6:] == 0.0)
        np.testing.assert_allclose(cb[1], ca[0], atol=1e-5)


@pytest.mark.parametrize("width,frames", [(1, 6), (4, 3), (4, 11), (7, 30), (100, 37), (100, 250), (201, 90)])
def test_location_matrix_equals_the_convolution(width, frames):
    """Teacher forcing's Toeplitz matmul gives the conv2d's location features and the same gradients (kernel
    and previous weights), for odd and even widths, utterances shorter and longer than the filter."""
    att = LocationAwareAttention(A, conv_filters=3, conv_width=width)
    att.build((None, S), (None, None, P))
    rng = np.random.default_rng(width + frames)
    previous = tf.constant(rng.random((2, frames)).astype("float32"))
    probe = tf.constant(rng.standard_normal((2, frames, 3)).astype("float32"))

    def features_and_grads(use_matrix):
        with tf.GradientTape() as tape:
            tape.watch(previous)
            matrix = att.location_matrix(tf.constant(frames)) if use_matrix else None
            f = att.location_features(previous, matrix)
            loss = tf.reduce_sum(f * probe)
        return (f.numpy(), *(g.numpy() for g in tape.gradient(loss, [previous, att.conv_kernel])))

    for expected, actual in zip(features_and_grads(False), features_and_grads(True)):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=2e-5)  # float32 sums of ~500 terms


@pytest.mark.parametrize("frames", [12, 13])  # the matrix pays off up to 3 filter widths (12 frames here)
def test_search_location_uses_the_matrix_where_it_pays_off_and_gives_the_convolution(frames):
    """A beam search's (use, matrix) pair: the matrix where it pays off, an empty one (and the convolution)
    beyond; either way the location features are the convolution's, in a traced step as in eager mode."""
    att = LocationAwareAttention(A, conv_filters=3, conv_width=4)
    att.build((None, S), (None, None, P))
    previous = tf.constant(np.random.default_rng(frames).random((2, frames)).astype("float32"))
    use, matrix = att.search_location(tf.constant(frames))
    assert bool(use) == (frames <= 12) and matrix.shape == ((frames, frames * 3) if frames <= 12 else (0, 0))
    expected = att.location_features(previous).numpy()
    traced = tf.function(lambda w: att.location_features(w, att.search_location(tf.shape(w)[1])))
    for got in (att.location_features(previous, (use, matrix)), traced(previous)):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    with convolution_in_search():
        assert att.search_location(tf.constant(frames)) is None
    assert att.search_location(tf.constant(frames)) is not None
    assert ContentAttention(A).search_location(tf.constant(frames)) is None


def test_content_attention_never_uses_a_location_matrix():
    assert ContentAttention(A).location_matrix_pays_off(tf.constant(5)) is None


def test_location_matrix_pays_off_only_for_a_few_filter_widths():
    att = LocationAwareAttention(A, conv_filters=3, conv_width=100)
    assert bool(att.location_matrix_pays_off(tf.constant(300)))
    assert not bool(att.location_matrix_pays_off(tf.constant(301)))


@pytest.mark.parametrize("width", [7, 100, 201])
def test_location_kernel_width(width):
    att = LocationAwareAttention(A, conv_filters=4, conv_width=width)
    att.build((None, S), (None, None, P))
    assert tuple(att.conv_kernel.shape) == (1, width, 1, 4)
    length = 2 * width + 1
    impulse = np.zeros((1, length), "float32")
    impulse[0, width] = 1.0
    f = att.location_features(tf.constant(impulse)).numpy()
    assert f.shape == (1, length, 4)
    support = np.nonzero(np.abs(f[0]).sum(-1))[0]
    assert len(support) == width  # one output frame per tap
    assert abs((support[0] + support[-1]) / 2 - width) <= 0.5  # centered on the impulse


def test_content_ignores_previous_weights_location_uses_them():
    h, mask, state = _inputs([8], seed=7)
    rng = np.random.default_rng(0)
    other = rng.uniform(size=(1, 8)).astype("float32")
    other /= other.sum()
    for kind, should_change in [("content", False), ("location", True)]:
        att = _make(kind)
        h_proj = att.precompute(h)
        _, w_uniform = att(state, h, h_proj, mask, initial_weights(mask))
        _, w_other = att(state, h, h_proj, mask, tf.constant(other))
        changed = not np.allclose(w_uniform.numpy(), w_other.numpy(), atol=1e-7)
        assert changed == should_change, kind
    content, location = _make("content"), _make("location")
    _run(content, h, mask, state, 1)
    _run(location, h, mask, state, 1)
    assert len(location.trainable_weights) == len(content.trainable_weights) + 2  # F and U


@pytest.mark.parametrize("kind", ["content", "location"])
def test_config_round_trip(kind):
    att = make_attention(kind, A, conv_filters=3, conv_width=9, sharpening=1.5, init_scale=0.05)
    h, mask, state = _inputs([5, 3])
    expected = _run(att, h, mask, state)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(att))
    assert type(restored) is type(att)
    assert restored.get_config() == att.get_config()
    _run(restored, h, mask, state)
    restored.set_weights(att.get_weights())
    for (c1, w1), (c2, w2) in zip(expected, _run(restored, h, mask, state)):
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(w1, w2)
    for w in att.weights:
        assert np.max(np.abs(w.numpy())) <= 0.05 + 1e-7
    with pytest.raises(ValueError):
        make_attention("monotonic", A)


@pytest.mark.parametrize("kind", ["content", "location"])
def test_several_decoder_rows_per_utterance_equal_the_tiled_encoder(kind):
    """K decoder rows per utterance (a beam) on the B utterances' h, h_proj and mask give what each row gives on
    its own copy of them (the encoder tensors tiled to B * K rows)."""
    att = _make(kind)
    h, mask, _ = _inputs([9, 5], seed=4)
    per_utterance = 3
    rng = np.random.default_rng(7)
    state = tf.constant(rng.standard_normal((2 * per_utterance, S)).astype("float32"))
    previous = tf.nn.softmax(tf.constant(rng.standard_normal((2 * per_utterance, 9)).astype("float32")))
    previous = previous * tf.cast(tf.repeat(mask, per_utterance, axis=0), tf.float32)
    h_proj = att.precompute(h)
    grouped = att(state, h, h_proj, mask, previous)
    tile = lambda x: tf.repeat(x, per_utterance, axis=0)  # noqa: E731
    tiled = att(state, tile(h), tile(h_proj), tile(mask), previous)
    for got, want in zip(grouped, tiled):
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-7)
    assert np.all(grouped[1].numpy()[per_utterance:, 5:] == 0.0)  # the second utterance's padding


@pytest.mark.parametrize("kind", ["content", "location"])
def test_output_shape_has_one_row_per_decoder_row(kind):
    assert _make(kind).compute_output_shape((6, S), (2, 9, P)) == ((6, P), (6, 9))


@pytest.mark.parametrize("frames", [9, 20])  # the matrix where it pays off (<= 3 widths of 5) and the conv beyond
def test_search_folds_the_state_term_into_the_location_matmul_with_the_same_result(frames):
    """Given `search_location`'s pair (TensorFlow's beam search), `U f + W s` is one batched matmul per row; the
    context and weights equal those of the plain sum (teacher forcing, the TFLite export) to float32 rounding,
    with several rows per utterance and padding."""
    att = _make("location")
    h, mask, _ = _inputs([frames, frames - 4], seed=5)
    rng = np.random.default_rng(frames)
    state = tf.constant(rng.standard_normal((6, S)).astype("float32"))
    previous = tf.nn.softmax(tf.constant(rng.standard_normal((6, frames)).astype("float32")))
    previous = previous * tf.cast(tf.repeat(mask, 3, axis=0), tf.float32)
    h_proj = att.precompute(h)
    plain = att(state, h, h_proj, mask, previous)
    pair = att.search_location(tf.constant(frames))
    assert att._location_and_state_term(att.state_dense(state), previous, pair) is not None
    assert att._location_and_state_term(att.state_dense(state), previous, None) is None
    for got, want in zip(att(state, h, h_proj, mask, previous, location_matrix=pair), plain):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
