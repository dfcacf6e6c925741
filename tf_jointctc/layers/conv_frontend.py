"""A small 2-D convolutional front end before the BLSTMs (not in the paper).

Hori, Watanabe, Zhang and Chan (Interspeech 2017, "Advances in joint CTC-attention based end-to-end speech
recognition with a deep CNN encoder and RNN-LM") put VGG convolutions under the BLSTM encoder of this model
(ESPnet's `vggblstmp`) and gained on WSJ and CHiME-4. This is a CPU-sized version of that idea: two 3 x 3
convolutions over (time, mel bin) with ReLU, each halving the mel axis and keeping the frame rate, so that the
encoder's frame stacking and BLSTMs then read local spectro-temporal patterns instead of raw log-mels.

The feature groups of `features.FeatureExtractor` (static, delta and delta-delta log-mels, `bins` each) are the
input channels, as ESPnet's VGG front end reads them. Along time the convolutions pad one frame on each side
("same" at stride 1), and every layer's output is zeroed past each utterance's length, so a frame's output never
depends on how much padding follows the utterance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

KERNEL = (3, 3)  # (frames, mel bins)


@keras.saving.register_keras_serializable(package="tf_jointctc")
class ConvFrontEnd(keras.layers.Layer):
    """Two Conv2D(channels, 3 x 3, strides (1, 2), "same") + ReLU layers over [time, mel bin, feature group].

    call(x [B, T, G * bins] float32, lengths [B] int32) -> [B, T, ceil(ceil(bins / 2) / 2) * channels] float32,
    frames at or past `lengths` exactly zero (lengths are unchanged: the frame rate is kept). With the demo's
    120 features (G = 3 groups of 40 mel bins) and 32 channels: [B, T, 320].
    """

    def __init__(self, channels: int = 32, bins: int = 40, num_layers: int = 2, **kwargs: Any):
        super().__init__(**kwargs)
        if int(channels) < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if int(bins) < 1 or int(num_layers) < 1:
            raise ValueError(f"bins and num_layers must be >= 1, got {bins} and {num_layers}")
        self.channels, self.bins, self.num_layers = int(channels), int(bins), int(num_layers)
        self.supports_masking = True  # a caller's Keras mask is superseded by `lengths`; outputs carry none
        self.convolutions = [
            keras.layers.Conv2D(self.channels, KERNEL, strides=(1, 2), padding="same", activation="relu",
                                name=f"conv_{i}")
            for i in range(self.num_layers)
        ]

    def output_bins(self) -> int:
        """Mel-axis positions after the convolutions: `bins` halved (rounding up) `num_layers` times."""
        bins = self.bins
        for _ in range(self.num_layers):
            bins = (bins + 1) // 2
        return bins

    def output_dim(self) -> int:
        """Features per output frame: `output_bins() * channels`."""
        return self.output_bins() * self.channels

    def groups(self, dim: int) -> int:
        """Input channels for `dim` features per frame; refuses a `dim` that is not whole groups of `bins`."""
        if dim % self.bins:
            raise ValueError(f"the convolutional front end needs features in groups of {self.bins} mel bins, "
                             f"got {dim}")
        return dim // self.bins

    def build(self, x_shape: Sequence[int | None], lengths_shape: Sequence[int | None] | None = None) -> None:
        channels = self.groups(int(x_shape[-1]))
        for conv in self.convolutions:
            if not conv.built:
                conv.build((None, None, self.bins, channels))
            channels = self.channels
        self.built = True

    def call(self, x: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        x = tf.convert_to_tensor(x)
        groups = self.groups(int(x.shape[-1]))
        batch, steps = tf.shape(x)[0], tf.shape(x)[1]
        mask = tf.sequence_mask(lengths, steps, dtype=x.dtype)[:, :, tf.newaxis, tf.newaxis]
        # [B, T, G * bins] -> [B, T, G, bins] -> [B, T, bins, G]: mel bins along the image's width, groups as channels.
        h = tf.transpose(tf.reshape(x, tf.stack([batch, steps, groups, self.bins])), [0, 1, 3, 2])
        h = h * mask
        for conv in self.convolutions:
            h = conv(h) * mask  # zero past the length before the next layer's window reads it
        out = tf.reshape(h, tf.stack([batch, steps, self.output_dim()]))
        out.set_shape([x.shape[0], None, self.output_dim()])  # a static batch stays static (TFLite's LSTMs)
        return out

    def compute_mask(self, x: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, x_shape: Sequence[int | None], lengths_shape: Sequence[int | None]) -> tuple:
        return (x_shape[0], x_shape[1], self.output_dim())

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(channels=self.channels, bins=self.bins, num_layers=self.num_layers)
        return config
