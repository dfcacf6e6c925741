"""data/train_noise.py: coloured noise and babble as the corpus builder makes them, mixing at an exact SNR, the
per-utterance draw (deterministic by seed, new for a new seed), its settings, and the bank read from shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from tf_jointctc.config import base_config
from tf_jointctc.data import train_noise as tn
from tf_jointctc.data.synth import SynthConfig, augment
from tf_jointctc.data.tfrecord import prepare_dataset
from tf_jointctc.text import Vocabulary


def _band_power_db(x: np.ndarray, low: float, high: float) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / tn.SAMPLE_RATE)
    return 10 * np.log10(power[(freqs >= low) & (freqs < high)].mean())


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_coloured_noise_has_unit_power_and_the_corpus_builders_spectrum(colour):
    """Power per decade falls by 10 dB per unit of the exponent, as in the builder's numpy noise."""
    seconds = 10
    ours = tn.coloured_noise(tf.constant([3, 4]), tf.constant(seconds * tn.SAMPLE_RATE), tn.NOISE_EXPONENTS[colour])
    ours = ours.numpy()
    builders = augment.coloured_noise(np.random.default_rng(0), seconds * tn.SAMPLE_RATE, colour)
    assert ours.shape == (seconds * tn.SAMPLE_RATE,)
    assert np.mean(ours**2) == pytest.approx(1.0, rel=1e-4)
    slope = _band_power_db(ours, 100, 200) - _band_power_db(ours, 1000, 2000)
    assert slope == pytest.approx(10 * tn.NOISE_EXPONENTS[colour], abs=1.0)
    assert slope == pytest.approx(_band_power_db(builders, 100, 200) - _band_power_db(builders, 1000, 2000), abs=1.0)


def test_coloured_noise_is_fixed_by_its_seed_and_any_length_works():
    draw = lambda seed, n: tn.coloured_noise(tf.constant(seed), tf.constant(n), 1.0).numpy()  # noqa: E731
    np.testing.assert_array_equal(draw([1, 2], 999), draw([1, 2], 999))
    assert not np.allclose(draw([1, 2], 999), draw([1, 3], 999))
    assert draw([1, 2], 999).shape == (999,) and draw([1, 2], 1).shape == (1,)


def _sinusoid_bank(frequencies: list[int], samples: int = 1600) -> tn.BabbleBank:
    """Sources that are whole periods of sinusoids at distinct frequencies (Hz multiples of 10), of different
    amplitudes: read circularly from any offset they stay the same sinusoid, only its phase changes."""
    t = np.arange(samples) / tn.SAMPLE_RATE
    waves = np.stack([(0.1 + 0.2 * i) * np.sin(2 * np.pi * f * t) for i, f in enumerate(frequencies)])
    return tn.BabbleBank(waves.astype(np.float32), np.full(len(frequencies), samples, np.int32))


@pytest.mark.parametrize("talkers", [1, 3, 5])
def test_babble_sums_distinct_bank_sources_each_at_unit_power(talkers):
    frequencies = [100, 250, 400, 700, 1100, 1500, 2300]
    bank = _sinusoid_bank(frequencies)
    n = tn.SAMPLE_RATE  # 1 s: every source frequency falls on a DFT bin
    out = tn.babble(tf.constant([5, talkers], tf.int64), bank, tf.constant(n), tf.constant(talkers)).numpy()
    spectrum = np.abs(np.fft.rfft(out)) / (n / 2)  # a unit-power sinusoid has amplitude sqrt(2)
    present = [f for f in frequencies if spectrum[f] > 0.1]
    assert len(present) == talkers  # distinct sources
    np.testing.assert_allclose(spectrum[present], np.sqrt(2.0), rtol=1e-3)
    assert np.mean(out**2) == pytest.approx(talkers, rel=1e-3)


def test_babble_takes_at_most_the_banks_sources():
    bank = _sinusoid_bank([100, 250])
    out = tn.babble(tf.constant([1, 1], tf.int64), bank, tf.constant(tn.SAMPLE_RATE), tf.constant(6)).numpy()
    assert np.mean(out**2) == pytest.approx(2.0, rel=1e-3)


def test_mix_at_snr_is_exact_and_limits_the_peak():
    rng = np.random.default_rng(0)
    speech = (0.01 * rng.standard_normal(8000)).astype(np.float32)
    noise = rng.standard_normal(8000).astype(np.float32)
    for snr in (0.0, 7.5, 20.0):
        mixed = tn.mix_at_snr(tf.constant(speech), tf.constant(noise), tf.constant(snr)).numpy()
        added = mixed - speech
        assert 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2)) == \
            pytest.approx(snr, abs=0.01)
    loud = tn.mix_at_snr(tf.constant(speech * 90), tf.constant(noise), tf.constant(0.0)).numpy()
    assert np.max(np.abs(loud)) == pytest.approx(tn.PEAK, rel=1e-6)
    silent = tn.mix_at_snr(tf.constant(speech), tf.zeros([8000]), tf.constant(5.0)).numpy()
    np.testing.assert_array_equal(silent, speech)


def _noisy(speech: np.ndarray, seed: list[int], settings: tn.TrainNoise, bank=None) -> np.ndarray:
    example = {"waveform": tf.constant(speech), "id": tf.constant("u")}
    out = tn.noisy_utterance(example, tf.constant(seed, tf.int64), settings, bank)
    assert out["id"].numpy() == b"u"
    return out["waveform"].numpy()


def test_noisy_utterance_draws_kind_snr_and_noise_by_seed():
    speech = (0.02 * np.sin(np.arange(16000) / 7.0)).astype(np.float32)
    bank = _sinusoid_bank([100, 250, 400, 700])
    settings = tn.TrainNoise(probability=1.0, snr_db=(5.0, 15.0))
    outs = [_noisy(speech, [9, position], settings, bank) for position in range(12)]
    np.testing.assert_array_equal(outs[3], _noisy(speech, [9, 3], settings, bank))  # the same seed: the same
    assert len({out.tobytes() for out in outs}) == 12  # new noise for every position (and pass)
    for out in outs:  # quiet speech: no peak limiting, so the SNR is in the drawn range
        snr = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean((out - speech).astype(np.float64) ** 2))
        assert 5.0 - 0.01 <= snr <= 15.0 + 0.01
    # Each kind alone: babble of the sinusoid bank is tonal, brown noise is low-pass, white is flat.
    only = lambda kind: tn.TrainNoise(probability=1.0, snr_db=(0.0, 0.0), kinds=(kind,), weights=(1.0,))  # noqa: E731
    babble = _noisy(speech, [1, 1], only("babble"), bank) - speech
    assert np.sort(np.abs(np.fft.rfft(babble)))[-3] > 100 * np.median(np.abs(np.fft.rfft(babble)))
    brown = _noisy(speech, [1, 1], only("brown")) - speech
    white = _noisy(speech, [1, 1], only("white")) - speech
    assert _band_power_db(brown, 100, 200) - _band_power_db(brown, 1000, 2000) > 15
    assert abs(_band_power_db(white, 100, 200) - _band_power_db(white, 1000, 2000)) < 3


def test_noisy_utterance_applies_with_its_probability():
    speech = (0.1 * np.sin(np.arange(4000) / 5.0)).astype(np.float32)
    settings = tn.TrainNoise(probability=0.3, kinds=("white",), weights=(1.0,))
    changed = sum(not np.array_equal(_noisy(speech, [2, i], settings), speech) for i in range(200))
    assert 35 <= changed <= 85  # binomial(200, 0.3): mean 60, sd 6.5
    off = tn.TrainNoise(probability=0.0)
    np.testing.assert_array_equal(_noisy(speech, [2, 0], off), speech)
    with pytest.raises(ValueError, match="babble bank"):
        _noisy(speech, [2, 0], tn.TrainNoise(probability=1.0))


def test_noise_curriculum_ramps_the_chance_over_passes_and_applies_it_by_pass():
    """`initial_probability` / `ramp_passes`: the chance goes linearly from the initial one at pass 0 to
    `probability` at pass `ramp_passes` and stays there; `noisy_utterance` draws with the chance of its pass."""
    ramp = tn.TrainNoise(probability=0.8, initial_probability=0.2, ramp_passes=4, kinds=("white",), weights=(1.0,))
    chances = [float(ramp.probability_in_pass(p)) for p in range(7)]
    np.testing.assert_allclose(chances, [0.2, 0.35, 0.5, 0.65, 0.8, 0.8, 0.8], atol=1e-6)
    assert float(tn.TrainNoise(probability=0.5, initial_probability=0.9).probability_in_pass(0)) == 0.5  # no ramp
    speech = (0.1 * np.sin(np.arange(4000) / 5.0)).astype(np.float32)
    clean_first = tn.TrainNoise(probability=1.0, initial_probability=0.0, ramp_passes=1, kinds=("white",),
                                weights=(1.0,))

    def noisy_in_pass(pass_index: int, settings: tn.TrainNoise) -> int:
        return sum(not np.array_equal(tn.noisy_utterance({"waveform": tf.constant(speech)},
                                                         tf.constant([2, i], tf.int64), settings,
                                                         pass_index=pass_index)["waveform"].numpy(), speech)
                   for i in range(40))

    assert noisy_in_pass(0, clean_first) == 0
    assert noisy_in_pass(1, clean_first) == noisy_in_pass(5, clean_first) == 40
    assert tn.TrainNoise(initial_probability=0.3, ramp_passes=2).enabled
    assert not tn.TrainNoise(initial_probability=0.3).enabled


@pytest.mark.parametrize("bad", [
    {"probability": 1.5}, {"initial_probability": -0.1}, {"ramp_passes": -1}, {"ramp_passes": 1.5},
    {"snr_db": (10.0, 0.0)}, {"kinds": ("rain",), "weights": (1.0,)},
    {"weights": (1.0, 1.0)}, {"weights": (0.0, 0.0, 0.0, 0.0)}, {"babble_talkers": (0, 3)},
    {"babble_talkers": (4, 3)}, {"babble_bank": 0},
])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match="data.train_noise"):
        tn.TrainNoise(**bad)


def test_settings_from_the_config_have_the_dataclasss_defaults():
    config = base_config()
    assert tn.TrainNoise.from_config(config.data.train_noise) == tn.TrainNoise()
    assert not tn.TrainNoise.from_config(config.data.train_noise).enabled
    assert tn.TrainNoise.from_config({"probability": 0.5, "snr_db": [0, 10]}).snr_db == (0, 10)
    with pytest.raises(ValueError, match="unknown data.train_noise keys"):
        tn.TrainNoise.from_config({"snr": 3})
    assert not tn.TrainNoise(kinds=("babble", "white"), weights=(0.0, 1.0)).uses_babble


def test_default_settings_draw_as_the_corpus_builder_draws_its_train_noise():
    synth = SynthConfig()
    ours = tn.TrainNoise()
    assert (ours.probability, ours.snr_db, ours.kinds, ours.weights, ours.babble_talkers, ours.babble_bank) == (
        0.0, synth.train_snr_db, synth.train_noise_types, synth.train_noise_weights, synth.babble_talkers,
        synth.babble_bank)


def test_babble_bank_spreads_over_the_shards_and_cuts_long_sources(tmp_path):
    entries = []
    for i in range(12):
        samples = np.full(1600 * (i + 1), (i + 1) / 100, np.float32)
        soundfile.write(str(tmp_path / f"u{i}.wav"), samples, 16000, subtype="PCM_16")
        entries.append({"id": f"u{i}", "audio": str(tmp_path / f"u{i}.wav"), "text": "a b"})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    summary = prepare_dataset(str(tmp_path / "m.jsonl"), str(tmp_path / "cache"), Vocabulary(), num_shards=3,
                              subsampling=1)
    bank = tn.babble_bank(summary["shards"], 12, size=4, max_seconds=0.5)
    assert bank.waveforms.shape[0] == 4
    assert bank.lengths.max() <= 8000 and np.all(bank.lengths >= 1600)
    levels = {round(float(w[0]) * 100) for w in bank.waveforms}  # each source is one utterance's constant level
    assert len(levels) == 4
    for row, length in zip(bank.waveforms, bank.lengths):
        assert not row[length:].any()


def test_next_power_of_two_is_the_smallest_power_at_or_above_n():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.integers(0, 2**24))
    def check(n):
        expected = 1
        while expected < n:
            expected *= 2
        assert int(tn.next_power_of_two(tf.constant(n))) == expected

    check()
    for n in (2**k for k in range(25)):  # exact powers, where the float logarithm may round up
        assert int(tn.next_power_of_two(tf.constant(n))) == n
