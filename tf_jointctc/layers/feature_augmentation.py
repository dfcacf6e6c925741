"""The base of the training-only feature augmentations (SpecAugment, VTLP, the spectral tilt): layers that change
the values of `[B, T, D]` features frame by frame, never which frames are valid or the shape."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


class FeatureAugmentation(keras.layers.Layer):
    """Keras plumbing shared by the augmentations: the `[B, T]` mask passes through and the shape stays."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, features: tf.Tensor, *_: Any, mask: tf.Tensor | None = None) -> tf.Tensor | None:
        """The `[B, T]` mask passes through: an augmentation changes values, never which frames are valid."""
        return mask

    def compute_output_shape(self, features_shape: tuple, *_: Any) -> tuple:
        return tuple(features_shape)
