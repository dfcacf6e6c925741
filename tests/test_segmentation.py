"""tf_jointctc.segmentation: cutting long audio at its quietest points."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_jointctc.segmentation import FRAME_SAMPLES, SMOOTHING_FRAMES, frame_energy, split_long_audio


def _noise(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * 16000))).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(samples=st.integers(0, 200_000), max_seconds=st.floats(0.1, 4.0), seed=st.integers(0, 2**16))
def test_pieces_cover_the_audio_exactly_and_none_is_too_long(samples, max_seconds, seed):
    rng = np.random.default_rng(seed)
    # Loud and quiet stretches of random lengths, so that the quietest point moves around.
    gains = np.repeat(rng.uniform(0.0, 1.0, size=samples // 1000 + 1), 1000)[:samples]
    waveform = (rng.standard_normal(samples) * gains).astype(np.float32)
    pieces = split_long_audio(waveform, max_seconds)
    max_samples = int(round(max_seconds * 16000))
    if samples == 0:
        assert pieces == []
        return
    assert pieces[0][0] == 0 and pieces[-1][1] == samples
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    assert all(0 < end - start <= max_samples for start, end in pieces)
    # Every cut lies in its piece's last half, at a frame's centre.
    for start, end in pieces[:-1]:
        assert end - start >= max_samples // 2
        assert end % FRAME_SAMPLES == FRAME_SAMPLES // 2
    if samples <= max_samples:
        assert pieces == [(0, samples)]


def test_a_cut_lands_in_the_pause_between_two_sentences():
    speech, pause = _noise(3.0, 0.3, seed=1), _noise(0.4, 0.001, seed=2)
    waveform = np.concatenate([speech, pause, speech, pause, speech])  # 9.8 s
    pieces = split_long_audio(waveform, 5.0)
    assert len(pieces) == 3
    first_pause = (48_000, 48_000 + 6_400)
    second_pause = (2 * 48_000 + 6_400, 2 * 48_000 + 2 * 6_400)
    assert first_pause[0] < pieces[0][1] < first_pause[1]
    assert second_pause[0] < pieces[1][1] < second_pause[1]


def test_the_quietest_point_wins_over_a_merely_quiet_one():
    waveform = np.concatenate([_noise(2.6, 0.3), _noise(0.3, 0.05), _noise(0.5, 0.3), _noise(0.3, 0.001),
                               _noise(2.0, 0.3)])
    (start, cut), _ = split_long_audio(waveform, 4.0)
    assert start == 0 and 3.4 * 16000 < cut < 3.7 * 16000


def test_non_finite_samples_count_as_silence():
    waveform = np.concatenate([_noise(3.0, 0.3), np.full(8000, np.nan, np.float32), _noise(3.0, 0.3)])
    assert np.all(np.isfinite(frame_energy(waveform)))
    (_, cut), _ = split_long_audio(waveform, 5.0)
    assert 48_000 < cut < 56_000


def test_frame_energy_is_the_smoothed_mean_square_of_whole_frames():
    waveform = np.zeros(FRAME_SAMPLES * 40 + 17, np.float32)
    waveform[FRAME_SAMPLES * 20: FRAME_SAMPLES * 21] = 2.0  # one loud frame: mean square 4
    energy = frame_energy(waveform)
    assert energy.shape == (40,)
    half = SMOOTHING_FRAMES // 2
    expected = np.zeros(40)
    expected[20 - half: 20 + half + 1] = 4.0 / SMOOTHING_FRAMES
    np.testing.assert_allclose(energy, expected, atol=1e-12)


@pytest.mark.parametrize("max_seconds", [0.0, 0.05, -1.0, float("nan")])
def test_too_short_a_piece_length_is_refused(max_seconds):
    with pytest.raises(ValueError, match="max_seconds"):
        split_long_audio(np.zeros(16000, np.float32), max_seconds)
