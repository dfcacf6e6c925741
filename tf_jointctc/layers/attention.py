"""Content-based and location-aware attention (paper eq. 9-11).

Both layers share one step-wise API, designed for beam search:

- `precompute(h [B, L, P]) -> h_proj [B, L, A]` = `V h + b`, computed once per utterance;
- `call(decoder_state [N, S], h [B, L, P], h_proj [B, L, A], mask [B, L] bool, previous_weights [N, L])
  -> (context [N, P], weights [N, L])`, where N = B * K: K decoder rows per utterance, consecutive (row n
  reads utterance n // K). Teacher forcing has K = 1; a beam search passes its B * beam hypotheses with the
  B utterances' encoder tensors, which are then read once per step instead of once per hypothesis.

Scores: `e_l = w^T tanh(W s + V h_l + b)` (content) or `w^T tanh(W s + V h_l + U f_l + b)` with
`f = F * a_prev` (location). Weights `a = softmax(gamma * e)` over the valid frames only: padded frames get
exactly zero weight. Context `c = sum_l a_l h_l`.

Initial previous weights (`initial_weights`): uniform over the valid frames (1 / length), as ESPnet's AttLoc.

The location convolution `F * a_prev` can also run as one matmul by a banded matrix (`location_matrix`), which
TensorFlow runs 3-4x faster than its conv2d while the encoder output is a few filter widths long. Teacher forcing
and beam search (`search_location`) use it there; the TFLite exports keep the CONV_2D builtin
(`convolution_in_search`), which LiteRT runs faster than the matmul.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import tensorflow as tf

from tf_jointctc.layers.encoder import uniform_initializer

_NEG = -1e9
_SEARCH = {"location_matrix": True}
# A location matrix argument: None (convolve), `location_matrix(L)`, or `search_location(L)`'s (use, matrix).
LocationMatrix = tf.Tensor | tuple[tf.Tensor, tf.Tensor] | None


@contextlib.contextmanager
def convolution_in_search() -> Iterator[None]:
    """While active, `search_location` returns None: beam searches traced then convolve (CONV_2D in TFLite)."""
    previous = _SEARCH["location_matrix"]
    _SEARCH["location_matrix"] = False
    try:
        yield
    finally:
        _SEARCH["location_matrix"] = previous


def initial_weights(mask: tf.Tensor) -> tf.Tensor:
    """Uniform weights over the valid frames of `mask` [B, L] (zero on padded frames) -> [B, L] float32."""
    mask = tf.cast(mask, tf.float32)
    return mask / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)


def masked_softmax(scores: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Softmax over the last axis restricted to `mask` (broadcast against `scores`); masked entries are exactly
    0 (all-masked rows are all 0)."""
    mask = tf.cast(mask, tf.bool)
    scores = tf.where(mask, scores, tf.cast(_NEG, scores.dtype))
    weights = tf.nn.softmax(scores, axis=-1)
    return weights * tf.cast(mask, weights.dtype)


@keras.saving.register_keras_serializable(package="tf_jointctc")
class ContentAttention(keras.layers.Layer):
    """Content-based attention, eq. 9 (first case) with sharpening gamma (eq. 10).

    Args:
      attention_dim: A, the width of W s, V h (and U f).
      sharpening: gamma in `softmax(gamma * e)` (paper: 2).
      init_scale: weights uniform in [-init_scale, init_scale].

    `previous_weights` is accepted and ignored so that both attention types share a signature.
    """

    def __init__(self, attention_dim: int, sharpening: float = 2.0, init_scale: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        self.attention_dim = int(attention_dim)
        self.sharpening = float(sharpening)
        self.init_scale = float(init_scale)
        init = uniform_initializer(self.init_scale)
        self.state_dense = keras.layers.Dense(self.attention_dim, use_bias=False, kernel_initializer=init, name="W")
        self.encoder_dense = keras.layers.Dense(
            self.attention_dim, use_bias=True, kernel_initializer=init, bias_initializer=init, name="V"
        )
        self.score_dense = keras.layers.Dense(1, use_bias=False, kernel_initializer=init, name="w")

    def build(self, decoder_state_shape: Sequence[int | None], h_shape: Sequence[int | None]) -> None:
        if not self.state_dense.built:
            self.state_dense.build((None, decoder_state_shape[-1]))
        if not self.encoder_dense.built:
            self.encoder_dense.build((None, None, h_shape[-1]))
        if not self.score_dense.built:
            self.score_dense.build((None, None, self.attention_dim))
        self.built = True

    def precompute(self, h: tf.Tensor) -> tf.Tensor:
        """`V h + b`: [B, L, P] -> [B, L, A]. Call once per utterance, before stepping."""
        return self.encoder_dense(h)

    def initial_weights(self, mask: tf.Tensor) -> tf.Tensor:
        """Previous weights for the first step: uniform over valid frames, [B, L]."""
        return initial_weights(mask)

    def location_matrix_pays_off(self, frames: tf.Tensor) -> tf.Tensor | None:
        """None: content attention has no location term (see `LocationAwareAttention.location_matrix`)."""
        return None

    def search_location(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor] | None:
        """None: content attention has no location term (see `LocationAwareAttention.search_location`)."""
        return None

    def _location_term(self, previous_weights: tf.Tensor, location_matrix: LocationMatrix) -> tf.Tensor | None:
        return None

    def _location_and_state_term(self, state_term: tf.Tensor, previous_weights: tf.Tensor,
                                 location_matrix: LocationMatrix) -> tf.Tensor | None:
        """None: content attention has no location term to fold the state term into."""
        return None

    def call(
        self,
        decoder_state: tf.Tensor,
        h: tf.Tensor,
        h_proj: tf.Tensor,
        mask: tf.Tensor,
        previous_weights: tf.Tensor,
        location_matrix: LocationMatrix = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Returns (context [N, P], weights [N, L]) for decoder_state [N, S] and previous_weights [N, L], N = B * K
        (module docstring). `location_matrix`: optional `location_matrix(L)`, the location convolution as one
        matmul (same result to float32 rounding; faster in TensorFlow), or `search_location(L)`'s pair."""
        batch = tf.shape(h)[0]
        frames = tf.shape(h)[1]
        per_utterance = tf.shape(decoder_state)[0] // batch  # K
        grouped = tf.stack([batch, per_utterance, frames, self.attention_dim])
        state_term = self.state_dense(decoder_state)  # [N, A]
        folded = self._location_and_state_term(state_term, previous_weights, location_matrix)  # [N, L, A]
        if folded is not None:
            energy = tf.expand_dims(h_proj, 1) + tf.reshape(folded, grouped)  # [B, K, L, A]
        else:
            energy = tf.expand_dims(h_proj, 1) + tf.reshape(state_term, tf.stack([batch, per_utterance, 1, -1]))
            location = self._location_term(previous_weights, location_matrix)  # [N, L, A]
            if location is not None:
                energy = energy + tf.reshape(location, grouped)
        scores = tf.squeeze(self.score_dense(tf.tanh(energy)), -1)  # [B, K, L]
        weights = masked_softmax(self.sharpening * scores, tf.expand_dims(mask, 1))
        # A batched matmul [B, K, L] x [B, L, P]: no [B, K, L, P] product in memory (nor its gradient).
        context = tf.matmul(weights, h)  # [B, K, P]
        rows = tf.stack([batch * per_utterance, -1])
        context, weights = tf.reshape(context, rows), tf.reshape(weights, rows)
        context.set_shape(decoder_state.shape[:1].concatenate(h.shape[-1:]))  # static shapes, as before
        weights.set_shape(decoder_state.shape[:1].concatenate(h.shape[1:2]))
        return context, weights

    def compute_output_shape(self, decoder_state_shape: Sequence[int | None], h_shape: Sequence[int | None]) -> tuple:
        return (decoder_state_shape[0], h_shape[-1]), (decoder_state_shape[0], h_shape[1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(attention_dim=self.attention_dim, sharpening=self.sharpening, init_scale=self.init_scale)
        return config


@keras.saving.register_keras_serializable(package="tf_jointctc")
class LocationAwareAttention(ContentAttention):
    """Location-aware attention, eq. 9 (second case): adds `U f_l` with `f = F * a_prev`.

    `F` is `conv_filters` 1-D filters of `conv_width` taps convolved over l with SAME zero padding
    (centered; for an even width the extra tap is on the right). The paper uses 10 filters of width 100;
    ESPnet's AttLoc uses `2 * 100 + 1 = 201` taps. The convolution is `tf.nn.conv2d` on `[B, 1, L, 1]`, which
    converts to a TFLite CONV_2D builtin.

    Args:
      attention_dim: A.
      conv_filters: number of location filters (paper: 10).
      conv_width: taps per filter (paper: 100).
      sharpening: gamma (paper: 2).
      init_scale: weights uniform in [-init_scale, init_scale].
    """

    def __init__(
        self,
        attention_dim: int,
        conv_filters: int = 10,
        conv_width: int = 100,
        sharpening: float = 2.0,
        init_scale: float = 0.1,
        **kwargs: Any,
    ):
        super().__init__(attention_dim, sharpening=sharpening, init_scale=init_scale, **kwargs)
        self.conv_filters = int(conv_filters)
        self.conv_width = int(conv_width)
        self.location_dense = keras.layers.Dense(
            self.attention_dim, use_bias=False, kernel_initializer=uniform_initializer(self.init_scale), name="U"
        )
        self.conv_kernel = None

    def build(self, decoder_state_shape: Sequence[int | None], h_shape: Sequence[int | None]) -> None:
        if self.conv_kernel is None:
            # [filter_height=1, filter_width, in_channels=1, out_channels] for tf.nn.conv2d.
            self.conv_kernel = self.add_weight(
                name="F",
                shape=(1, self.conv_width, 1, self.conv_filters),
                initializer=uniform_initializer(self.init_scale),
                trainable=True,
            )
        if not self.location_dense.built:
            self.location_dense.build((None, None, self.conv_filters))
        super().build(decoder_state_shape, h_shape)

    # Decoder forward + backward, batch 16, 60 steps, W = 100 (conv2d vs matrix): 0.44 vs 0.40 s at L = 200,
    # 0.92 vs 1.04 s at L = 500, 1.80 vs 2.73 s at L = 1000. A chunked (block-Toeplitz, linear in L) variant
    # was slower than conv2d at every L: its per-step slicing costs more than the matmul saves.
    MATRIX_MAX_WIDTHS = 3

    def location_matrix_pays_off(self, frames: tf.Tensor) -> tf.Tensor:
        """Whether `location_matrix(frames)` is faster than the convolution: L <= MATRIX_MAX_WIDTHS * W."""
        return tf.convert_to_tensor(frames) <= self.MATRIX_MAX_WIDTHS * self.conv_width

    def location_matrix(self, frames: tf.Tensor) -> tf.Tensor:
        """The convolution `F *` over `frames` (L) positions as a banded (Toeplitz) matrix [L, L * conv_filters]:
        `a_prev [B, L] @ M`, reshaped to [B, L, conv_filters], equals `location_features(a_prev)`.

        One [B, L] x [L, L F] matmul per decoder step (and its gradient, two more) costs less here than
        `tf.nn.conv2d` on [B, 1, L, 1] and its two backprop kernels while L is a few filter widths
        (`location_matrix_pays_off`); M grows as L^2. Teacher forcing builds M once per batch. Entry (j, l, k)
        is tap `j - l + (W - 1) // 2` of filter k (zero outside the filter), the SAME padding convention of
        `tf.nn.conv2d`."""
        width = self.conv_width
        position = tf.range(frames)
        tap = position[:, None] - position[None, :] + (width - 1) // 2  # [j (input), l (output)]
        taps = tf.reshape(tf.convert_to_tensor(self.conv_kernel), [width, self.conv_filters])
        taps = tf.concat([taps, tf.zeros([1, self.conv_filters], taps.dtype)], axis=0)  # row `width` = 0
        inside = tf.logical_and(tap >= 0, tap < width)
        matrix = tf.gather(taps, tf.where(inside, tap, width))  # [L, L, F]
        return tf.reshape(matrix, tf.stack([frames, frames * self.conv_filters]))

    def search_location(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor] | None:
        """For a beam search's steps over `frames` (L) encoder frames: (use, matrix), `use` = whether the matrix
        pays off and `matrix` = `location_matrix(frames)` if it does (else an empty [0, 0]); build it once per
        search, outside the step loop. None inside `convolution_in_search`. The step then chooses by a `tf.cond`:
        the WSJ architecture's location term (20 hypotheses, 200 frames) took 2.2 ms per step by conv2d and 0.6
        ms by the matrix in TensorFlow, 1 thread (docs/performance.md)."""
        if not _SEARCH["location_matrix"]:
            return None
        use = self.location_matrix_pays_off(frames)
        matrix = tf.cond(use, lambda: self.location_matrix(frames), lambda: tf.zeros([0, 0], self.compute_dtype))
        return use, matrix

    def location_features(
        self, previous_weights: tf.Tensor, location_matrix: LocationMatrix = None
    ) -> tf.Tensor:
        """`f = F * a_prev`: [B, L] -> [B, L, conv_filters] (by `location_matrix` [L, L F] if given; given
        `search_location`'s (use, matrix), by the matrix if `use`, else by the convolution)."""
        if isinstance(location_matrix, tuple):
            use, matrix = location_matrix
            return tf.cond(use, lambda: self.location_features(previous_weights, matrix),
                           lambda: self.location_features(previous_weights))
        if location_matrix is not None:
            f = tf.matmul(tf.cast(previous_weights, self.compute_dtype), location_matrix)  # [B, L F]
            return tf.reshape(f, tf.concat([tf.shape(previous_weights), [self.conv_filters]], 0))
        x = tf.expand_dims(tf.expand_dims(tf.cast(previous_weights, self.compute_dtype), 1), -1)  # [B, 1, L, 1]
        f = tf.nn.conv2d(x, tf.convert_to_tensor(self.conv_kernel), strides=1, padding="SAME")  # [B, 1, L, F]
        return tf.squeeze(f, 1)

    def _location_term(self, previous_weights: tf.Tensor, location_matrix: LocationMatrix) -> tf.Tensor | None:
        return self.location_dense(self.location_features(previous_weights, location_matrix))

    def _location_and_state_term(self, state_term: tf.Tensor, previous_weights: tf.Tensor,
                                 location_matrix: LocationMatrix) -> tf.Tensor | None:
        """In TensorFlow's beam search (`location_matrix` is `search_location`'s pair): `U f_l + W s` [N, L, A]
        as one batched matmul `[f_l, 1] x [U; W s]` per row, so that the `[N, L, A]` sum is written once instead
        of `U f` being written and then read again by the addition of the state term (1.4x for the energy at the
        WSJ beam's shapes, docs/performance.md; the same values to float32 rounding). Otherwise None: teacher
        forcing, where it bought nothing, and the TFLite export (`convolution_in_search`) keep the plain sum."""
        if not isinstance(location_matrix, tuple):
            return None
        f = self.location_features(previous_weights, location_matrix)  # [N, L, F]
        rows = tf.shape(f)[0]
        kernel = tf.convert_to_tensor(self.location_dense.kernel)  # [F, A]
        f_and_one = tf.concat([f, tf.ones(tf.stack([rows, tf.shape(f)[1], 1]), f.dtype)], axis=-1)  # [N, L, F + 1]
        per_row = tf.concat([tf.broadcast_to(kernel, tf.stack([rows, self.conv_filters, self.attention_dim])),
                             tf.expand_dims(tf.cast(state_term, kernel.dtype), 1)], axis=1)  # [N, F + 1, A]
        return tf.matmul(f_and_one, per_row)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(conv_filters=self.conv_filters, conv_width=self.conv_width)
        return config


def make_attention(
    attention_type: str,
    attention_dim: int,
    conv_filters: int = 10,
    conv_width: int = 100,
    sharpening: float = 2.0,
    init_scale: float = 0.1,
    name: str = "attention",
) -> ContentAttention:
    """Returns LocationAwareAttention for "location", ContentAttention for "content"."""
    if attention_type == "location":
        return LocationAwareAttention(
            attention_dim, conv_filters, conv_width, sharpening=sharpening, init_scale=init_scale, name=name
        )
    if attention_type == "content":
        return ContentAttention(attention_dim, sharpening=sharpening, init_scale=init_scale, name=name)
    raise ValueError(f"attention type must be 'location' or 'content', got {attention_type!r}")
