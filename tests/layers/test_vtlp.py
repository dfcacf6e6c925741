import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_jointctc import features
from tf_jointctc.layers.vtlp import (
    BOUNDARY_HZ,
    VocalTractLengthPerturbation,
    checked_warp_range,
    source_hz,
    warp_matrices,
)


def _forward_warp(hz: np.ndarray, alpha: float, nyquist: float = 8000.0) -> np.ndarray:
    """Jaitly & Hinton's warp as published (forward direction), float64."""
    cut = BOUNDARY_HZ * min(alpha, 1.0) / alpha
    return np.where(hz <= cut, alpha * hz,
                    nyquist - (nyquist - BOUNDARY_HZ * min(alpha, 1.0)) / (nyquist - cut) * (nyquist - hz))


def _reference_matrix(alpha: float, bins: int = 40) -> np.ndarray:
    """[M_in, M_out] by brute force: invert the forward warp on a fine grid, then interpolate channel positions."""
    edges = features.mel_band_edges(bins)
    centres = 700.0 * np.expm1(edges[1:-1] / 1127.0)
    grid = np.linspace(0.0, 8000.0, 400_001)
    source = np.interp(centres, _forward_warp(grid, alpha), grid)
    position = np.clip((features.hz_to_mel(source) - edges[0]) / (edges[1] - edges[0]) - 1.0, 0.0, bins - 1)
    matrix = np.zeros([bins, bins])
    for out, p in enumerate(position):
        below = min(int(np.floor(p)), bins - 2)
        matrix[below, out] += 1.0 - (p - below)
        matrix[below + 1, out] += p - below
    return matrix


@settings(deadline=None, max_examples=25)
@given(st.floats(0.5, 2.0))
def test_warp_matrices_match_the_published_warp_inverted_by_brute_force(alpha):
    got = warp_matrices(tf.constant([alpha], tf.float32)).numpy()[0]
    np.testing.assert_allclose(got, _reference_matrix(alpha), atol=2e-3)
    np.testing.assert_allclose(got.sum(axis=0), 1.0, atol=1e-5)


def test_source_hz_inverts_the_forward_warp_on_both_segments():
    hz = np.array([100.0, 2000.0, 4000.0, 5000.0, 7000.0, 7900.0])
    for alpha in (0.8, 0.9, 1.0, 1.1, 1.25):
        back = source_hz(tf.constant(_forward_warp(hz, alpha), tf.float32), tf.constant([alpha])).numpy()[0]
        np.testing.assert_allclose(back, hz, rtol=1e-5)


def test_a_factor_of_one_is_the_identity():
    np.testing.assert_allclose(warp_matrices(tf.constant([1.0])).numpy()[0], np.eye(40), atol=1e-5)


def _sine_fbank(hz: float) -> np.ndarray:
    t = np.arange(16000) / 16000.0
    wave = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None]
    fbank, lengths = features.LogMelFilterbank()(tf.constant(wave), tf.constant([16000]))
    return fbank.numpy()[0, : int(lengths[0])].mean(axis=0)  # [40]


@pytest.mark.parametrize("alpha", [0.9, 1.1])
def test_warping_a_tone_moves_its_peak_where_the_scaled_tone_lies(alpha):
    """A real 1 kHz tone's log-mels warped by alpha peak in the channel of an alpha kHz tone."""
    tone = _sine_fbank(1000.0)
    warped = tone @ warp_matrices(tf.constant([alpha])).numpy()[0]
    assert np.argmax(warped) == np.argmax(_sine_fbank(1000.0 * alpha)) != np.argmax(tone)


def _features(batch=3, frames=9, seed=0):
    return np.random.default_rng(seed).normal(size=[batch, frames, 120]).astype(np.float32)


def test_off_by_default_and_warps_every_group_by_one_matrix_per_utterance():
    x = _features()
    assert not VocalTractLengthPerturbation().enabled
    np.testing.assert_array_equal(VocalTractLengthPerturbation()(x, tf.constant([1, 2])).numpy(), x)
    layer = VocalTractLengthPerturbation((0.8, 1.2))
    seed = tf.constant([5, 0])
    out = layer(x, seed).numpy()
    factors = layer.factors(tf.constant(3), seed).numpy()
    assert np.all((factors >= 0.8) & (factors <= 1.2)) and len(set(factors.round(6))) == 3
    matrices = warp_matrices(tf.constant(factors)).numpy()
    for b in range(3):
        for g in range(3):
            np.testing.assert_allclose(out[b, :, 40 * g: 40 * (g + 1)], x[b, :, 40 * g: 40 * (g + 1)] @ matrices[b],
                                       rtol=1e-5, atol=1e-5)


def test_warps_follow_the_seed_and_ignore_padding():
    layer = VocalTractLengthPerturbation((0.9, 1.1))
    x = _features(frames=6)
    padded = np.concatenate([x, np.zeros([3, 4, 120], np.float32)], axis=1)
    a = layer(x, tf.constant([3, 0])).numpy()
    b = layer(padded, tf.constant([3, 0])).numpy()
    np.testing.assert_allclose(b[:, :6], a, atol=1e-6)
    np.testing.assert_array_equal(b[:, 6:], 0.0)  # padded frames stay zero
    assert np.abs(layer(x, tf.constant([4, 0])).numpy() - a).max() > 1e-3


def test_serializes_and_rejects_bad_settings():
    layer = VocalTractLengthPerturbation((0.9, 1.1), boundary_hz=4000.0)
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert again.warp_range == (0.9, 1.1) and again.boundary_hz == 4000.0 and again.enabled
    assert checked_warp_range([1, 1]) == (1.0, 1.0)
    for bad in [(1.1, 0.9), (0.4, 1.0), (1.0, 2.5), (0.9,), (0.9, 1.0, 1.1)]:
        with pytest.raises(ValueError, match="vtlp_warp"):
            VocalTractLengthPerturbation(bad)
    with pytest.raises(ValueError, match="boundary_hz"):
        VocalTractLengthPerturbation((0.9, 1.1), boundary_hz=9000.0)
    with pytest.raises(ValueError, match="bins >= 2"):
        VocalTractLengthPerturbation((0.9, 1.1), bins=1)
    assert not VocalTractLengthPerturbation(bins=1).enabled  # off, it needs no bins


def test_passes_the_frame_mask_through():
    mask = tf.constant([[True, False]])
    assert VocalTractLengthPerturbation((0.9, 1.1)).compute_mask(tf.zeros([1, 2, 120]), mask=mask) is mask


def test_a_probability_below_one_warps_only_part_of_the_batch_from_the_same_draws():
    seed = tf.constant([11, 0])
    every = VocalTractLengthPerturbation((0.8, 1.2)).factors(tf.constant(400), seed).numpy()
    half = VocalTractLengthPerturbation((0.8, 1.2), probability=0.5)
    some = half.factors(tf.constant(400), seed).numpy()
    warped = some != 1.0
    np.testing.assert_array_equal(some[warped], every[warped])  # a warped utterance keeps today's factor
    assert 150 < warped.sum() < 250  # about half of 400 (binomial sd 10)
    np.testing.assert_array_equal(half.factors(tf.constant(400), seed).numpy(), some)  # the seed decides
    x = _features(batch=400, frames=2)
    out = half(x, seed).numpy()
    np.testing.assert_allclose(out[~warped], x[~warped], atol=1e-4)  # alpha 1: the identity up to rounding
    assert np.abs(out[warped] - x[warped]).max() > 1e-2
    again = keras.layers.deserialize(keras.layers.serialize(half))
    assert again.probability == 0.5
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="vtlp_probability"):
            VocalTractLengthPerturbation((0.9, 1.1), probability=bad)
