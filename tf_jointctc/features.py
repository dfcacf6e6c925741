"""Log-mel filterbank features with deltas, global and per-utterance CMVN, as Keras 3 layers in plain TensorFlow ops.

The layers run inside the exported SavedModel and the TFLite model, so they use only ops that convert to TFLite
built-ins (gather, pad, RFFT2D, slices, sums, elementwise math), and no matmul: a dynamic-range int8 export
quantizes matmul weights, and its hybrid kernels also quantize their input to 8 bits, which wrecks a spectrum.

- framing is a `tf.gather` with a `[T, 400]` index matrix (25 ms window, 10 ms shift at 16 kHz, no edge
  padding: a frame is valid only if all its samples are real samples);
- per frame, in Kaldi's order: DC removal, pre-emphasis (0.97, `x[i] -= 0.97 x[i-1]`, `x[0] -= 0.97 x[0]`) and
  the analysis window ("povey" by default), then zero padding to 512 samples and `tf.signal.rfft`, whose
  squared magnitude is the power spectrum `[B*T, 257]`;
- 40 triangular HTK-mel filters (20-7600 Hz, Kaldi's construction, `mel_filterbank_matrix`), each applied as
  a weighted sum over its own non-zero bins (a slice and a `reduce_sum` per filter), then
  `max(log x, log 1e-10)` so that silence is finite (`log(1e-10) ~= -23.03`);
- regression deltas and delta-deltas (window 2) by gathering clamped frame indices per utterance, so padding
  never changes a valid frame.

Shapes: `B` batch, `S` samples, `T` frames, `D` feature dim.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

SAMPLE_RATE = 16000
FRAME_LENGTH = 400  # 25 ms at 16 kHz
FRAME_STEP = 160  # 10 ms at 16 kHz
FFT_LENGTH = 512
NUM_MEL_BINS = 40
LOWER_HZ = 20.0
UPPER_HZ = 7600.0
PREEMPHASIS = 0.97
LOG_FLOOR = 1e-10
DELTA_WINDOW = 2
FEATURE_DIM = 3 * NUM_MEL_BINS  # static + delta + delta-delta


def num_frames(num_samples: Any, frame_length: int = FRAME_LENGTH, frame_step: int = FRAME_STEP) -> Any:
    """Number of complete frames in `num_samples` samples: `0` if S < frame_length else `1 + (S - L) // step`.

    Works element-wise and keeps the kind of its input: a Python int gives an int, a numpy array (or numpy
    integer) gives a numpy array, a tensor gives an int32 tensor of the same shape.
    """
    if isinstance(num_samples, tf.Tensor | tf.Variable):
        s = tf.cast(num_samples, tf.int32)
        return tf.where(s < frame_length, tf.zeros_like(s), 1 + (s - frame_length) // frame_step)
    if isinstance(num_samples, np.ndarray | np.integer):
        s = np.asarray(num_samples).astype(np.int64)
        return np.where(s < frame_length, 0, 1 + (s - frame_length) // frame_step).astype(np.int32)
    s = int(num_samples)
    return 0 if s < frame_length else 1 + (s - frame_length) // frame_step


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: `1127 ln(1 + f / 700)`."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_band_edges(num_mel_bins: int = NUM_MEL_BINS, lower_hz: float = LOWER_HZ, upper_hz: float = UPPER_HZ
                   ) -> np.ndarray:
    """The `num_mel_bins + 2` filter edges equally spaced on the HTK mel scale, float64 mel; filter m rises from
    edge m, peaks at edge m + 1 (its centre) and falls to edge m + 2."""
    return np.linspace(hz_to_mel(lower_hz), hz_to_mel(upper_hz), num_mel_bins + 2)


def mel_filterbank_matrix(
    num_mel_bins: int = NUM_MEL_BINS,
    fft_length: int = FFT_LENGTH,
    sample_rate: int = SAMPLE_RATE,
    lower_hz: float = LOWER_HZ,
    upper_hz: float = UPPER_HZ,
) -> np.ndarray:
    """Triangular filters, equally spaced on the HTK mel scale (Kaldi's `MelBanks`), `[fft_length//2+1, M]`.

    Each triangle rises linearly in mel from its left edge to its center and falls to its right edge; the
    weight of FFT bin k is evaluated at the mel value of the bin's frequency `k * sample_rate / fft_length`.
    """
    if not 0.0 <= lower_hz < upper_hz <= sample_rate / 2:
        raise ValueError(f"need 0 <= lower_hz < upper_hz <= Nyquist, got {lower_hz}, {upper_hz}")
    num_bins = fft_length // 2 + 1
    bin_mel = hz_to_mel(np.arange(num_bins) * sample_rate / fft_length)[:, None]  # [K, 1]
    edges = mel_band_edges(num_mel_bins, lower_hz, upper_hz)
    left, center, right = edges[:-2][None, :], edges[1:-1][None, :], edges[2:][None, :]  # [1, M]
    rising = (bin_mel - left) / (center - left)
    falling = (right - bin_mel) / (right - center)
    return np.maximum(0.0, np.minimum(rising, falling))  # [K, M], zero outside (left, right)


def analysis_window(window_type: str, frame_length: int = FRAME_LENGTH) -> np.ndarray:
    """Kaldi's windows (`[frame_length]` float64): "povey" = hann^0.85, "hamming", "hann" (all symmetric)."""
    n = np.arange(frame_length, dtype=np.float64)
    a = 2.0 * math.pi / (frame_length - 1)
    if window_type == "hamming":
        return 0.54 - 0.46 * np.cos(a * n)
    if window_type == "hann":
        return 0.5 - 0.5 * np.cos(a * n)
    if window_type == "povey":
        return (0.5 - 0.5 * np.cos(a * n)) ** 0.85
    raise ValueError(f"unknown window_type {window_type!r} (expected 'povey', 'hamming' or 'hann')")


def _frame_mask(lengths: tf.Tensor, max_len: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """`[B, T, 1]` mask: 1 for t < lengths[b], else 0."""
    mask = tf.expand_dims(tf.range(max_len), 0) < tf.expand_dims(lengths, 1)
    return tf.expand_dims(tf.cast(mask, dtype), -1)


@keras.saving.register_keras_serializable(package="tf_jointctc")
class LogMelFilterbank(keras.layers.Layer):
    """Kaldi-style log-mel filterbank.

    call(waveform [B, S] float32 in [-1, 1], num_samples [B] int32)
      -> (fbank [B, T, num_mel_bins] float32, num_frames [B] int32)

    `T = num_frames(S)` of the padded width; frames at index >= num_frames[b] are zero. A valid frame only
    reads real samples, so an utterance's features do not depend on how much padding follows it.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        frame_length: int = FRAME_LENGTH,
        frame_step: int = FRAME_STEP,
        fft_length: int = FFT_LENGTH,
        num_mel_bins: int = NUM_MEL_BINS,
        lower_hz: float = LOWER_HZ,
        upper_hz: float = UPPER_HZ,
        window_type: str = "povey",
        preemphasis: float = PREEMPHASIS,
        remove_dc_offset: bool = True,
        log_floor: float = LOG_FLOOR,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)
        self.fft_length = int(fft_length)
        self.num_mel_bins = int(num_mel_bins)
        self.lower_hz = float(lower_hz)
        self.upper_hz = float(upper_hz)
        self.window_type = str(window_type)
        self.preemphasis = float(preemphasis)
        self.remove_dc_offset = bool(remove_dc_offset)
        self.log_floor = float(log_floor)
        # Constants (not weights): they are fully determined by the config.
        self._window = analysis_window(self.window_type, self.frame_length).astype(np.float32)
        # Each triangular filter as (first bin, its non-zero weights): see `call`.
        self._mel_filters = []
        for column in mel_filterbank_matrix(
            self.num_mel_bins, self.fft_length, self.sample_rate, self.lower_hz, self.upper_hz
        ).T.astype(np.float32):
            nonzero = np.flatnonzero(column)
            low, high = (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (0, 1)
            self._mel_filters.append((low, high, column[low:high]))

    def num_frames(self, num_samples: Any) -> Any:
        """`num_frames` with this layer's frame length and step."""
        return num_frames(num_samples, self.frame_length, self.frame_step)

    def call(self, waveform: tf.Tensor, num_samples: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        waveform = tf.convert_to_tensor(waveform, tf.float32)
        num_samples = tf.cast(num_samples, tf.int32)
        batch = tf.shape(waveform)[0]
        max_frames = self.num_frames(tf.shape(waveform)[1])
        lengths = tf.minimum(self.num_frames(num_samples), max_frames)

        # Framing by gather: index[t, i] = t * step + i.
        index = tf.expand_dims(tf.range(max_frames) * self.frame_step, 1) + tf.expand_dims(
            tf.range(self.frame_length), 0
        )
        frames = tf.gather(waveform, index, axis=1)  # [B, T, L]
        frames = tf.reshape(frames, [-1, self.frame_length])  # [B*T, L]
        # Kaldi's order: DC removal, pre-emphasis (x[i] -= c x[i-1], x[0] -= c x[0]), window. Then an FFT, not a
        # DFT matrix: quantized exports (float16, int8) quantize matmul weights, and a quantized DFT matrix
        # leaks enough energy across bins to wreck the log-mel features (int8: mean error ~4 nats).
        if self.remove_dc_offset:
            frames = frames - tf.reduce_mean(frames, axis=1, keepdims=True)
        if self.preemphasis:
            previous = tf.concat([frames[:, :1], frames[:, :-1]], axis=1)
            frames = frames - self.preemphasis * previous
        frames = frames * tf.constant(self._window)
        # Zero-pad to the FFT length here: TF's RFFT kernel rejects a shorter input when there are no frames.
        frames = tf.pad(frames, [[0, 0], [0, self.fft_length - self.frame_length]])
        power = tf.square(tf.abs(tf.signal.rfft(frames, fft_length=[self.fft_length])))  # [B*T, K]
        # Mel energies as each filter's weighted sum over its own bins, not a matmul: a dynamic-range-quantized
        # (int8) export turns matmuls into hybrid kernels that also quantize their input to 8 bits per row,
        # and a power spectrum spans ~13 orders of magnitude (most bins would fall to the log floor).
        energies = [tf.reduce_sum(power[:, low:high] * weights, axis=1) for low, high, weights in self._mel_filters]
        mel = tf.stack(energies, axis=1)  # [B*T, M]
        # log(max(x, floor)) written as max(log x, log floor): the same in float32, and a float16 export keeps
        # -23.03 where it would round the 1e-10 floor to 0 (log 0 = -inf on digital silence).
        fbank = tf.maximum(tf.math.log(mel), math.log(self.log_floor))
        fbank = tf.reshape(fbank, [batch, max_frames, self.num_mel_bins])
        return fbank * _frame_mask(lengths, max_frames), lengths

    def compute_output_shape(self, waveform_shape: tuple, num_samples_shape: tuple) -> tuple:
        width = waveform_shape[1]
        frames = None if width is None else self.num_frames(int(width))
        return (waveform_shape[0], frames, self.num_mel_bins), (waveform_shape[0],)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate,
            frame_length=self.frame_length,
            frame_step=self.frame_step,
            fft_length=self.fft_length,
            num_mel_bins=self.num_mel_bins,
            lower_hz=self.lower_hz,
            upper_hz=self.upper_hz,
            window_type=self.window_type,
            preemphasis=self.preemphasis,
            remove_dc_offset=self.remove_dc_offset,
            log_floor=self.log_floor,
        )
        return config


def _delta(features: tf.Tensor, last_index: tf.Tensor, window: int) -> tf.Tensor:
    """Regression delta over time of `features [B, T, D]`, indices clamped to [0, last_index[b]] per row."""
    steps = tf.expand_dims(tf.range(tf.shape(features)[1]), 0)  # [1, T]
    upper = tf.expand_dims(last_index, 1)  # [B, 1]
    total = tf.zeros_like(features)
    for n in range(1, window + 1):
        ahead = tf.gather(features, tf.minimum(steps + n, upper), batch_dims=1)
        behind = tf.gather(features, tf.maximum(tf.minimum(steps - n, upper), 0), batch_dims=1)
        total += float(n) * (ahead - behind)
    return total / float(2 * sum(n * n for n in range(1, window + 1)))


@keras.saving.register_keras_serializable(package="tf_jointctc")
class Deltas(keras.layers.Layer):
    """Appends regression deltas and delta-deltas (HTK/Kaldi formula, window N).

    call(features [B, T, D] float32, num_frames [B] int32) -> [B, T, 3D] = concat(static, delta, delta-delta)

    `d_t = sum_{n=1..N} n (c_{t+n} - c_{t-n}) / (2 sum_n n^2)`; delta-deltas apply the same formula to the
    deltas. Frame indices are clamped to `[0, num_frames[b] - 1]` per utterance (the utterance's own first and
    last valid frames are replicated), so padding never changes a valid frame; frames past num_frames are 0.
    """

    def __init__(self, window: int = DELTA_WINDOW, **kwargs: Any):
        super().__init__(**kwargs)
        if window < 1:
            raise ValueError(f"delta window must be >= 1, got {window}")
        self.window = int(window)

    def call(self, features: tf.Tensor, num_frames: tf.Tensor) -> tf.Tensor:
        features = tf.convert_to_tensor(features, tf.float32)
        max_frames = tf.shape(features)[1]
        lengths = tf.minimum(tf.cast(num_frames, tf.int32), max_frames)
        mask = _frame_mask(lengths, max_frames)
        last_index = tf.maximum(lengths - 1, 0)
        static = features * mask
        delta = _delta(static, last_index, self.window) * mask
        delta2 = _delta(delta, last_index, self.window) * mask
        return tf.concat([static, delta, delta2], axis=-1)

    def compute_output_shape(self, features_shape: tuple, num_frames_shape: tuple) -> tuple:
        dim = features_shape[2]
        return (features_shape[0], features_shape[1], None if dim is None else 3 * dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(window=self.window)
        return config


@keras.saving.register_keras_serializable(package="tf_jointctc")
class FeatureExtractor(keras.layers.Layer):
    """Waveform -> 40 log-mel + deltas + delta-deltas.

    call(waveform [B, S] float32 in [-1, 1], num_samples [B] int32)
      -> (features [B, T, 3 * num_mel_bins] float32, num_frames [B] int32), zero past num_frames.

    Keyword arguments other than `delta_window` and the base-layer ones go to `LogMelFilterbank`.
    """

    def __init__(self, delta_window: int = DELTA_WINDOW, name: str | None = None, **kwargs: Any):
        base_keys = {"dtype", "trainable", "autocast"}
        base = {k: kwargs.pop(k) for k in list(kwargs) if k in base_keys}
        super().__init__(name=name, **base)
        self.filterbank = LogMelFilterbank(name="log_mel", **kwargs)
        self.deltas = Deltas(window=delta_window, name="deltas")
        self.delta_window = int(delta_window)

    def build(self, waveform_shape: tuple | None = None, num_samples_shape: tuple | None = None) -> None:
        # The sub-layers hold no weights; mark them built so deserialization does not warn about unbuilt state.
        self.filterbank.built = True
        self.deltas.built = True
        self.built = True

    @property
    def feature_dim(self) -> int:
        return 3 * self.num_mel_bins

    @property
    def num_mel_bins(self) -> int:
        """Mel bins per feature group (static, delta, delta-delta): `feature_dim / 3`."""
        return self.filterbank.num_mel_bins

    def num_frames(self, num_samples: Any) -> Any:
        return self.filterbank.num_frames(num_samples)

    def call(self, waveform: tf.Tensor, num_samples: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        fbank, lengths = self.filterbank(waveform, num_samples)
        return self.deltas(fbank, lengths), lengths

    def compute_output_shape(self, waveform_shape: tuple, num_samples_shape: tuple) -> tuple:
        (batch, frames, _), lengths_shape = self.filterbank.compute_output_shape(waveform_shape, num_samples_shape)
        return (batch, frames, self.feature_dim), lengths_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        fb_config = self.filterbank.get_config()
        for key in ("name", "trainable", "dtype"):
            fb_config.pop(key, None)
        config.update(fb_config)
        config.update(delta_window=self.delta_window)
        return config


class _FrameWiseNormalization(keras.layers.Layer):
    """A `[B, T, D] -> [B, T, D]` layer that passes its `[B, T]` mask through unchanged."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, features: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor | None:
        return mask

    def compute_output_shape(self, features_shape: tuple) -> tuple:
        return tuple(features_shape)


@keras.saving.register_keras_serializable(package="tf_jointctc")
class GlobalCMVN(_FrameWiseNormalization):
    """Global mean/variance normalization with statistics stored as non-trainable weights.

    call(features [B, T, D], mask [B, T] bool or None) -> [B, T, D] = (features - mean) / std, and 0 where
    mask is False. Supports Keras masking (the mask passes through unchanged).
    """

    def __init__(self, mean: Any, std: Any, **kwargs: Any):
        super().__init__(**kwargs)
        mean_np = np.asarray(mean, dtype=np.float32).reshape(-1)
        std_np = np.asarray(std, dtype=np.float32).reshape(-1)
        if mean_np.shape != std_np.shape:
            raise ValueError(f"mean {mean_np.shape} and std {std_np.shape} differ in shape")
        if not np.all(std_np > 0):
            raise ValueError("std must be positive")
        self.dim = int(mean_np.shape[0])
        self.mean = self.add_weight(
            name="mean", shape=(self.dim,), initializer=keras.initializers.Constant(mean_np), trainable=False
        )
        self.std = self.add_weight(
            name="std", shape=(self.dim,), initializer=keras.initializers.Constant(std_np), trainable=False
        )

    @classmethod
    def from_stats(cls, stats: CMVNStats, **kwargs: Any) -> GlobalCMVN:
        return cls(stats.mean.tolist(), stats.std.tolist(), **kwargs)

    def call(self, features: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        features = tf.convert_to_tensor(features, tf.float32)
        normalized = (features - tf.convert_to_tensor(self.mean)) / tf.convert_to_tensor(self.std)
        if mask is not None:
            normalized *= tf.expand_dims(tf.cast(mask, normalized.dtype), -1)
        return normalized

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            mean=[float(v) for v in keras.ops.convert_to_numpy(self.mean)],
            std=[float(v) for v in keras.ops.convert_to_numpy(self.std)],
        )
        return config


UTTERANCE_CMVN_MODES = ("none", "mean", "mean_var")


@keras.saving.register_keras_serializable(package="tf_jointctc")
class UtteranceCMVN(_FrameWiseNormalization):
    """Per-utterance normalization over each utterance's valid frames (not in the paper), after `GlobalCMVN`.

    call(features [B, T, D], mask [B, T] bool or None) -> [B, T, D], 0 where mask is False:
    - "none": the features unchanged (masked);
    - "mean": `x - m_b`, with `m_b` [B, 1, D] the mean of utterance b's valid frames (cepstral mean
      normalization: removes a constant offset of the log spectrum, such as a voice's spectral tilt or a
      channel);
    - "mean_var": `(x - m_b) / sqrt(max(v_b, VARIANCE_FLOOR))`, with `v_b` the variance of the valid frames.
    Statistics are sums over valid frames only, so padding never changes a result; an utterance with no valid
    frame comes out as zeros.
    """

    VARIANCE_FLOOR = 1e-4

    def __init__(self, mode: str = "none", **kwargs: Any):
        super().__init__(**kwargs)
        if mode not in UTTERANCE_CMVN_MODES:
            raise ValueError(f"utterance CMVN mode must be one of {', '.join(UTTERANCE_CMVN_MODES)}, got {mode!r}")
        self.mode = mode

    def call(self, features: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        features = tf.convert_to_tensor(features, tf.float32)
        if mask is None:
            mask = tf.ones(tf.shape(features)[:2], tf.bool)
        weights = tf.expand_dims(tf.cast(mask, tf.float32), -1)  # [B, T, 1]
        features *= weights
        if self.mode == "none":
            return features
        count = tf.maximum(tf.reduce_sum(weights, axis=1, keepdims=True), 1.0)  # [B, 1, 1]
        mean = tf.reduce_sum(features, axis=1, keepdims=True) / count  # [B, 1, D]
        centred = (features - mean) * weights
        if self.mode == "mean":
            return centred
        variance = tf.reduce_sum(tf.square(centred), axis=1, keepdims=True) / count
        return centred * tf.math.rsqrt(tf.maximum(variance, self.VARIANCE_FLOOR))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(mode=self.mode)
        return config


@dataclasses.dataclass
class CMVNStats:
    """Running per-dimension sums (float64) over valid frames, for `GlobalCMVN`."""

    dim: int = FEATURE_DIM
    count: int = 0
    sum: np.ndarray | None = None
    sum_squares: np.ndarray | None = None
    std_floor: float = 1e-5

    def __post_init__(self) -> None:
        self.sum = np.zeros(self.dim, np.float64) if self.sum is None else np.asarray(self.sum, np.float64)
        self.sum_squares = (
            np.zeros(self.dim, np.float64) if self.sum_squares is None else np.asarray(self.sum_squares, np.float64)
        )
        if self.sum.shape != (self.dim,) or self.sum_squares.shape != (self.dim,):
            raise ValueError(f"sums must have shape ({self.dim},)")

    def accumulate(self, features: np.ndarray, num_frames: np.ndarray) -> None:
        """Adds the valid frames of one batch: features [B, T, D], num_frames [B] (frames >= num_frames skipped)."""
        features = np.asarray(features)
        lengths = np.asarray(num_frames).reshape(-1)
        if features.ndim != 3 or features.shape[2] != self.dim or features.shape[0] != lengths.shape[0]:
            raise ValueError(f"expected features [B, T, {self.dim}] and num_frames [B], got {features.shape}")
        valid = np.arange(features.shape[1])[None, :] < lengths[:, None]  # [B, T]
        frames = features[valid].astype(np.float64)  # [N, D]
        self.count += int(frames.shape[0])
        self.sum += frames.sum(axis=0)
        self.sum_squares += np.square(frames).sum(axis=0)

    @property
    def mean(self) -> np.ndarray:
        if self.count == 0:
            raise ValueError("no frames accumulated")
        return self.sum / self.count

    @property
    def std(self) -> np.ndarray:
        mean = self.mean
        variance = np.maximum(self.sum_squares / self.count - np.square(mean), 0.0)
        return np.maximum(np.sqrt(variance), self.std_floor)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "count": self.count,
            "sum": self.sum.tolist(),
            "sum_squares": self.sum_squares.tolist(),
            "std_floor": self.std_floor,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Writes the sums (and, for people reading the file, mean and std) as JSON."""
        payload = self.to_dict()
        if self.count:
            payload.update(mean=self.mean.tolist(), std=self.std.tolist())
        with open(path, "w", encoding="utf-8") as f:
            json.dump(payload, f)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CMVNStats:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        return cls(
            dim=int(payload["dim"]),
            count=int(payload["count"]),
            sum=np.asarray(payload["sum"], np.float64),
            sum_squares=np.asarray(payload["sum_squares"], np.float64),
            std_floor=float(payload.get("std_floor", 1e-5)),
        )


def compute_cmvn_stats(dataset: tf.data.Dataset, max_batches: int | None = None, dim: int | None = None) -> CMVNStats:
    """Accumulates `CMVNStats` over batches of dicts with "features" [B, T, D] and "feature_lengths" [B].

    Args:
      dataset: a tf.data dataset of batch dicts (see docs/interfaces.md).
      max_batches: stop after this many batches (all if None).
      dim: feature dim; taken from the dataset's element spec (or the first batch) if None.
    """
    if max_batches is not None:
        dataset = dataset.take(max_batches)
    stats: CMVNStats | None = None
    if dim is None:
        spec_dim = dataset.element_spec["features"].shape[-1]
        dim = None if spec_dim is None else int(spec_dim)
    for batch in dataset.as_numpy_iterator():
        features = batch["features"]
        if stats is None:
            stats = CMVNStats(dim=dim or int(features.shape[-1]))
        stats.accumulate(features, batch["feature_lengths"])
    if stats is None or stats.count == 0:
        raise ValueError("the dataset gave no valid frames")
    return stats
