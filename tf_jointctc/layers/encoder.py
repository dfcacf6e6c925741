"""Pyramidal BLSTM encoder with linear projections (paper section 3.2, eq. 6), with optional input frame
stacking (a low-frame-rate front end) and an optional 2-D convolutional front end, neither in the paper."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from tf_jointctc.features import NUM_MEL_BINS
from tf_jointctc.layers.conv_frontend import ConvFrontEnd
from tf_jointctc.layers.fused_lstm import bidirectional_lstm, check_training_dtype, resolve_training_dtype

IMPLEMENTATIONS = ("auto", "fused", "keras")
# (layer i, 1-based; h_i [B, L_i, P]; lengths_i [B] int32) -> what layer i + 1 reads, [B, L_i, P].
Condition = Callable[[int, tf.Tensor, tf.Tensor], tf.Tensor]


def resolve_implementation(implementation: str, gpus: Sequence[Any] | None = None) -> str:
    """The BLSTM computation that `implementation` stands for: "fused" or "keras".

    "auto" is "keras" (`Bidirectional(LSTM)`, which Keras runs on cuDNN when a GPU is visible and the layer's
    arguments allow it, as the encoder's do) when `gpus` is not empty, else "fused" (faster on a CPU).
    `gpus`: the visible GPUs; None asks `tf.config.list_physical_devices("GPU")`.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    if implementation != "auto":
        return implementation
    if gpus is None:
        gpus = tf.config.list_physical_devices("GPU")
    return "keras" if len(gpus) else "fused"


def uniform_initializer(init_scale: float) -> keras.initializers.Initializer:
    """The paper's initialization: uniform in [-init_scale, init_scale] (section 3.2: 0.1)."""
    return keras.initializers.RandomUniform(-init_scale, init_scale)


@keras.saving.register_keras_serializable(package="tf_jointctc")
class PyramidalBLSTM(keras.layers.Layer):
    """Stack of BLSTM layers, each followed by a Dense projection, with frame skipping between layers.

    Input dimensions (`input_dims` = n > 0, not in the paper): the encoder reads only the first n of each frame's
    features (40: the static log-mels of `features`' [static, delta, delta-delta] layout; the stacked frames and
    the BLSTMs carry the context that the deltas summarize, and the first layer's input GEMM shrinks by 3x).
    0 (default) reads all of them.

    Convolutional front end (`conv_channels` = C > 0, not in the paper): before the stacking, two 3 x 3
    convolutions with C channels over (time, mel bin), the feature groups of `conv_bins` mel bins as input
    channels, each halving the mel axis (`conv_frontend.ConvFrontEnd`: `[B, T, D] -> [B, T, ceil(ceil(conv_bins /
    2) / 2) * C]`, the frame rate kept). 0 (default) feeds the features to the stacking as they are.

    Input stacking (`input_stack` = k > 1, not in the paper): before the first layer, every k consecutive
    feature frames are concatenated into one (`[B, T, D] -> [B, ceil(T / k), k * D]`, the last frame
    zero-padded; lengths `ceil(len / k)`). The BLSTMs then run at 1/k of the frame rate, which is where the
    encoder's time goes; k = 1 (default) is the paper's encoder.

    Layer i: if `subsample[i] == 2`, keep every second frame of the layer below (`h[:, ::2]`, lengths
    `ceil(len / 2)`), *then* run `Bidirectional(LSTM(units))` (called with the padding mask, so padding does
    not leak into the backward direction), then a Dense projection to `projection_units` (linear by default).

    Schedules: the paper's `(1, 1, 2, 2)` (layer inputs T, T, T/2, T/4: "the top two layers read every second
    hidden state in the network below", L = T/4); ESPnet's blstmp `(1, 2, 2, 1)` (T, T/2, T/4, T/4).

    `implementation`: "fused" (default) computes each BLSTM with `fused_lstm.bidirectional_lstm` (both
    directions in one loop, input projections as one GEMM per direction, hand-written backward pass); "keras" calls the
    `Bidirectional(LSTM)` layers (cuDNN on a GPU); "auto" is "keras" when a GPU is visible, else "fused"
    (`resolve_implementation`; the attribute `implementation` holds the resolved choice, `get_config` the
    requested one). `training_projection_dtype` "bfloat16" (not in the paper; "fused" only) computes the
    BLSTMs' input projections in bfloat16 during training (`fused_lstm.input_projection`; float32 weights,
    float32 recurrence), float32 at inference. Both implementations use the same weights (the Keras layers hold
    them), so checkpoints are interchangeable and the outputs agree to float rounding; "keras" is kept as the reference.

    All weights (LSTM kernels, recurrent kernels, biases, projections) are initialized uniformly in
    `[-init_scale, init_scale]` (no unit forget bias), as in the paper; the convolutional front end's kernels take
    Keras' Glorot-uniform default (not in the paper).

    call(x [B, T, D] float32, lengths [B] int32) -> (h [B, L, projection_units],
    out_lengths [B] int32), padded frames of `h` are exactly zero.
    """

    def __init__(
        self,
        num_layers: int = 4,
        units: int = 320,
        projection_units: int = 320,
        subsample: Sequence[int] = (1, 1, 2, 2),
        projection_activation: str | None = None,
        init_scale: float = 0.1,
        implementation: str = "fused",
        input_stack: int = 1,
        training_projection_dtype: str = "float32",
        input_dims: int = 0,
        conv_channels: int = 0,
        conv_bins: int = NUM_MEL_BINS,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if int(conv_channels) < 0:
            raise ValueError(f"conv_channels must be >= 0 (0: no convolutional front end), got {conv_channels}")
        self.conv_channels, self.conv_bins = int(conv_channels), int(conv_bins)
        self.frontend = (ConvFrontEnd(self.conv_channels, self.conv_bins, name="conv_frontend")
                         if self.conv_channels else None)
        if int(input_dims) < 0:
            raise ValueError(f"input_dims must be >= 0 (0: all features), got {input_dims}")
        self.input_dims = int(input_dims)
        check_training_dtype(training_projection_dtype, "training_projection_dtype")
        self.training_projection_dtype = training_projection_dtype
        if int(input_stack) < 1:
            raise ValueError(f"input_stack must be >= 1, got {input_stack}")
        self.input_stack = int(input_stack)
        subsample = tuple(int(s) for s in subsample)
        if len(subsample) != num_layers:
            raise ValueError(f"subsample {subsample} must have one entry per layer ({num_layers})")
        if any(s not in (1, 2) for s in subsample):
            raise ValueError(f"subsample factors must be 1 or 2, got {subsample}")
        self.requested_implementation = implementation
        self.implementation = resolve_implementation(implementation)
        if resolve_training_dtype(self.training_projection_dtype) != "float32" and self.implementation != "fused":
            logging.warning("training_projection_dtype %s applies to the fused encoder only; the %s encoder "
                            "trains in float32", self.training_projection_dtype, self.implementation)
        self.num_layers = int(num_layers)
        self.units = int(units)
        self.projection_units = int(projection_units)
        self.subsample = subsample
        self.projection_activation = projection_activation
        self.init_scale = float(init_scale)
        # The caller's Keras mask (e.g. from GlobalCMVN) is superseded by `lengths`; outputs carry no mask.
        self.supports_masking = True
        self.blstms: list[keras.layers.Bidirectional] = []
        self.projections: list[keras.layers.Dense] = []
        for i in range(self.num_layers):
            init = uniform_initializer(self.init_scale)
            lstm = keras.layers.LSTM(
                self.units,
                return_sequences=True,
                kernel_initializer=init,
                recurrent_initializer=init,
                bias_initializer=init,
                unit_forget_bias=False,
                name=f"lstm_{i}",
            )
            self.blstms.append(keras.layers.Bidirectional(lstm, merge_mode="concat", name=f"blstm_{i}"))
            self.projections.append(
                keras.layers.Dense(
                    self.projection_units,
                    activation=self.projection_activation,
                    kernel_initializer=init,
                    bias_initializer=init,
                    name=f"projection_{i}",
                )
            )

    def build(self, x_shape: Sequence[int | None], lengths_shape: Sequence[int | None] | None = None) -> None:
        dim = self._used_dims(x_shape[-1])
        if self.frontend is not None:
            if not self.frontend.built:
                self.frontend.build((None, None, dim))
            dim = self.frontend.output_dim()
        dim *= self.input_stack
        for blstm, projection in zip(self.blstms, self.projections):
            if not blstm.built:
                blstm.build((None, None, dim))
            if not projection.built:
                projection.build((None, None, 2 * self.units))
            dim = self.projection_units
        self.built = True

    def _used_dims(self, dims: int) -> int:
        """How many of `dims` input features the encoder reads (`input_dims`)."""
        if self.input_dims > dims:
            raise ValueError(f"input_dims {self.input_dims} exceeds the {dims} input features")
        return self.input_dims or dims

    @staticmethod
    def output_lengths(lengths: Any, subsample: Sequence[int], input_stack: int = 1) -> Any:
        """Encoder output lengths: `ceil(len / input_stack)`, then `ceil(len / 2)` per factor-2 layer (together
        `ceil(len / time_reduction(...))`). Works on ints, numpy and tf tensors."""
        lengths = (lengths + int(input_stack) - 1) // int(input_stack)
        for factor in subsample:
            if int(factor) == 2:
                lengths = (lengths + 1) // 2
        return lengths

    @staticmethod
    def stack_frames(x: tf.Tensor, lengths: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
        """([B, T, D], [B]) -> ([B, ceil(T / k), k * D], ceil(lengths / k)); frame j of the output is input
        frames jk .. jk + k - 1 side by side, with input frames past `lengths` zeroed (padding never leaks into
        an utterance's last stacked frame)."""
        if k == 1:
            return x, lengths
        x, lengths = tf.convert_to_tensor(x), tf.convert_to_tensor(lengths)
        batch, steps, dim = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
        x_batch_static = x.shape[0]
        x = x * tf.expand_dims(tf.sequence_mask(lengths, steps, dtype=x.dtype), -1)
        padded_steps = (steps + k - 1) // k * k
        x = tf.pad(x, [[0, 0], [0, padded_steps - steps], [0, 0]])
        x = tf.reshape(x, tf.stack([batch, padded_steps // k, k * dim]))
        x.set_shape([x_batch_static, None, k * dim])  # a static batch stays static (TFLite's fused LSTMs need it)
        return x, (lengths + k - 1) // k

    def call(self, x: tf.Tensor, lengths: tf.Tensor, training: bool | None = None,
             condition: Condition | None = None, all_layers: bool = False) -> Any:
        """`(h, out_lengths)` of the top layer, or with `all_layers` every layer's (`layer_outputs`)."""
        outputs = self.layer_outputs(x, lengths, training=training, condition=condition)
        return outputs if all_layers else outputs[-1]

    def layer_outputs(self, x: tf.Tensor, lengths: tf.Tensor, training: bool | None = None,
                      condition: Condition | None = None) -> list[tuple[tf.Tensor, tf.Tensor]]:
        """Every layer's output, bottom to top: `num_layers` pairs (h_i [B, L_i, projection_units], lengths_i
        [B] int32) after layer i's projection, padded frames exactly zero; the last pair is `call`'s output
        (the model's intermediate CTC reads a lower one, `JointCTCAttention.intermediate_ctc_layer`).

        `condition(i, h_i, lengths_i) -> h` (optional; i is 1-based) is called after every layer below the top,
        and layer i + 1 reads what it returns (the model's self-conditioned CTC); the pairs hold h_i as layer i
        made it, before the condition. The condition must keep padded frames zero.
        """
        h = tf.convert_to_tensor(x)
        if self.input_dims:
            h = h[..., :self._used_dims(h.shape[-1])]
        lengths = tf.cast(lengths, tf.int32)
        if self.frontend is not None:
            h = self.frontend(h, lengths)
        h, lengths = self.stack_frames(h, lengths, self.input_stack)
        outputs = []
        for factor, blstm, projection in zip(self.subsample, self.blstms, self.projections):
            if factor == 2:
                h = h[:, ::2]
                lengths = (lengths + 1) // 2
            mask = tf.sequence_mask(lengths, maxlen=tf.shape(h)[1])
            if self.implementation == "fused":
                forward, backward = self._weights(blstm.forward_layer), self._weights(blstm.backward_layer)
                h = bidirectional_lstm(h, lengths, forward, backward, training=bool(training),
                                       training_projection_dtype=self.training_projection_dtype)
            else:
                h = blstm(h, mask=mask)
            h = projection(h)
            h = h * tf.expand_dims(tf.cast(mask, h.dtype), -1)
            outputs.append((h, lengths))
            if condition is not None and len(outputs) < self.num_layers:
                h = condition(len(outputs), h, lengths)
        return outputs

    @staticmethod
    def _weights(lstm: keras.layers.LSTM) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        cell = lstm.cell
        return cell.kernel.value, cell.recurrent_kernel.value, cell.bias.value

    def compute_mask(self, x: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, x_shape: Sequence[int | None], lengths_shape: Sequence[int | None]) -> tuple:
        steps = x_shape[1]
        if steps is not None:
            steps = self.output_lengths(steps, self.subsample, self.input_stack)
        return (x_shape[0], steps, self.projection_units), tuple(lengths_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            units=self.units,
            projection_units=self.projection_units,
            subsample=list(self.subsample),
            projection_activation=self.projection_activation,
            init_scale=self.init_scale,
            implementation=self.requested_implementation,
            input_stack=self.input_stack,
            training_projection_dtype=self.training_projection_dtype,
            input_dims=self.input_dims,
            conv_channels=self.conv_channels,
            conv_bins=self.conv_bins,
        )
        return config


def time_reduction(subsample: Sequence[int], input_stack: int = 1) -> int:
    """Input frames per encoder frame: `input_stack * 2 ** (number of factor-2 layers)`. Encoder lengths are
    `ceil(T / time_reduction)` (nested ceilings of integer divisions compose)."""
    return int(input_stack) * 2 ** sum(1 for factor in subsample if int(factor) == 2)
