"""Random spectral tilt (a per-utterance equalizer slope), training only, on log-mel features.

Not in the paper. Every utterance's static log-mels get a straight line across the mel axis added,

    log_mel[t, m] += slope * (m / (M - 1) - 1/2),    slope uniform in [-max_slope, max_slope] (nats),

as a microphone, a room or a synthesizer whose spectrum is brighter or darker would give (an extra `slope` nats
of energy at the top bin against the bottom one: 2.0 nats is 8.7 dB). The offset is constant in time, so the
deltas and delta-deltas of the tilted features are the untilted ones: only the static group (the first `bins`
channels of each frame) changes. Why (docs/accuracy.md, row tilt): the voice of test_unseen_voice that the
recognizers miss most, flite rms, carries ~3x the share of energy above 6 kHz of any train voice.

The slopes come from a stateless generator seeded by the caller (the model passes the update's number), so a
resumed run draws the same ones; padded frames stay zero, so padding never changes a valid frame.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tf_jointctc.layers.feature_augmentation import FeatureAugmentation

# Folded into the caller's seed, so that the slopes do not repeat VTLP's or SpecAugment's draws from the same seed.
SEED_SALT = 11


@keras.saving.register_keras_serializable(package="tf_jointctc")
class SpectralTilt(FeatureAugmentation):
    """Adds each utterance's own straight line across the mel axis to its static log-mels (the module docstring).

    call(features [B, T, D], lengths [B], seed [2] int) -> [B, T, D], D >= `bins`: channels 0 .. bins - 1 of
    each valid frame get `slope_b * (m / (bins - 1) - 1/2)`; the other channels and padded frames are unchanged.
    With `max_slope` 0 it returns the features unchanged.
    """

    def __init__(self, max_slope: float = 0.0, bins: int = 40, **kwargs: Any):
        super().__init__(**kwargs)
        if not float(max_slope) >= 0.0:
            raise ValueError(f"max_slope must be >= 0 (nats), got {max_slope}")
        self.max_slope = float(max_slope)
        self.bins = int(bins)
        if self.enabled and self.bins < 2:
            raise ValueError(f"a spectral tilt needs bins >= 2, got {bins}")

    @property
    def enabled(self) -> bool:
        return self.max_slope > 0.0

    def slopes(self, batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """[B] float32 slopes uniform in [-max_slope, max_slope], drawn from `seed` ([2] int) folded with
        `SEED_SALT`."""
        seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), SEED_SALT)
        uniform = tf.random.stateless_uniform(tf.reshape(batch, [1]), seed=seed)
        return self.max_slope * (2.0 * uniform - 1.0)

    def call(self, features: tf.Tensor, lengths: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        features = tf.convert_to_tensor(features, tf.float32)
        if not self.enabled:
            return features
        shape = tf.shape(features)
        line = tf.linspace(-0.5, 0.5, self.bins)  # [M]: m / (M - 1) - 1/2
        static = self.slopes(shape[0], seed)[:, tf.newaxis] * line[tf.newaxis, :]  # [B, M]
        offset = tf.pad(static, tf.stack([[0, 0], [0, shape[2] - self.bins]]))  # [B, D]: deltas get 0
        valid = tf.sequence_mask(lengths, shape[1], dtype=tf.float32)  # [B, T]
        return features + valid[:, :, tf.newaxis] * offset[:, tf.newaxis, :]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(max_slope=self.max_slope, bins=self.bins)
        return config
