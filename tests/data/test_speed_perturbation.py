"""data/speed_perturbation.py: band-limited resampling (frequency and duration scale by the factor, amplitude
kept, content pushed past 8 kHz removed), the per-utterance draw (fixed by its seed, every factor drawn), the CTC
guard, and the settings."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_jointctc import features, text
from tf_jointctc.config import base_config
from tf_jointctc.data import speed_perturbation as sp

RATE = 16000


def _tone(hz: float, seconds: float = 2.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _peak_hz(x: np.ndarray) -> float:
    inner = x[1000:-1000]
    return float(np.argmax(np.abs(np.fft.rfft(inner)))) * RATE / len(inner)


@pytest.mark.parametrize("factor", [0.9, 1.1, 0.8, 1.25])
def test_resample_scales_frequency_and_duration_by_the_factor_and_keeps_the_amplitude(factor):
    tone = _tone(1000.0)
    out = sp.resample(tone, *sp.as_ratio(factor)).numpy()
    assert out.shape == (round(len(tone) / factor),)
    assert _peak_hz(out) == pytest.approx(1000.0 * factor, abs=2.0)
    rms = np.sqrt(np.mean(out[1000:-1000] ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_resample_drops_what_a_speed_up_pushes_past_the_nyquist_frequency():
    """A 7.6 kHz tone at 1.1x would sit at 8.36 kHz: it is removed, not folded back to 7.64 kHz."""
    out = sp.resample(_tone(7600.0), 11, 10).numpy()
    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) < 0.01


def test_factors_become_small_ratios():
    assert sp.as_ratio(0.9) == (9, 10) and sp.as_ratio(1.1) == (11, 10) and sp.as_ratio(1.0) == (1, 1)
    assert sp.as_ratio(0.95) == (19, 20) and sp.as_ratio(1 / 3) == (1, 3)


def test_ctc_min_frames_is_text_ctc_min_frames():
    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.integers(1, 4), max_size=12))
    def check(labels):
        assert int(sp.ctc_min_frames(tf.constant(labels, tf.int32))) == text.ctc_min_frames(labels)

    check()


def _example(seconds: float = 1.0, num_labels: int = 5) -> dict[str, tf.Tensor]:
    waveform = _tone(440.0, seconds)
    return {"id": tf.constant("u1"), "text": tf.constant("hello"), "waveform": tf.constant(waveform),
            "num_samples": tf.constant(len(waveform), tf.int32),
            "labels": tf.constant(np.arange(1, num_labels + 1), tf.int32)}


def test_each_seed_fixes_the_speed_and_every_factor_is_drawn():
    factors = (0.9, 1.0, 1.1)
    lengths = {}
    for position in range(30):
        seed = tf.constant([7, position], tf.int64)
        first = sp.speed_perturbed_utterance(_example(), seed, factors, subsampling=3)
        again = sp.speed_perturbed_utterance(_example(), seed, factors, subsampling=3)
        np.testing.assert_array_equal(first["waveform"].numpy(), again["waveform"].numpy())
        assert int(first["num_samples"]) == first["waveform"].shape[0]
        assert first["labels"].numpy().tolist() == [1, 2, 3, 4, 5] and first["id"].numpy() == b"u1"
        lengths[position] = int(first["num_samples"])
    assert set(lengths.values()) == {round(16000 / f) for f in factors}


def test_an_utterance_keeps_its_speed_when_the_faster_one_would_be_too_short_for_ctc():
    """One second at subsampling 3 is 33 encoder frames: 33 labels fit, and at 1.1x (30 frames) they would not."""
    one_second = 16000
    frames = -(-features.num_frames(one_second) // 3)
    fits = sp.speed_perturbed_utterance(_example(num_labels=frames), tf.constant([1, 2]), (1.1,), subsampling=3)
    assert int(fits["num_samples"]) == one_second
    slack = sp.speed_perturbed_utterance(_example(num_labels=20), tf.constant([1, 2]), (1.1,), subsampling=3)
    assert int(slack["num_samples"]) == round(one_second / 1.1)


def test_factors_are_checked_and_one_is_off():
    assert sp.checked_factors([0.9, 1, 1.1]) == (0.9, 1.0, 1.1)
    assert not sp.is_enabled((1.0,)) and not sp.is_enabled(()) and sp.is_enabled((1.0, 1.1))
    with pytest.raises(ValueError, match=r"\[0.5, 2\]"):
        sp.checked_factors((0.3, 1.0))
    assert not sp.is_enabled(base_config().data.speed_perturbation)
    example = _example()
    assert sp.speed_perturbed_utterance(example, tf.constant([1, 2]), (1.0,), subsampling=3) is example
