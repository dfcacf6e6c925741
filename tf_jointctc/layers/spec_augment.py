"""SpecAugment's frequency and time masks (Park et al., Interspeech 2019; no time warping), training only.

Not in the paper. The masks are drawn from a stateless generator seeded by the caller (the model passes the
update's number), so a resumed run draws the same masks as an uninterrupted one, and they depend on each
utterance's valid length only, never on its padding.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tf_jointctc.layers.feature_augmentation import FeatureAugmentation


def _draw(seed: tf.Tensor, shape: tf.Tensor, upper: tf.Tensor) -> tf.Tensor:
    """Integers uniform in [0, upper] (inclusive; `upper` broadcasts against `shape`) -> int32 of `shape`."""
    uniform = tf.random.stateless_uniform(shape, seed=seed)
    upper = tf.cast(upper, tf.float32)
    return tf.cast(tf.minimum(tf.floor(uniform * (upper + 1.0)), upper), tf.int32)


def _bands(positions: tf.Tensor, start: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """positions [N]; start, width [B, M] -> [B, N] bool, True where a position lies in any of the M bands
    [start, start + width)."""
    positions = positions[tf.newaxis, tf.newaxis, :]
    inside = (positions >= start[..., tf.newaxis]) & (positions < (start + width)[..., tf.newaxis])
    return tf.reduce_any(inside, axis=1)


# The mask settings: `model.spec_augment`'s config keys, SpecAugment's keyword arguments and attributes.
MASK_SETTINGS = ("freq_masks", "freq_width", "time_masks", "time_width", "max_time_fraction")


@keras.saving.register_keras_serializable(package="tf_jointctc")
class SpecAugment(FeatureAugmentation):
    """Masks bands of mel bins and spans of frames with zeros (the mean, after CMVN).

    call(features [B, T, D], lengths [B], seed [2] int32) -> [B, T, D]:
    - `freq_masks` bands per utterance, each of width uniform in [0, freq_width] mel bins and uniformly placed
      among the `bins` mel bins; a band masks the same bins in each of the D / bins feature groups (static,
      delta and delta-delta log-mels);
    - `time_masks` spans per utterance, each of width uniform in [0, min(time_width, max_time_fraction *
      length)] frames and uniformly placed inside the utterance's `length` valid frames.
    With no masks it returns the features unchanged.
    """

    def __init__(self, freq_masks: int = 0, freq_width: int = 8, time_masks: int = 0, time_width: int = 20,
                 max_time_fraction: float = 0.2, bins: int = 40, **kwargs: Any):
        super().__init__(**kwargs)
        if min(freq_masks, freq_width, time_masks, time_width) < 0:
            raise ValueError("SpecAugment mask counts and widths must be >= 0")
        if not 0.0 <= max_time_fraction <= 1.0:
            raise ValueError(f"max_time_fraction must be in [0, 1], got {max_time_fraction}")
        if bins < 1 or (freq_masks and freq_width > bins):
            raise ValueError(f"freq_width {freq_width} must be at most bins {bins} (>= 1)")
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.time_masks, self.time_width = int(time_masks), int(time_width)
        self.max_time_fraction = float(max_time_fraction)
        self.bins = int(bins)

    @property
    def enabled(self) -> bool:
        return (self.freq_masks > 0 and self.freq_width > 0) or (self.time_masks > 0 and self.time_width > 0)

    def call(self, features: tf.Tensor, lengths: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        features = tf.convert_to_tensor(features, tf.float32)
        if not self.enabled:
            return features
        batch, frames, dim = tf.shape(features)[0], tf.shape(features)[1], tf.shape(features)[2]
        lengths = tf.cast(lengths, tf.int32)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
        masked = tf.zeros(tf.shape(features)[:2], tf.bool)[..., tf.newaxis]  # [B, T, 1]
        if self.freq_masks:
            shape = tf.stack([batch, self.freq_masks])
            width = _draw(seeds[0], shape, self.freq_width)
            start = _draw(seeds[1], shape, self.bins - width)
            bins = _bands(tf.range(dim) % self.bins, start, width)  # [B, D]
            masked = masked | bins[:, tf.newaxis, :]
        if self.time_masks:
            shape = tf.stack([batch, self.time_masks])
            limit = tf.minimum(self.time_width, tf.cast(self.max_time_fraction * tf.cast(lengths, tf.float32),
                                                         tf.int32))  # [B]
            width = _draw(seeds[2], shape, limit[:, tf.newaxis])
            start = _draw(seeds[3], shape, tf.maximum(lengths[:, tf.newaxis] - width, 0))
            spans = _bands(tf.range(frames), start, width)  # [B, T]
            masked = masked | spans[:, :, tf.newaxis]
        return tf.where(masked, tf.zeros_like(features), features)

    def mask_settings(self) -> dict[str, Any]:
        """The mask counts and widths (`MASK_SETTINGS`): `model.spec_augment`'s keys and this layer's keyword
        arguments."""
        return {name: getattr(self, name) for name in MASK_SETTINGS}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(self.mask_settings(), bins=self.bins)
        return config
