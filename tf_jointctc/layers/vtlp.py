"""Vocal tract length perturbation (VTLP; Jaitly & Hinton, ICML 2013 WDLASL), training only, on log-mel features.

Not in the paper. VTLP warps each utterance's frequency axis by a factor `alpha` drawn uniformly from a range
(Jaitly & Hinton: 0.9-1.1), which moves the formants as a shorter or longer vocal tract would, with tempo and
duration unchanged (speed perturbation, `data.speed_perturbation`, changes all three). The warp is piecewise
linear in Hz and keeps the band:

    f -> alpha f                                  for f <= f_hi min(alpha, 1) / alpha,
    then the straight line through (Nyquist, Nyquist),

with the boundary `f_hi` = 4,800 Hz.

Here it acts on the model's input features (before CMVN), not on the spectrum: the warped value of mel channel m
is the utterance's features linearly interpolated along the mel axis at the channel position whose centre
frequency is `warp^-1(centre_m)`. That interpolation is linear along the mel axis and the deltas are linear along
time, so one `[M, M]` matrix per utterance warps the static, delta and delta-delta groups alike and gives exactly
the deltas of the warped static features. It approximates warping the filterbank (the filters keep their widths)
at the cost of one small matmul per utterance.

With `probability` < 1 each utterance is warped only with that chance (the others keep alpha = 1), so part of
every batch trains on the voices as they are. The factors come from a stateless generator seeded by the caller
(the model passes the update's number), so a resumed run draws the same ones; zero (padded) frames stay zero, so
padding never changes a valid frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_jointctc.features import LOWER_HZ, NUM_MEL_BINS, SAMPLE_RATE, UPPER_HZ, mel_band_edges
from tf_jointctc.layers.feature_augmentation import FeatureAugmentation

# Jaitly & Hinton's boundary: frequencies up to about this scale by alpha, the rest maps onto Nyquist.
BOUNDARY_HZ = 4800.0
# Folded into the caller's seed, so that the factors do not repeat SpecAugment's draws from the same seed.
SEED_SALT = 7
# Folded into the factors' seed for the draw of which utterances are warped (`probability` < 1).
CHOICE_SALT = 1
# Warp factors outside this range are refused (a formant moved by more than half is not a voice any more).
FACTOR_LIMITS = (0.5, 2.0)


def source_hz(centre_hz: tf.Tensor, alpha: tf.Tensor, boundary_hz: float = BOUNDARY_HZ,
              nyquist_hz: float = SAMPLE_RATE / 2) -> tf.Tensor:
    """The inverse VTLP warp: the frequency that `alpha`'s warp sends to `centre_hz`.

    centre_hz [M] float32, alpha [B] float32 -> [B, M] float32 (the module docstring's piecewise-linear map,
    inverted: `f / alpha` below the warped boundary `f_hi min(alpha, 1)`, the line to Nyquist above it).
    """
    alpha = tf.cast(alpha, tf.float32)[:, tf.newaxis]  # [B, 1]
    centre_hz = tf.cast(centre_hz, tf.float32)[tf.newaxis, :]  # [1, M]
    boundary_out = boundary_hz * tf.minimum(alpha, 1.0)  # where the warp puts the boundary
    boundary_in = boundary_out / alpha  # the boundary itself
    above = nyquist_hz - (nyquist_hz - centre_hz) * (nyquist_hz - boundary_in) / (nyquist_hz - boundary_out)
    return tf.where(centre_hz <= boundary_out, centre_hz / alpha, above)


def warp_matrices(alpha: tf.Tensor, bins: int = NUM_MEL_BINS, lower_hz: float = LOWER_HZ,
                  upper_hz: float = UPPER_HZ, boundary_hz: float = BOUNDARY_HZ,
                  sample_rate: int = SAMPLE_RATE) -> tf.Tensor:
    """Per utterance, the linear map from a frame's mel channels to its warped ones (`bins` >= 2).

    alpha [B] float32 -> [B, M_in, M_out] float32: column m of utterance b interpolates linearly between the two
    channels around position `p = (mel(warp^-1(centre_m)) - edge_0) / step - 1`, clipped to [0, M - 1] (the
    band's edge channels repeat beyond it). Each column sums to 1; alpha = 1 gives the identity up to rounding.
    """
    edges = mel_band_edges(bins, lower_hz, upper_hz)
    step = float(edges[1] - edges[0])
    centre_hz = (700.0 * np.expm1(edges[1:-1] / 1127.0)).astype(np.float32)  # [M]
    source = source_hz(tf.constant(centre_hz), alpha, boundary_hz, sample_rate / 2)  # [B, M]
    position = (1127.0 * tf.math.log1p(source / 700.0) - float(edges[0])) / step - 1.0
    position = tf.clip_by_value(position, 0.0, float(bins - 1))
    below = tf.minimum(tf.floor(position), float(bins - 2))
    fraction = position - below  # in [0, 1]
    below = tf.cast(below, tf.int32)
    matrices = (tf.one_hot(below, bins) * (1.0 - fraction)[..., tf.newaxis]
                + tf.one_hot(below + 1, bins) * fraction[..., tf.newaxis])  # [B, M_out, M_in]
    return tf.transpose(matrices, [0, 2, 1])


def checked_warp_range(warp_range: Sequence[float]) -> tuple[float, float]:
    """`model.vtlp_warp` as (low, high); (1.0, 1.0) is off.

    Raises:
      ValueError: not two factors, low > high, or a factor outside `FACTOR_LIMITS`.
    """
    values = tuple(float(v) for v in warp_range)
    if len(values) != 2 or values[0] > values[1]:
        raise ValueError(f"vtlp_warp must be (low, high) with low <= high, got {tuple(warp_range)}")
    if not FACTOR_LIMITS[0] <= values[0] <= values[1] <= FACTOR_LIMITS[1]:
        raise ValueError(f"vtlp_warp factors must lie in {list(FACTOR_LIMITS)}, got {values}")
    return values  # type: ignore[return-value]


@keras.saving.register_keras_serializable(package="tf_jointctc")
class VocalTractLengthPerturbation(FeatureAugmentation):
    """Warps each utterance's mel axis by its own factor uniform in `warp_range` (the module docstring), every
    utterance with `probability` 1, otherwise each with that chance.

    call(features [B, T, D], seed [2] int) -> [B, T, D], D a multiple of `bins` (groups of mel channels: static,
    delta, delta-delta), every group warped by the utterance's matrix. With the range (1, 1) it returns the
    features unchanged.
    """

    def __init__(self, warp_range: Sequence[float] = (1.0, 1.0), boundary_hz: float = BOUNDARY_HZ,
                 bins: int = NUM_MEL_BINS, probability: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.warp_range = checked_warp_range(warp_range)
        if not 0.0 < float(probability) <= 1.0:
            raise ValueError(f"vtlp_probability must lie in (0, 1], got {probability}")
        self.probability = float(probability)
        if not 0.0 < float(boundary_hz) < SAMPLE_RATE / 2:
            raise ValueError(f"boundary_hz must lie inside (0, {SAMPLE_RATE / 2}), got {boundary_hz}")
        self.boundary_hz = float(boundary_hz)
        self.bins = int(bins)
        if self.enabled and self.bins < 2:
            raise ValueError(f"VTLP needs bins >= 2, got {bins}")

    @property
    def enabled(self) -> bool:
        return self.warp_range != (1.0, 1.0)

    def factors(self, batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """[B] float32 warp factors uniform in `warp_range`, drawn from `seed` ([2] int) folded with
        `SEED_SALT`; with `probability` < 1 each is 1.0 unless a second draw (that seed folded with
        `CHOICE_SALT`) falls below the probability."""
        seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), SEED_SALT)
        low, high = self.warp_range
        shape = tf.reshape(batch, [1])
        factors = low + (high - low) * tf.random.stateless_uniform(shape, seed=seed)
        if self.probability == 1.0:
            return factors
        choice_seed = tf.random.experimental.stateless_fold_in(seed, CHOICE_SALT)
        warped = tf.random.stateless_uniform(shape, seed=choice_seed) < self.probability
        return tf.where(warped, factors, tf.ones_like(factors))

    def call(self, features: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        features = tf.convert_to_tensor(features, tf.float32)
        if not self.enabled:
            return features
        shape = tf.shape(features)
        groups = tf.reshape(features, tf.stack([shape[0], shape[1], -1, self.bins]))  # [B, T, G, M]
        matrices = warp_matrices(self.factors(shape[0], seed), self.bins, boundary_hz=self.boundary_hz)
        warped = tf.einsum("btgm,bmn->btgn", groups, matrices)
        return tf.reshape(warped, shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(warp_range=list(self.warp_range), boundary_hz=self.boundary_hz, bins=self.bins,
                      probability=self.probability)
        return config
