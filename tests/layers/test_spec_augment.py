import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_jointctc.layers.spec_augment import SpecAugment

BINS, GROUPS = 40, 3


def _features(batch=3, frames=50, seed=0):
    return np.random.default_rng(seed).uniform(1.0, 2.0, (batch, frames, BINS * GROUPS)).astype("float32")


def _masked(layer, features, lengths, seed=(3, 4)):
    out = layer(features, np.asarray(lengths, "int32"), tf.constant(seed, tf.int64)).numpy()
    return out == 0.0  # the inputs are never 0


def test_no_masks_is_the_identity():
    features = _features()
    layer = SpecAugment(freq_masks=0, time_masks=0)
    assert not layer.enabled
    np.testing.assert_array_equal(layer(features, np.array([50, 40, 9]), tf.constant([1, 2])), features)


@settings(max_examples=25, deadline=None)
@given(seed=st.tuples(st.integers(0, 2**31), st.integers(0, 2**31)),
       lengths=st.lists(st.integers(0, 50), min_size=3, max_size=3))
def test_masks_are_bands_of_bins_and_spans_of_valid_frames(seed, lengths):
    """Brute-force check of the mask's structure: every masked entry lies in a masked frame (all bins) or a
    masked bin (all frames, the same bins in every feature group); bands and spans respect the widths."""
    layer = SpecAugment(freq_masks=2, freq_width=6, time_masks=2, time_width=7, max_time_fraction=0.5)
    masked = _masked(layer, _features(), lengths, seed)
    for b, length in enumerate(lengths):
        frames = masked[b].all(axis=1)  # [T] whole frames masked
        bins = masked[b].all(axis=0) if masked.shape[1] else np.zeros(BINS * GROUPS, bool)  # [D]
        np.testing.assert_array_equal(masked[b], frames[:, None] | bins[None, :])
        assert not frames[length:].any(), "a time mask reached the padding"
        assert frames.sum() <= 2 * min(7, int(0.5 * length))
        per_group = bins.reshape(GROUPS, BINS)
        assert (per_group == per_group[0]).all(), "bands differ between the static and delta groups"
        assert per_group[0].sum() <= 2 * 6


def test_masks_do_not_depend_on_padding_and_follow_the_seed():
    layer = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=10)
    features = _features(frames=60)
    lengths = [60, 45, 30]
    padded = np.concatenate([features, np.ones((3, 25, BINS * GROUPS), "float32")], axis=1)
    short, long = _masked(layer, features, lengths), _masked(layer, padded, lengths)
    for b, length in enumerate(lengths):
        np.testing.assert_array_equal(short[b, :length], long[b, :length])
    assert short.any(axis=(1, 2)).all(), "some utterance drew no mask at all"
    assert (short != _masked(layer, features, lengths, seed=(3, 5))).any()
    np.testing.assert_array_equal(short, _masked(layer, features, lengths, seed=(3, 4)))


def test_serializes_and_rejects_bad_settings():
    layer = SpecAugment(freq_masks=1, freq_width=5, time_masks=3, time_width=9, max_time_fraction=0.1)
    again = SpecAugment.from_config(layer.get_config())
    assert (again.freq_masks, again.freq_width, again.time_masks, again.time_width, again.max_time_fraction) == (
        1, 5, 3, 9, 0.1)
    assert SpecAugment(**layer.mask_settings()).mask_settings() == again.mask_settings() == layer.mask_settings()
    with pytest.raises(ValueError, match="freq_width"):
        SpecAugment(freq_masks=1, freq_width=41)
    with pytest.raises(ValueError, match="max_time_fraction"):
        SpecAugment(time_masks=1, max_time_fraction=1.5)
    with pytest.raises(ValueError, match=">= 0"):
        SpecAugment(time_masks=-1)


def test_passes_the_frame_mask_through():
    layer = SpecAugment(time_masks=2, time_width=3)
    mask = tf.constant([[True, True, False], [True, False, False]])
    features = tf.zeros([2, 3, 40])
    assert layer.supports_masking
    np.testing.assert_array_equal(layer.compute_mask(features, tf.constant([2, 1]), tf.constant([0, 1]),
                                                     mask=mask), mask)
