"""`SpectralTilt`: a per-utterance straight line across the static log-mels, deltas and padding untouched."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_jointctc.layers.spectral_tilt import SpectralTilt


@settings(deadline=None, max_examples=20)
@given(lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4), max_slope=st.floats(0.1, 4.0),
       seed=st.integers(0, 2**31 - 1))
def test_each_valid_frame_gets_its_utterances_line_on_the_static_bins_only(lengths, max_slope, seed):
    batch, frames, bins = len(lengths), max(lengths) + 2, 5
    rng = np.random.default_rng(seed)
    valid = np.arange(frames)[None, :] < np.array(lengths)[:, None]
    features = (rng.normal(size=[batch, frames, 3 * bins]) * valid[..., None]).astype(np.float32)
    layer = SpectralTilt(max_slope, bins=bins)
    seed_pair = tf.constant([seed, 3], tf.int64)
    out = layer(features, tf.constant(lengths), seed_pair).numpy()
    slopes = layer.slopes(tf.constant(batch), seed_pair).numpy()
    assert np.all(np.abs(slopes) <= max_slope + 1e-6)
    line = np.linspace(-0.5, 0.5, bins)
    expected = features.copy()
    expected[:, :, :bins] += valid[..., None] * slopes[:, None, None] * line[None, None, :]  # brute force
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_array_equal(out[~valid], 0.0)  # padding stays zero
    np.testing.assert_array_equal(out[:, :, bins:], features[:, :, bins:])  # deltas of a constant offset: none


def test_slopes_follow_the_seed_and_spread_over_the_range():
    layer = SpectralTilt(2.0)
    first = layer.slopes(tf.constant(4000), tf.constant([7, 0], tf.int64)).numpy()
    np.testing.assert_array_equal(first, layer.slopes(tf.constant(4000), tf.constant([7, 0], tf.int64)).numpy())
    assert not np.allclose(first, layer.slopes(tf.constant(4000), tf.constant([8, 0], tf.int64)).numpy())
    assert first.min() < -1.8 and first.max() > 1.8 and abs(first.mean()) < 0.1


def test_off_by_default_is_the_identity_and_the_layer_round_trips():
    features = np.random.default_rng(0).normal(size=[2, 6, 120]).astype(np.float32)
    off = SpectralTilt()
    assert not off.enabled
    np.testing.assert_array_equal(off(features, tf.constant([6, 3]), tf.constant([1, 2])).numpy(), features)
    layer = SpectralTilt(1.5, bins=40, name="tilt")
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again, SpectralTilt) and (again.max_slope, again.bins, again.name) == (1.5, 40, "tilt")


@pytest.mark.parametrize("kwargs", [{"max_slope": -0.5}, {"max_slope": float("nan")},
                                    {"max_slope": 1.0, "bins": 1}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="max_slope|bins"):
        SpectralTilt(**kwargs)


def test_off_it_needs_no_bins():
    assert not SpectralTilt(0.0, bins=1).enabled
