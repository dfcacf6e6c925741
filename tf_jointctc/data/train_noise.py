"""Noise mixed into training waveforms anew in every pass (not in the paper), in TensorFlow.

A corpus built by `jointctc-synth` gives each noisy train utterance one noise for every pass; `TrainNoise`
draws whether an utterance gets noise, which kind, at what signal-to-noise ratio and the noise itself again each
time the utterance is read. The draws come from stateless random ops seeded by `[pass seed, position in the
pass]`, so a training stream is the same whenever it is built and a resumed run continues it exactly.

The kinds mirror the corpus builder's (`data/synth/augment.py`): coloured noise with a 1 / f**k power spectrum
(white k = 0, pink 1, brown 2; no boost below 20 Hz), and babble, the sum of 3-6 distinct utterances of a bank
drawn from the train split, each at unit power from a random circular offset. The noise is scaled to the drawn
SNR over the whole utterance (speech power / noise power) and the mixture scaled down, never up, to a peak of
0.95, as the corpus' noisy utterances are.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tf_jointctc.data.synth import augment
from tf_jointctc.data.synth.augment import LOWEST_SHAPED_HZ, PEAK, SAMPLE_RATE
from tf_jointctc.data.tfrecord import parse_example

# The corpus builder's noise (numpy, no TensorFlow): power spectrum ~ 1 / f**exponent per colour, flat below
# LOWEST_SHAPED_HZ; mixtures scaled down to PEAK.
NOISE_EXPONENTS = augment.NOISE_COLOURS
KINDS = ("babble", *NOISE_EXPONENTS)


@dataclasses.dataclass(frozen=True)
class TrainNoise:
    """What `noisy_utterance` draws (the config keys of `data.train_noise`, configs' docstrings).

    probability: chance that an utterance gets noise in a pass (0 = off); with `ramp_passes` > 0, the chance
      reached at pass `ramp_passes` and kept after it.
    initial_probability, ramp_passes: a curriculum over passes: pass p (0-based) uses `initial_probability` +
      (`probability` - `initial_probability`) x min(p / `ramp_passes`, 1). `ramp_passes` 0: `probability` in
      every pass.
    snr_db: the SNR is uniform in [low, high] dB.
    kinds: noise kinds, from `KINDS`; weights: their relative probabilities.
    babble_talkers: babble sums a uniform number of talkers in [low, high] (at most the bank's size).
    babble_bank: utterances of the train split that babble is made of (spread evenly over the split).
    """

    probability: float = 0.0
    snr_db: tuple[float, float] = (0.0, 20.0)
    kinds: tuple[str, ...] = KINDS
    weights: tuple[float, ...] = (0.4, 0.2, 0.2, 0.2)
    babble_talkers: tuple[int, int] = (3, 6)
    babble_bank: int = 40
    initial_probability: float = 0.0
    ramp_passes: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"data.train_noise.probability must be in [0, 1], got {self.probability}")
        if not 0.0 <= self.initial_probability <= 1.0:
            raise ValueError(f"data.train_noise.initial_probability must be in [0, 1], got {self.initial_probability}")
        if self.ramp_passes < 0 or self.ramp_passes != int(self.ramp_passes):
            raise ValueError(f"data.train_noise.ramp_passes must be an integer >= 0, got {self.ramp_passes}")
        if len(self.snr_db) != 2 or self.snr_db[0] > self.snr_db[1]:
            raise ValueError(f"data.train_noise.snr_db must be (low, high) with low <= high, got {self.snr_db}")
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown or not self.kinds:
            raise ValueError(f"data.train_noise.kinds must be a non-empty subset of {KINDS}, got {self.kinds}")
        if len(self.weights) != len(self.kinds) or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ValueError(f"data.train_noise.weights must be one non-negative weight per kind with a positive "
                             f"sum, got {self.weights} for {self.kinds}")
        low, high = self.babble_talkers
        if not 1 <= low <= high:
            raise ValueError(f"data.train_noise.babble_talkers must be (low, high) with 1 <= low <= high, "
                             f"got {self.babble_talkers}")
        if self.uses_babble and self.babble_bank < 1:
            raise ValueError(f"data.train_noise.babble_bank must be >= 1, got {self.babble_bank}")

    @property
    def enabled(self) -> bool:
        return self.probability > 0.0 or (self.ramp_passes > 0 and self.initial_probability > 0.0)

    def probability_in_pass(self, pass_index: Any) -> tf.Tensor:
        """The chance of noise in pass `pass_index` (0-based; an int or an int tensor []): float32 []."""
        if not self.ramp_passes:
            return tf.constant(self.probability, tf.float32)
        progress = tf.minimum(tf.cast(pass_index, tf.float32) / float(self.ramp_passes), 1.0)
        return self.initial_probability + (self.probability - self.initial_probability) * progress

    @property
    def uses_babble(self) -> bool:
        return any(kind == "babble" and weight > 0 for kind, weight in zip(self.kinds, self.weights))

    @classmethod
    def from_config(cls, config) -> TrainNoise:
        """From a `data.train_noise` ConfigDict (or a mapping); missing keys keep their defaults."""
        values = dict(config) if config is not None else {}
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"unknown data.train_noise keys {unknown}; known: {sorted(fields)}")
        return cls(**{k: tuple(v) if isinstance(v, list | tuple) else v for k, v in values.items()})


@dataclasses.dataclass(frozen=True)
class BabbleBank:
    """Babble sources: `waveforms` float32 [N, S] (zero past each length), `lengths` int32 [N] (all >= 1)."""

    waveforms: np.ndarray
    lengths: np.ndarray

    def __post_init__(self) -> None:
        if self.waveforms.ndim != 2 or len(self.lengths) != len(self.waveforms) or len(self.lengths) == 0:
            raise ValueError("a babble bank needs waveforms [N, S] and lengths [N] with N >= 1")
        if int(np.min(self.lengths)) < 1:
            raise ValueError("every babble source needs at least one sample")


def babble_bank(shards: Sequence[str | os.PathLike], num_utterances: int, size: int,
                max_seconds: float = 10.0) -> BabbleBank:
    """Every (num_utterances // size)-th utterance of the shards read one after the other (each shard holds every
    part of the split: `write_shards` deals utterances round robin), at most `size` of them, each cut to its first
    `max_seconds`."""
    stride = max(1, int(num_utterances) // max(1, int(size)))
    max_samples = int(max_seconds * SAMPLE_RATE)
    records = tf.data.TFRecordDataset([os.fspath(path) for path in shards])
    chosen = records.enumerate().filter(lambda i, _: i % stride == 0).take(int(size))  # parse only the chosen
    chosen = chosen.map(lambda i, record: (i, parse_example(record)))
    sources = [example["waveform"].numpy()[: min(int(example["num_samples"]), max_samples)]
               for _, example in chosen]
    sources = [s for s in sources if s.size]
    if not sources:
        raise ValueError("no non-empty train utterances for the babble bank")
    lengths = np.array([len(s) for s in sources], np.int32)
    waveforms = np.zeros([len(sources), int(lengths.max())], np.float32)
    for row, source in enumerate(sources):
        waveforms[row, : len(source)] = source
    return BabbleBank(waveforms, lengths)


def coloured_noise(seed: tf.Tensor, num_samples: tf.Tensor, exponent: float) -> tf.Tensor:
    """Gaussian noise with a 1 / f**exponent power spectrum (flat below 20 Hz), unit power: float32
    [num_samples]. `seed`: int [2] for the stateless draw. Shaped noise is made at the next power of two of
    `num_samples` and cut (an arbitrary transform length costs up to 2.5x as much)."""
    if not exponent:
        return _unit_power(tf.random.stateless_normal([num_samples], seed=seed, dtype=tf.float32))
    length = next_power_of_two(num_samples)
    noise = tf.random.stateless_normal([length], seed=seed, dtype=tf.float32)
    bins = tf.range(length // 2 + 1, dtype=tf.float32)
    freqs = tf.maximum(bins * (SAMPLE_RATE / tf.cast(length, tf.float32)), LOWEST_SHAPED_HZ)
    spectrum = tf.signal.rfft(noise, fft_length=[length])
    noise = tf.signal.irfft(spectrum / tf.cast(freqs ** (exponent / 2.0), tf.complex64), fft_length=[length])
    return _unit_power(noise[:num_samples])


def babble(seed: tf.Tensor, bank: BabbleBank, num_samples: tf.Tensor, talkers: tf.Tensor) -> tf.Tensor:
    """The sum of `talkers` distinct bank utterances (at most the bank's size), each read circularly from a random
    offset and scaled to unit power: float32 [num_samples]."""
    shuffle_seed, offset_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    count = tf.minimum(talkers, len(bank.lengths))
    chosen = tf.random.experimental.stateless_shuffle(tf.range(len(bank.lengths)), seed=shuffle_seed)[:count]
    lengths = tf.gather(tf.constant(bank.lengths), chosen)  # [talkers]
    offsets = tf.cast(tf.random.stateless_uniform([count], seed=offset_seed) * tf.cast(lengths, tf.float32), tf.int32)
    positions = tf.math.floormod(offsets[:, None] + tf.range(num_samples)[None, :], lengths[:, None])
    parts = tf.gather(tf.gather(tf.constant(bank.waveforms), chosen), positions, batch_dims=1)  # [talkers, S]
    power = tf.reduce_mean(tf.square(parts), axis=1, keepdims=True)
    return tf.reduce_sum(parts / tf.sqrt(tf.maximum(power, 1e-20)), axis=0)


def mix_at_snr(speech: tf.Tensor, noise: tf.Tensor, snr_db: tf.Tensor) -> tf.Tensor:
    """speech + noise scaled so that power(speech) / power(noise) is `snr_db`, then scaled down (never up) to a
    peak of 0.95. speech, noise float32 [S]; a silent noise adds nothing."""
    speech_power = tf.reduce_mean(tf.square(speech))
    noise_power = tf.reduce_mean(tf.square(noise))
    gain = tf.math.divide_no_nan(tf.sqrt(speech_power), tf.sqrt(noise_power * 10.0 ** (snr_db / 10.0)))
    mixed = speech + gain * noise
    peak = tf.reduce_max(tf.abs(mixed))
    return mixed * tf.minimum(1.0, tf.math.divide_no_nan(PEAK, peak))


def noisy_utterance(example: dict[str, tf.Tensor], seed: tf.Tensor, settings: TrainNoise,
                    bank: BabbleBank | None = None, pass_index: Any = 0) -> dict[str, tf.Tensor]:
    """`example` (a parsed record: `waveform` float32 [S], ...) with noise mixed into its waveform with
    probability `settings.probability_in_pass(pass_index)`; otherwise unchanged. `seed`: int [2], one per
    utterance and pass; `pass_index`: int [], the pass (0-based).

    Raises:
      ValueError: babble can be drawn (a positive probability and weight) and no bank is given.
    """
    if settings.enabled and settings.uses_babble and bank is None:
        raise ValueError("data.train_noise draws babble but no babble bank was given")
    apply_seed, kind_seed, snr_seed, noise_seed, talker_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5))
    speech = example["waveform"]
    num_samples = tf.shape(speech)[0]
    weights = np.asarray(settings.weights, np.float64)
    kind = tf.random.stateless_categorical(
        tf.constant(np.log(np.maximum(weights, 1e-30))[None], tf.float32), 1, seed=kind_seed)[0, 0]
    snr_db = tf.random.stateless_uniform([], seed=snr_seed, minval=settings.snr_db[0], maxval=settings.snr_db[1])

    def branch(name: str):
        if name == "babble":
            low, high = settings.babble_talkers
            return lambda: babble(noise_seed, bank, num_samples, tf.random.stateless_uniform(
                [], seed=talker_seed, minval=low, maxval=high + 1, dtype=tf.int32))
        return lambda: coloured_noise(noise_seed, num_samples, NOISE_EXPONENTS[name])

    def with_noise() -> tf.Tensor:
        noise = tf.switch_case(tf.cast(kind, tf.int32), [branch(name) for name in settings.kinds])
        return mix_at_snr(speech, tf.ensure_shape(noise, [None]), snr_db)

    chance = settings.probability_in_pass(pass_index)
    apply = tf.logical_and(tf.random.stateless_uniform([], seed=apply_seed) < chance, num_samples > 0)
    return {**example, "waveform": tf.cond(apply, with_noise, lambda: speech)}


def next_power_of_two(n: tf.Tensor) -> tf.Tensor:
    """The smallest power of two >= n (>= 1), int32 []: a fast transform length for `tf.signal.rfft`."""
    n = tf.maximum(tf.cast(n, tf.int32), 1)
    power = tf.bitwise.left_shift(1, tf.cast(tf.math.ceil(tf.math.log(tf.cast(n, tf.float32)) / np.log(2.0)),
                                             tf.int32))
    power = tf.where(power // 2 >= n, power // 2, power)  # the float logarithm may round either way
    return tf.where(power < n, power * 2, power)


def _unit_power(x: tf.Tensor) -> tf.Tensor:
    return x / tf.sqrt(tf.maximum(tf.reduce_mean(tf.square(x)), 1e-20))
