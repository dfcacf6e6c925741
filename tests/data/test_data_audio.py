"""read_audio on real files: formats, rates, channels, segments and every way a file can be unusable."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile
import soxr

from tf_jointctc.data import audio
from tf_jointctc.data.audio import AudioError, read_audio


def test_16k_pcm16_is_read_exactly(tmp_path, helpers):
    samples = helpers.tone(0.5)
    path = helpers.write_audio(tmp_path / "a.wav", samples)
    expected, _ = soundfile.read(path, dtype="int16")
    got = read_audio(path)
    assert got.dtype == np.int16 and got.shape == (8000,)
    np.testing.assert_array_equal(got, expected)


def test_flac_is_read_exactly(tmp_path, helpers):
    path = helpers.write_audio(tmp_path / "a.flac", helpers.tone(0.4))
    expected, _ = soundfile.read(path, dtype="int16")
    np.testing.assert_array_equal(read_audio(path), expected)


def test_24_bit_wav(tmp_path, helpers):
    samples = helpers.tone(0.3)
    path = helpers.write_audio(tmp_path / "a24.wav", samples, subtype="PCM_24")
    assert soundfile.info(path).subtype == "PCM_24"
    got = read_audio(path)
    np.testing.assert_allclose(got, samples * 32768, atol=1.0)


def test_8k_stereo_is_resampled_first_channel(tmp_path, helpers, caplog):
    left = helpers.tone(1.0, rate=8000, freq=300.0)
    right = np.zeros_like(left)
    path = helpers.write_audio(tmp_path / "stereo8k.wav", np.stack([left, right], axis=1), rate=8000)
    audio._logged_rates.discard(8000)
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="absl"):
        got = read_audio(path)
        read_audio(path)
    assert got.shape == (16000,)
    # The first channel (a 300 Hz tone), not the silent second one.
    expected = soxr.resample(soundfile.read(path, dtype="float32")[0][:, 0], 8000, 16000) * 32768
    np.testing.assert_allclose(got, expected, atol=1.0)
    assert np.abs(got).max() > 10000
    notes = [r for r in caplog.records if "resampling audio from 8000 Hz" in r.getMessage()]
    assert len(notes) == 1


def test_44k_mono_resampled_length(tmp_path, helpers):
    path = helpers.write_audio(tmp_path / "a44.wav", helpers.tone(0.5, rate=44100), rate=44100)
    assert abs(read_audio(path).shape[0] - 8000) <= 1


def test_segment(tmp_path, helpers):
    path = helpers.write_audio(tmp_path / "long.wav", helpers.tone(1.0))
    whole = read_audio(path)
    np.testing.assert_array_equal(read_audio(path, start=0.25, end=0.75), whole[4000:12000])
    np.testing.assert_array_equal(read_audio(path, start=0.5, end=-1), whole[8000:])
    np.testing.assert_array_equal(read_audio(path, start=0.5, end=5.0), whole[8000:])


def test_float_clipping(tmp_path, helpers):
    path = helpers.write_audio(tmp_path / "loud.wav", np.array([2.0, -2.0, 0.5] * 200, np.float32), subtype="FLOAT")
    got = read_audio(path)
    assert got[:3].tolist() == [32767, -32768, 16384]


def _reason(path, **kwargs) -> str:
    with pytest.raises(AudioError) as info:
        read_audio(str(path), **kwargs)
    assert str(path) in info.value.message
    return info.value.reason


def test_bad_files_raise_with_reasons(tmp_path, helpers, monkeypatch):
    assert _reason(tmp_path / "missing.wav") == "missing_file"

    truncated = helpers.truncate(helpers.write_audio(tmp_path / "cut.wav", helpers.tone(1.0)))
    assert _reason(truncated) == "unreadable_audio"

    cut_flac = helpers.truncate(helpers.write_audio(tmp_path / "cut.flac", helpers.tone(1.0)), 0.5)
    assert _reason(cut_flac) == "unreadable_audio"

    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x01not really a wave file at all" * 3)
    assert _reason(garbage) == "unreadable_audio"

    empty = helpers.write_audio(tmp_path / "empty.wav", np.zeros(0, np.float32))
    assert _reason(empty) == "empty_audio"

    nan = np.full(1600, 0.1, np.float32)
    nan[100] = np.nan
    assert _reason(helpers.write_audio(tmp_path / "nan.wav", nan, subtype="FLOAT")) == "non_finite_audio"

    segment_past_end = helpers.write_audio(tmp_path / "short.wav", helpers.tone(0.5))
    assert _reason(segment_past_end, start=2.0, end=3.0) == "empty_audio"

    long_path = helpers.write_audio(tmp_path / "long.wav", helpers.tone(3.0))
    assert read_audio(long_path, max_seconds=3.5).shape == (48000,)

    # The length check uses the header only: reading samples would fail here.
    def no_reading(*args, **kwargs):
        raise AssertionError("samples were read")

    monkeypatch.setattr(soundfile.SoundFile, "read", no_reading)
    assert _reason(long_path, max_seconds=2.0) == "too_long_audio"
