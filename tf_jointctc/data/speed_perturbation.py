"""Speed perturbation of training waveforms, drawn anew in every pass (not in the paper), in TensorFlow.

Speed perturbation (Ko et al., Interspeech 2015; Kaldi's and ESPnet's `speed_perturb` 0.9 / 1.0 / 1.1) plays an
utterance `factor` times as fast: y(t) = x(factor * t). Duration, pitch and formants all scale, so one voice
sounds like a shorter or longer vocal tract speaking faster or slower. Here the factor is drawn from `factors` for
every utterance in every pass from stateless random ops seeded by `[pass seed, position in the pass]` (the seed of
`data.train_noise`, folded with 1), so a training stream is the same whenever it is built and a resumed run
continues it exactly.

Resampling is band-limited: the zero-padded waveform's spectrum is cut (faster: the content pushed above 8 kHz
is dropped, as a low-pass filter would) or zero-extended (slower), then transformed back at the new length. A
factor is used as the nearest ratio with a denominator of at most 100 (0.9 = 9 / 10 exactly).

An utterance keeps its speed (factor 1) when the drawn factor would leave its encoder fewer frames than CTC
needs for its labels: a perturbation never makes a usable utterance unusable, and never drops one.
"""

from __future__ import annotations

import fractions
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tf_jointctc import features
from tf_jointctc.data.train_noise import next_power_of_two

# The seed of `data.train_noise` for the same utterance and pass is folded with this to seed the speed draw.
SEED_SALT = 1
# Zeros appended before the transform (0.1 s at 16 kHz).
PAD_SAMPLES = 1600


def checked_factors(factors: Sequence[float]) -> tuple[float, ...]:
    """`data.speed_perturbation` as a tuple; each factor must lie in [0.5, 2]. `(1.0,)` (or `()`) is off.

    Raises:
      ValueError: a factor outside [0.5, 2].
    """
    values = tuple(float(f) for f in factors)
    bad = [f for f in values if not 0.5 <= f <= 2.0]
    if bad:
        raise ValueError(f"data.speed_perturbation factors must lie in [0.5, 2], got {list(values)}")
    return values


def is_enabled(factors: Sequence[float]) -> bool:
    """True when some factor differs from 1."""
    return any(float(f) != 1.0 for f in factors)


def as_ratio(factor: float) -> tuple[int, int]:
    """`factor` as numerator / denominator with a denominator of at most 100 (0.9 -> (9, 10), 1.1 -> (11, 10)):
    the resampler's transform lengths are then multiples of both and a power of two."""
    ratio = fractions.Fraction(float(factor)).limit_denominator(100)
    return ratio.numerator, ratio.denominator


def perturbed_length(num_samples: tf.Tensor, numerator: tf.Tensor, denominator: tf.Tensor) -> tf.Tensor:
    """Samples of an utterance of `num_samples` played numerator / denominator times as fast:
    round(num_samples * denominator / numerator), int32."""
    return tf.cast(tf.round(tf.cast(num_samples, tf.float32) * tf.cast(denominator, tf.float32)
                            / tf.cast(numerator, tf.float32)), tf.int32)


def resample(waveform: tf.Tensor, numerator: tf.Tensor | int, denominator: tf.Tensor | int) -> tf.Tensor:
    """`waveform` float32 [S] played numerator / denominator times as fast (`as_ratio`): float32
    [round(S * denominator / numerator)], band-limited.

    The waveform is zero-padded by at least `PAD_SAMPLES` (so the transform's circular wrap falls in silence) to
    numerator * 2**k samples; its spectrum, truncated or zero-extended to denominator * 2**k samples and scaled to
    keep the amplitude, is transformed back. Both lengths factor into small primes, which keeps the transforms
    fast (an arbitrary length costs up to 2.5x as much).
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    numerator = tf.cast(numerator, tf.int32)
    denominator = tf.cast(denominator, tf.int32)
    num_samples = tf.shape(waveform)[0]
    power = next_power_of_two((num_samples + PAD_SAMPLES + numerator - 1) // numerator)
    padded, padded_out = numerator * power, denominator * power
    spectrum = tf.signal.rfft(tf.pad(waveform, [[0, padded - num_samples]]), fft_length=[padded])  # [P/2 + 1]
    bins_out = padded_out // 2 + 1
    kept = tf.minimum(tf.shape(spectrum)[0], bins_out)
    spectrum = tf.pad(spectrum[:kept], [[0, bins_out - kept]])
    scale = tf.cast(padded_out, tf.float32) / tf.cast(padded, tf.float32)
    out = tf.signal.irfft(spectrum * tf.cast(scale, tf.complex64), fft_length=[padded_out])
    return out[: perturbed_length(num_samples, numerator, denominator)]


def ctc_min_frames(labels: tf.Tensor) -> tf.Tensor:
    """Fewest encoder frames a CTC alignment of `labels` int32 [U] needs (one per label plus a blank between
    repeats; `text.ctc_min_frames` in TensorFlow): int32 []."""
    repeats = tf.reduce_sum(tf.cast(tf.equal(labels[1:], labels[:-1]), tf.int32))
    return tf.size(labels) + repeats


def speed_perturbed_utterance(example: dict[str, tf.Tensor], seed: tf.Tensor, factors: Sequence[float],
                              subsampling: int, pass_index: Any = 0) -> dict[str, tf.Tensor]:
    """`example` (a parsed record: `waveform` float32 [S], `num_samples` int32 [], `labels` int32 [U], ...) played
    at a speed drawn uniformly from `factors`, with `waveform` and `num_samples` replaced; factor 1 (unchanged) when
    the drawn one would leave fewer than `ctc_min_frames(labels)` encoder frames (`subsampling` feature frames
    each). `seed`: int [2], one per utterance and pass; `pass_index` is not used (every pass draws from the same
    factors: the pipeline's augmentations all take it)."""
    del pass_index
    factors = checked_factors(factors)
    if not is_enabled(factors):
        return example
    draw_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), SEED_SALT)
    index = tf.random.stateless_uniform([], seed=draw_seed, maxval=len(factors), dtype=tf.int32)
    numerator, denominator = tf.unstack(tf.gather(tf.constant([as_ratio(f) for f in factors], tf.int32), index))
    num_samples = tf.shape(example["waveform"])[0]
    new_length = perturbed_length(num_samples, numerator, denominator)
    frames = features.num_frames(new_length)
    encoder_frames = (frames + int(subsampling) - 1) // int(subsampling)
    usable = tf.logical_and(encoder_frames >= ctc_min_frames(example["labels"]), num_samples > 0)
    apply = tf.logical_and(usable, tf.not_equal(numerator, denominator))
    waveform = tf.cond(apply, lambda: resample(example["waveform"], numerator, denominator),
                       lambda: example["waveform"])
    return {**example, "waveform": waveform, "num_samples": tf.shape(waveform)[0]}
