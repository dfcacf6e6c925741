"""Reverberation, noise and mixing at a given signal-to-noise ratio (all numpy, float32 or float64 in)."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f**exponent
LOWEST_SHAPED_HZ = 20.0  # coloured noise is not boosted below this frequency (no DC drift)
PEAK = 0.95  # `limit_peak`'s default: no clipping in 16-bit files


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


def synthetic_rir(rng: np.random.Generator, rt60: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic room impulse response: a unit direct path, then exponentially decaying Gaussian noise.

    The tail decays by 60 dB in `rt60` seconds, starts after a 1-5 ms gap and has a direct-to-reverberant
    energy ratio drawn between 0 and 8 dB.
    """
    length = max(int(rt60 * rate), 2)
    t = np.arange(length) / rate
    tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB at rt60
    gap = int(rng.uniform(0.001, 0.005) * rate)
    tail[: gap + 1] = 0.0
    drr_db = rng.uniform(0.0, 8.0)
    tail *= np.sqrt(1.0 / (np.sum(tail**2) * 10 ** (drr_db / 10)))
    tail[0] = 1.0
    return tail


def reverberate(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolves with `rir` (FFT), keeps the input's length and rescales to the input's RMS."""
    n = len(audio)
    if n == 0:
        return audio.copy()
    size = 1 << int(np.ceil(np.log2(n + len(rir) - 1)))
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(rir, size), size)[:n]
    wet_power = power(wet)
    if wet_power > 0:
        wet *= np.sqrt(power(audio) / wet_power)
    return wet.astype(audio.dtype, copy=False)


def coloured_noise(rng: np.random.Generator, n: int, colour: str, rate: int = SAMPLE_RATE) -> np.ndarray:
    """White noise filtered (in the frequency domain) to a 1/f**k power spectrum, unit power."""
    exponent = NOISE_COLOURS[colour]
    white = rng.standard_normal(n)
    if exponent:
        spectrum = np.fft.rfft(white)
        freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / rate), LOWEST_SHAPED_HZ)
        white = np.fft.irfft(spectrum / freqs ** (exponent / 2), n)
    return white / np.sqrt(max(power(white), 1e-20))


def fit_length(noise: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
    """Noise of exactly `n` samples: `noise` read circularly from `offset`."""
    if noise.size == 0:
        raise ValueError("empty noise")
    index = (offset + np.arange(n)) % len(noise)
    return noise[index]


def scale_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`noise` (cut or tiled to the speech's length) scaled so that speech power / noise power = `snr_db`."""
    noise = fit_length(noise, len(speech))
    noise_power = power(noise)
    if noise_power == 0:
        return noise
    gain = np.sqrt(power(speech) / (noise_power * 10 ** (snr_db / 10)))
    return noise * gain


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise scaled to `snr_db` (SNR over the whole utterance). Not peak-normalized: see `limit_peak`."""
    return (speech + scale_noise(speech, noise, snr_db)).astype(speech.dtype, copy=False)


def limit_peak(audio: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """Scales the whole signal down (never up) so its peak is at most `peak`: no clipping in 16-bit files."""
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio * (peak / top) if top > peak else audio


def babble(rng: np.random.Generator, bank: list[np.ndarray], n: int, talkers: int) -> np.ndarray:
    """Sum of `talkers` distinct utterances from `bank`, each at unit power from a random offset."""
    chosen = rng.choice(len(bank), size=min(talkers, len(bank)), replace=False)
    total = np.zeros(n, dtype=np.float64)
    for i in chosen:
        voice = bank[int(i)]
        part = fit_length(voice, n, int(rng.integers(len(voice))))
        total += part / np.sqrt(max(power(part), 1e-20))
    return total
