"""Joint CTC-attention model (Kim, Hori & Watanabe, ICASSP 2017, eq. 14) and its training step.

The caller compiles: `model.compile(optimizer=make_optimizer(config))`. XLA must stay off (there is no XLA
kernel for CTCLoss): `compile` here defaults `jit_compile` to False and refuses True.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_jointctc.features import GlobalCMVN, UtteranceCMVN
from tf_jointctc.layers import ctc as ctc_lib
from tf_jointctc.layers.ctc import CTCHead
from tf_jointctc.layers.decoder import AttentionDecoder, DecoderState
from tf_jointctc.layers.encoder import PyramidalBLSTM, time_reduction, uniform_initializer
from tf_jointctc.layers.spec_augment import MASK_SETTINGS, SpecAugment
from tf_jointctc.layers.spectral_tilt import SpectralTilt
from tf_jointctc.layers.vtlp import VocalTractLengthPerturbation

DEFAULT_FEATURE_DIM = 120


@keras.saving.register_keras_serializable(package="tf_jointctc")
class JointCTCAttention(keras.Model):
    """Shared pyramidal BLSTM encoder, CTC head and location/content attention decoder.

    Loss (eq. 14): `ctc_weight * L_CTC + (1 - ctc_weight) * L_Attention`, each the per-utterance sum of token
    negative log likelihoods averaged over the batch. With `intermediate_ctc_weight` w > 0 (intermediate CTC,
    Lee & Watanabe 2021, ESPnet's `interctc_weight`; not in the paper) L_CTC is `(1 - w) * CTC(h) + w *
    CTC(h_k)`: the same CTC head also reads the output of encoder layer k = `intermediate_ctc_layer` (1-based;
    0: the middle layer, `encoder_layers // 2`), in training and validation only (no weights are added, and
    decoding and export read the top layer alone). With `ctc_self_conditioning` as well (self-conditioned CTC,
    Nozaki & Komatsu 2021, ESPnet's `interctc_use_conditioning`; not in the paper) layer k+1 reads
    `h_k + W softmax(CTC logits of h_k) + b` (`ctc_conditioning`, a [V] -> [P] Dense) instead of h_k, in
    training and inference alike, so the upper layers are told what the lower ones recognized. In training only,
    `vtlp_warp` = (low, high) other than (1, 1) warps each utterance's mel axis by a factor uniform in that range
    before CMVN (VTLP, `layers.vtlp`; not in the paper; each utterance with chance `vtlp_probability`),
    `spectral_tilt` > 0 then adds a straight line of slope uniform in +-spectral_tilt nats across its static
    log-mels (`layers.spectral_tilt`; not in the paper), and `spec_augment` masks bins and frames after CMVN.

    Attention targets are `labels + eos`, decoder inputs `sos + labels`; padded positions are masked out.
    `ctc_weight` is a constructor constant: with 1 the attention branch is never built into the loss graph, with
    0 the CTC loss is never computed.

    Inputs (the batch dict of docs/interfaces.md): features [B, T, D] float32 (not CMVN-normalized),
    feature_lengths [B] int32, labels [B, U] int32 padded with 0, label_lengths [B] int32.

    Metrics: loss, ctc_loss (if ctc_weight > 0; the top layer's), intermediate_ctc_loss (if intermediate CTC is
    on), attention_loss and attention_accuracy (teacher-forced argmax
    token accuracy, the paper's Fig. 2; if ctc_weight < 1), non_finite_steps (skipped updates).
    """

    def __init__(
        self,
        vocab_size: int = 33,
        ctc_weight: float = 0.2,
        encoder_layers: int = 4,
        encoder_units: int = 320,
        encoder_projection_units: int = 320,
        encoder_subsample: Sequence[int] = (1, 1, 2, 2),
        encoder_implementation: str = "fused",
        encoder_input_stack: int = 1,
        encoder_training_projection_dtype: str = "float32",
        encoder_input_dims: int = 0,
        encoder_conv_channels: int = 0,
        attention: str = "location",
        attention_dim: int = 320,
        attention_filters: int = 10,
        attention_width: int = 100,
        sharpening: float = 2.0,
        decoder_units: int = 320,
        embedding_dim: int | None = None,
        cmvn_mean: Sequence[float] | None = None,
        cmvn_std: Sequence[float] | None = None,
        utterance_cmvn: str = "none",
        init_scale: float = 0.1,
        sos_id: int | None = None,
        eos_id: int | None = None,
        label_smoothing: float = 0.0,
        forget_bias: float = 0.0,
        ctc_warmup_steps: int = 0,
        guided_attention_weight: float = 0.0,
        guided_attention_width: float = 0.2,
        spec_augment: Mapping[str, Any] | None = None,
        vtlp_warp: Sequence[float] = (1.0, 1.0),
        vtlp_probability: float = 1.0,
        spectral_tilt: float = 0.0,
        intermediate_ctc_weight: float = 0.0,
        intermediate_ctc_layer: int = 0,
        ctc_self_conditioning: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= float(ctc_weight) <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
        self.vocab_size = int(vocab_size)
        self.ctc_weight = float(ctc_weight)
        self.encoder_layers = int(encoder_layers)
        self.encoder_units = int(encoder_units)
        self.encoder_projection_units = int(encoder_projection_units)
        self.encoder_subsample = tuple(int(s) for s in encoder_subsample)
        self.encoder_implementation = str(encoder_implementation)
        self.encoder_input_stack = int(encoder_input_stack)
        self.encoder_training_projection_dtype = str(encoder_training_projection_dtype)
        self.encoder_input_dims = int(encoder_input_dims)
        self.encoder_conv_channels = int(encoder_conv_channels)
        self.attention_type = attention
        self.attention_dim = int(attention_dim)
        self.attention_filters = int(attention_filters)
        self.attention_width = int(attention_width)
        self.sharpening = float(sharpening)
        self.decoder_units = int(decoder_units)
        self.embedding_dim = int(embedding_dim) if embedding_dim is not None else None
        self.init_scale = float(init_scale)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.forget_bias = float(forget_bias)
        self.ctc_warmup_steps = int(ctc_warmup_steps)
        self.guided_attention_weight = float(guided_attention_weight)
        self.guided_attention_width = float(guided_attention_width)
        if not 0.0 <= float(intermediate_ctc_weight) < 1.0:
            raise ValueError(f"intermediate_ctc_weight must be in [0, 1), got {intermediate_ctc_weight}")
        self.intermediate_ctc_weight = float(intermediate_ctc_weight)
        self.intermediate_ctc_layer = int(intermediate_ctc_layer) or self.encoder_layers // 2
        if self.intermediate_ctc_weight and not 1 <= self.intermediate_ctc_layer < self.encoder_layers:
            raise ValueError(f"intermediate_ctc_layer must name a layer below the top, 1..{self.encoder_layers - 1}"
                             f" (0: the middle), got {intermediate_ctc_layer}")
        self.ctc_self_conditioning = bool(ctc_self_conditioning)
        if self.ctc_self_conditioning and not (self.ctc_weight > 0.0 and self.intermediate_ctc_weight > 0.0):
            raise ValueError("ctc_self_conditioning feeds back the intermediate CTC's posteriors: it needs "
                             "ctc_weight > 0 and intermediate_ctc_weight > 0")
        self.sos_id = int(sos_id) if sos_id is not None else self.vocab_size - 1
        self.eos_id = int(eos_id) if eos_id is not None else self.vocab_size - 1
        if cmvn_mean is None:
            cmvn_mean = np.zeros(DEFAULT_FEATURE_DIM if cmvn_std is None else len(cmvn_std), np.float32)
        if cmvn_std is None:
            cmvn_std = np.ones(len(cmvn_mean), np.float32)
        self.feature_dim = int(np.asarray(cmvn_mean).reshape(-1).shape[0])

        self.cmvn = GlobalCMVN(cmvn_mean, cmvn_std, name="cmvn")
        self.utterance_cmvn = UtteranceCMVN(utterance_cmvn, name="utterance_cmvn")
        # The features are static, delta and delta-delta log-mels (features.FeatureExtractor, `data.num_mel_bins`
        # each): the mel-axis options read them as 3 groups of `num_mel_bins`.
        self.num_mel_bins = self.feature_dim // 3
        bins = max(1, self.num_mel_bins)  # the options refuse it when on and the features are not 3 groups (below)
        self.spec_augment = SpecAugment(**dict(spec_augment or {}), bins=bins, name="spec_augment")
        self.vtlp = VocalTractLengthPerturbation(vtlp_warp, bins=bins, probability=vtlp_probability, name="vtlp")
        self.tilt = SpectralTilt(spectral_tilt, bins=bins, name="spectral_tilt")
        mel_options = {"SpecAugment": self.spec_augment.enabled, "VTLP": self.vtlp.enabled,
                       "spectral_tilt": self.tilt.enabled,
                       "the convolutional front end": self.encoder_conv_channels > 0}
        for option, enabled in mel_options.items():
            if enabled and (self.feature_dim % 3 or not self.num_mel_bins):
                raise ValueError(f"{option} needs features in 3 groups of mel bins (static, delta, delta-delta), "
                                 f"got {self.feature_dim}")
        self.encoder = PyramidalBLSTM(
            num_layers=self.encoder_layers,
            units=self.encoder_units,
            projection_units=self.encoder_projection_units,
            subsample=self.encoder_subsample,
            init_scale=self.init_scale,
            implementation=self.encoder_implementation,
            input_stack=self.encoder_input_stack,
            training_projection_dtype=self.encoder_training_projection_dtype,
            input_dims=self.encoder_input_dims,
            conv_channels=self.encoder_conv_channels,
            conv_bins=bins,
            name="encoder",
        )
        if self.encoder.frontend is not None:  # refused now, as SpecAugment and VTLP, rather than when first called
            self.encoder.frontend.groups(self.encoder_input_dims or self.feature_dim)
        self.ctc_head = CTCHead(self.vocab_size, init_scale=self.init_scale, name="ctc_head")
        self.ctc_conditioning = None
        if self.ctc_self_conditioning:
            init = uniform_initializer(self.init_scale)
            self.ctc_conditioning = keras.layers.Dense(self.encoder_projection_units, kernel_initializer=init,
                                                       bias_initializer=init, name="ctc_conditioning")
        self.decoder = AttentionDecoder(
            self.vocab_size,
            units=self.decoder_units,
            embedding_dim=self.embedding_dim,
            attention=self.attention_type,
            attention_dim=self.attention_dim,
            attention_filters=self.attention_filters,
            attention_width=self.attention_width,
            sharpening=self.sharpening,
            init_scale=self.init_scale,
            name="decoder",
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ctc_loss_tracker = keras.metrics.Mean(name="ctc_loss")
        self.intermediate_ctc_tracker = keras.metrics.Mean(name="intermediate_ctc_loss")
        self.attention_loss_tracker = keras.metrics.Mean(name="attention_loss")
        self.accuracy_tracker = keras.metrics.Mean(name="attention_accuracy")
        self.non_finite_tracker = keras.metrics.Sum(name="non_finite_steps")
        # All variables exist from construction on: nothing is created inside a traced loop, and `.keras`
        # loading and distribution strategies see a fully built model.
        self.build()
        if self.forget_bias:
            self._add_forget_bias(self.forget_bias)

    def _add_forget_bias(self, value: float) -> None:
        """Adds `value` to the forget-gate bias of every LSTM (encoder directions and decoder), on top of the
        uniform initialization (Keras gate order i, f, c, o)."""
        cells = [lstm.cell for blstm in self.encoder.blstms for lstm in (blstm.forward_layer, blstm.backward_layer)]
        for cell in [*cells, self.decoder.cell]:
            bias = keras.ops.convert_to_numpy(cell.bias)
            bias[cell.units : 2 * cell.units] += value
            cell.bias.assign(bias)

    # ------------------------------------------------------------------ structure

    def build(self, input_shape: Any = None) -> None:
        encoder_shape = (None, None, self.encoder_projection_units)
        self.encoder.build((None, None, self.feature_dim))
        self.ctc_head.build(encoder_shape)
        if self.ctc_conditioning is not None:
            self.ctc_conditioning.build((None, None, self.vocab_size))
        self.decoder.build(encoder_shape)
        self.built = True

    @property
    def time_reduction(self) -> int:
        """Feature frames per encoder frame (encoder lengths are `ceil(T / time_reduction)`)."""
        return time_reduction(self.encoder_subsample, self.encoder_input_stack)

    @property
    def compute_ctc(self) -> bool:
        return self.ctc_weight > 0.0

    @property
    def compute_attention(self) -> bool:
        return self.ctc_weight < 1.0

    @property
    def uses_intermediate_ctc(self) -> bool:
        """The CTC loss also reads encoder layer `intermediate_ctc_layer` (`intermediate_ctc_weight` > 0)."""
        return self.compute_ctc and self.intermediate_ctc_weight > 0.0

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        """Keras 3.15 (pinned) first reduces a data batch across replicas and traces a symbolic build when a
        strategy is set; `MultiWorkerMirroredStrategy` cannot reduce a dict batch (ValueError in `fit`). Every
        variable of this model exists from `__init__` on and it compiles no loss or metric objects, so the only
        thing left to build is the optimizer."""
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def compile(self, *args: Any, jit_compile: bool | str = False, **kwargs: Any) -> None:
        """`keras.Model.compile` with XLA off: CTCLoss has no XLA kernel ("auto" is mapped to False)."""
        if jit_compile is True:
            raise ValueError("jit_compile=True is not supported: there is no XLA kernel for CTCLoss")
        super().compile(*args, jit_compile=False, **kwargs)

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Restores the compile state on `.keras` loading (Keras skips it for an overridden `compile`)."""
        config = keras.saving.deserialize_keras_object(config)
        config.pop("jit_compile", None)
        self.compile(**config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    # ------------------------------------------------------------------ forward

    def encode(
        self, features: tf.Tensor, feature_lengths: tf.Tensor, training: bool | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """In training VTLP's warp (`vtlp_warp`) and a spectral tilt (`spectral_tilt`), global CMVN, per-utterance
        CMVN (`utterance_cmvn`), in training SpecAugment's masks (`spec_augment`), then the encoder: (features
        [B, T, D], lengths [B]) -> (h [B, L, P], encoder_lengths [B])."""
        return self.encode_layers(features, feature_lengths, training=training)[-1]

    def encode_layers(
        self, features: tf.Tensor, feature_lengths: tf.Tensor, training: bool | None = None
    ) -> list[tuple[tf.Tensor, tf.Tensor]]:
        """`encode` with every encoder layer's output, bottom to top: `encoder_layers` pairs (h_i [B, L_i, P],
        lengths_i [B]), the last one `encode`'s (`PyramidalBLSTM.layer_outputs`; with `ctc_self_conditioning`
        layer k's pair is h_k before its conditioning)."""
        condition = self._self_condition if self.ctc_self_conditioning else None
        return self.encoder(self._normalized(features, feature_lengths, training), feature_lengths,
                            training=training, condition=condition, all_layers=True)

    def _self_condition(self, layer: int, h: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """Self-conditioned CTC after encoder layer `layer`: h [B, L, P] -> h + ctc_conditioning(softmax(CTC
        logits of h)) on valid frames (padded frames stay zero) after layer `intermediate_ctc_layer`, else h."""
        if layer != self.intermediate_ctc_layer:
            return h
        posteriors = tf.nn.softmax(tf.cast(self.ctc_logits(h), tf.float32), axis=-1)
        valid = tf.expand_dims(tf.cast(self.encoder_mask(h, lengths), h.dtype), -1)
        return h + tf.cast(self.ctc_conditioning(posteriors), h.dtype) * valid

    def _normalized(self, features: tf.Tensor, feature_lengths: tf.Tensor, training: bool | None) -> tf.Tensor:
        """What the encoder reads: `encode`'s steps before the encoder, [B, T, D] -> [B, T, D]."""
        features = tf.convert_to_tensor(features, tf.float32)
        feature_lengths = tf.cast(feature_lengths, tf.int32)
        mask = tf.sequence_mask(feature_lengths, maxlen=tf.shape(features)[1])
        if training and self.vtlp.enabled:
            features = self.vtlp(features, self._augment_seed())
        if training and self.tilt.enabled:
            features = self.tilt(features, feature_lengths, self._augment_seed())
        x = self.cmvn(features, mask=mask)
        if self.utterance_cmvn.mode != "none":
            x = self.utterance_cmvn(x, mask=mask)
        if training and self.spec_augment.enabled:
            x = self.spec_augment(x, feature_lengths, self._augment_seed())
        return x

    def _augment_seed(self) -> tf.Tensor:
        """[2] int64: (the optimizer's update count, the replica's id), so that every update and replica draws
        its own masks and warps, and a resumed run draws those an uninterrupted one would have."""
        optimizer = getattr(self, "optimizer", None)
        step = optimizer.iterations if optimizer is not None else 0
        replica = tf.distribute.get_replica_context()
        replica_id = replica.replica_id_in_sync_group if replica is not None else 0
        return tf.stack([tf.cast(step, tf.int64), tf.cast(replica_id, tf.int64)])

    def ctc_logits(self, h: tf.Tensor) -> tf.Tensor:
        """[B, L, P] -> CTC logits [B, L, V]."""
        return self.ctc_head(h)

    @staticmethod
    def encoder_mask(h: tf.Tensor, encoder_lengths: tf.Tensor) -> tf.Tensor:
        """[B, L] bool, True on valid encoder frames."""
        return tf.sequence_mask(encoder_lengths, maxlen=tf.shape(h)[1])

    def decoder_targets(self, labels: tf.Tensor, label_lengths: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(labels [B, U] padded with 0, lengths [B]) -> (inputs = sos + labels [B, U+1], targets = labels + eos
        [B, U+1], mask [B, U+1] bool over the len+1 valid positions)."""
        labels = tf.cast(labels, tf.int32)
        label_lengths = tf.cast(label_lengths, tf.int32)
        batch = tf.shape(labels)[0]
        sos = tf.fill(tf.stack([batch, 1]), self.sos_id)
        inputs = tf.concat([sos, labels], axis=1)
        padded = tf.concat([labels, tf.zeros(tf.stack([batch, 1]), tf.int32)], axis=1)
        positions = tf.expand_dims(tf.range(tf.shape(padded)[1]), 0)
        lengths = tf.expand_dims(label_lengths, 1)
        targets = tf.where(positions == lengths, self.eos_id, padded)
        mask = positions <= lengths
        return inputs, targets, mask

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> dict[str, tf.Tensor]:
        """Returns dict(ctc_logits [B, L, V], encoder_lengths [B]) plus, when `inputs` has labels and
        label_lengths, attention_logits [B, U+1, V] and attention_weights [B, U+1, L] (teacher forcing)."""
        h, lengths = self.encode(inputs["features"], inputs["feature_lengths"], training=training)
        outputs = {"ctc_logits": self.ctc_logits(h), "encoder_lengths": lengths}
        if "labels" in inputs and "label_lengths" in inputs:
            targets_in, _, _ = self.decoder_targets(inputs["labels"], inputs["label_lengths"])
            logits, weights = self.decoder.teacher_forcing(
                h, self.encoder_mask(h, lengths), targets_in, training=training
            )
            outputs["attention_logits"] = logits
            outputs["attention_weights"] = weights
        return outputs

    # ------------------------------------------------------------------ decoding API (beam search)

    def decoder_initial_state(self, h: tf.Tensor, encoder_lengths: tf.Tensor) -> tuple[tf.Tensor, DecoderState]:
        """-> (h_proj [B, L, A], initial decoder state). See `AttentionDecoder.initial_state`."""
        mask = self.encoder_mask(h, encoder_lengths)
        return self.decoder.precompute(h), self.decoder.initial_state(h, mask)

    def decoder_step(
        self,
        prev_token: tf.Tensor,
        state: DecoderState,
        h: tf.Tensor,
        h_proj: tf.Tensor,
        encoder_lengths: tf.Tensor,
        location_matrix: Any = None,
    ) -> tuple[tf.Tensor, DecoderState]:
        """-> (log_probs [N, V], new_state) for N = B * K rows of tokens and state (K per utterance, consecutive)
        on the B utterances' h [B, L, P], h_proj and encoder_lengths [B]; `location_matrix` from
        `decoder_search_location(h)` (optional). See `AttentionDecoder.step`."""
        mask = self.encoder_mask(h, encoder_lengths)
        return self.decoder.step(prev_token, state, h, h_proj, mask, location_matrix=location_matrix)

    def decoder_search_location(self, h: tf.Tensor) -> Any:
        """The location convolution's matrix form for one search over h [B, L, P], or None (see
        `AttentionDecoder.search_location`)."""
        return self.decoder.search_location(h)

    # ------------------------------------------------------------------ losses

    def compute_losses(
        self, batch: Mapping[str, tf.Tensor], training: bool | None = None, ctc_only: bool = False
    ) -> dict[str, tf.Tensor]:
        """Per-utterance losses and the total.

        Returns a dict with `loss` (scalar, eq. 14 averaged over the batch) and, for the branches that are
        computed, `ctc` [B] (the top layer's), `intermediate_ctc` [B] (`uses_intermediate_ctc`), `attention` [B]
        (summed token NLL), `correct` [B, U+1] float and `token_mask` [B, U+1] float (for teacher-forced
        accuracy).

        `ctc_only` (the CTC warm-up of a joint model): `loss` is the CTC loss alone (weight 1) and the decoder
        does not run; `attention`, `correct` and `token_mask` are zeros of their usual shapes.
        """
        labels = tf.cast(batch["labels"], tf.int32)
        label_lengths = tf.cast(batch["label_lengths"], tf.int32)
        out: dict[str, tf.Tensor] = {}
        layers = self.encode_layers(batch["features"], batch["feature_lengths"], training=training)
        h, lengths = layers[-1]
        if self.uses_intermediate_ctc:
            h_k, lengths_k = layers[self.intermediate_ctc_layer - 1]
            out["intermediate_ctc"] = ctc_lib.ctc_loss(self.ctc_logits(h_k), lengths_k, labels, label_lengths)
        loss = tf.constant(0.0, tf.float32)
        if self.compute_ctc:
            ctc = ctc_lib.ctc_loss(self.ctc_logits(h), lengths, labels, label_lengths)
            out["ctc"] = ctc
            if self.uses_intermediate_ctc:
                weight = self.intermediate_ctc_weight
                ctc = (1.0 - weight) * ctc + weight * out["intermediate_ctc"]
            loss += (1.0 if ctc_only else self.ctc_weight) * tf.reduce_mean(ctc)
        if self.compute_attention and ctc_only:
            shape = tf.shape(labels) + tf.constant([0, 1])  # [B, U + 1]
            out["attention"] = tf.zeros(shape[:1], tf.float32)
            out["correct"] = tf.zeros(shape, tf.float32)
            out["token_mask"] = tf.zeros(shape, tf.float32)
        elif self.compute_attention:
            targets_in, targets, mask = self.decoder_targets(labels, label_lengths)
            logits, weights = self.decoder.teacher_forcing(
                h, self.encoder_mask(h, lengths), targets_in, training=training
            )
            nll = attention_cross_entropy(targets, tf.cast(logits, tf.float32), self.label_smoothing)
            token_mask = tf.cast(mask, tf.float32)
            attention = tf.reduce_sum(nll * token_mask, axis=1)
            if self.guided_attention_weight and training:
                guided = guided_attention_loss(weights, label_lengths + 1, lengths, self.guided_attention_width)
                loss += self.guided_attention_weight * tf.reduce_mean(guided)
            out["attention"] = attention
            out["correct"] = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), targets), tf.float32)
            out["token_mask"] = token_mask
            loss += (1.0 - self.ctc_weight) * tf.reduce_mean(attention)
        out["loss"] = loss
        return out

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        metrics = [self.loss_tracker]
        if self.compute_ctc:
            metrics.append(self.ctc_loss_tracker)
        if self.uses_intermediate_ctc:
            metrics.append(self.intermediate_ctc_tracker)
        if self.compute_attention:
            metrics += [self.attention_loss_tracker, self.accuracy_tracker]
        metrics.append(self.non_finite_tracker)
        return metrics

    def _update_metrics(self, out: dict[str, tf.Tensor], finite: tf.Tensor) -> dict[str, tf.Tensor]:
        weight = tf.cast(finite, tf.float32)

        def safe(x: tf.Tensor) -> tf.Tensor:
            return tf.where(finite, x, tf.zeros_like(x))

        self.loss_tracker.update_state(safe(out["loss"]), sample_weight=weight)
        if self.compute_ctc:
            self.ctc_loss_tracker.update_state(safe(tf.reduce_mean(out["ctc"])), sample_weight=weight)
        if self.uses_intermediate_ctc:
            self.intermediate_ctc_tracker.update_state(safe(tf.reduce_mean(out["intermediate_ctc"])),
                                                       sample_weight=weight)
        if self.compute_attention:
            self.attention_loss_tracker.update_state(safe(tf.reduce_mean(out["attention"])), sample_weight=weight)
            self.accuracy_tracker.update_state(safe(out["correct"]), sample_weight=out["token_mask"] * weight)
        # Summed over replicas when reading the metric: count each skipped step once.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.non_finite_tracker.update_state((1.0 - weight) / replicas)
        return {m.name: m.result() for m in self.metrics}

    @staticmethod
    def _unpack(data: Any) -> Mapping[str, tf.Tensor]:
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return x

    @property
    def uses_ctc_warmup(self) -> bool:
        """A joint model with `ctc_warmup_steps` > 0: its first updates train the encoder by CTC alone."""
        return self.ctc_warmup_steps > 0 and self.compute_ctc and self.compute_attention

    def _losses_and_gradients(
        self, batch: Mapping[str, tf.Tensor], variables: list, replicas: int, ctc_only: bool = False
    ) -> tuple[dict[str, tf.Tensor], list[tf.Tensor | None]]:
        """(compute_losses' dict, gradients of its loss / replicas for `variables`; None where none flows)."""
        with tf.GradientTape() as tape:
            out = self.compute_losses(batch, training=True, ctc_only=ctc_only)
            scaled_loss = out["loss"] / replicas if replicas > 1 else out["loss"]
        return out, tape.gradient(scaled_loss, variables)

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        """One update on eq. 14 (on the CTC loss alone for the first `ctc_warmup_steps` updates of a joint
        model: the decoder, most of a step's time, does not run and gets zero gradients then).

        Non-finite loss or gradients on one device: no update at all (optimizer slots and iteration count
        untouched) and `non_finite_steps` += 1. Under a multi-replica strategy the loss is divided by
        `num_replicas_in_sync` before the gradients (replica gradients are summed); a non-finite step there is
        a zero-gradient step on every replica (variables unchanged, optimizer slots still move)."""
        batch = self._unpack(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.trainable_variables
        if self.uses_ctc_warmup:  # both branches give a gradient for every variable (zeros where none flows)

            def branch(ctc_only: bool) -> tuple[dict[str, tf.Tensor], list[tf.Tensor]]:
                out, grads = self._losses_and_gradients(batch, variables, replicas, ctc_only)
                return out, [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]

            out, grads = tf.cond(
                self.optimizer.iterations < self.ctc_warmup_steps, lambda: branch(True), lambda: branch(False)
            )
        else:
            out, grads = self._losses_and_gradients(batch, variables, replicas)
            pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
            grads = [g for g, _ in pairs]
            variables = [v for _, v in pairs]
        finite = tf.reduce_all([tf.math.is_finite(out["loss"])] + [tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        if not self.optimizer.built:
            with tf.init_scope():
                self.optimizer.build(self.trainable_variables)
        if replicas > 1:
            # A tf.cond around the optimizer's cross-replica merge_call is not allowed. All replicas agree on
            # the flag, then zero their gradients: the variables do not move, but the optimizer still takes a
            # zero step (iterations and adaptive slots such as AdaDelta's accumulators still change).
            bad = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32)
            )
            finite = tf.equal(bad, 0.0)
            grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
            self.optimizer.apply(grads, variables)
        else:

            def apply() -> tf.Tensor:
                self.optimizer.apply(grads, variables)
                return tf.constant(True)

            tf.cond(finite, apply, lambda: tf.constant(False))
        return _for_keras_reduction(self._update_metrics(out, finite))

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        batch = self._unpack(data)
        out = self.compute_losses(batch, training=False)
        return _for_keras_reduction(self._update_metrics(out, tf.math.is_finite(out["loss"])))

    # ------------------------------------------------------------------ serialization

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            ctc_weight=self.ctc_weight,
            encoder_layers=self.encoder_layers,
            encoder_units=self.encoder_units,
            encoder_projection_units=self.encoder_projection_units,
            encoder_subsample=list(self.encoder_subsample),
            encoder_implementation=self.encoder_implementation,
            encoder_input_stack=self.encoder_input_stack,
            encoder_training_projection_dtype=self.encoder_training_projection_dtype,
            encoder_input_dims=self.encoder_input_dims,
            encoder_conv_channels=self.encoder_conv_channels,
            attention=self.attention_type,
            attention_dim=self.attention_dim,
            attention_filters=self.attention_filters,
            attention_width=self.attention_width,
            sharpening=self.sharpening,
            decoder_units=self.decoder_units,
            embedding_dim=self.embedding_dim,
            cmvn_mean=[float(v) for v in keras.ops.convert_to_numpy(self.cmvn.mean)],
            cmvn_std=[float(v) for v in keras.ops.convert_to_numpy(self.cmvn.std)],
            utterance_cmvn=self.utterance_cmvn.mode,
            init_scale=self.init_scale,
            sos_id=self.sos_id,
            eos_id=self.eos_id,
            label_smoothing=self.label_smoothing,
            forget_bias=self.forget_bias,
            ctc_warmup_steps=self.ctc_warmup_steps,
            guided_attention_weight=self.guided_attention_weight,
            guided_attention_width=self.guided_attention_width,
            spec_augment=self.spec_augment.mask_settings(),
            vtlp_warp=list(self.vtlp.warp_range),
            vtlp_probability=self.vtlp.probability,
            spectral_tilt=self.tilt.max_slope,
            intermediate_ctc_weight=self.intermediate_ctc_weight,
            intermediate_ctc_layer=self.intermediate_ctc_layer,
            ctc_self_conditioning=self.ctc_self_conditioning,
        )
        return config


def guided_attention_loss(
    weights: tf.Tensor, token_lengths: tf.Tensor, frame_lengths: tf.Tensor, width: float = 0.2
) -> tf.Tensor:
    """Attention mass away from the diagonal, per utterance (guided attention, Tachibana et al. 2018; not in
    the paper): `sum_{u < U, l < L} a[u, l] * (1 - exp(-((l + .5) / L - (u + .5) / U)^2 / (2 width^2)))`.

    A training-only prior that speech is read at a roughly steady rate: it pulls the attention towards the
    diagonal from the first updates, which the decoder otherwise finds only after many epochs.

    Args:
      weights: [B, U', L'] attention weights (teacher forcing); token_lengths: [B] valid tokens (labels + eos);
        frame_lengths: [B] valid encoder frames; width: g, the diagonal band's width as a fraction.
    Returns:
      [B] float32, each in [0, token_lengths].
    """
    weights = tf.cast(weights, tf.float32)
    shape = tf.shape(weights)
    tokens = tf.cast(tf.maximum(token_lengths, 1), tf.float32)[:, None, None]
    frames = tf.cast(tf.maximum(frame_lengths, 1), tf.float32)[:, None, None]
    u = tf.cast(tf.range(shape[1]), tf.float32)[None, :, None]
    l_ = tf.cast(tf.range(shape[2]), tf.float32)[None, None, :]
    penalty = 1.0 - tf.exp(-tf.square((l_ + 0.5) / frames - (u + 0.5) / tokens) / (2.0 * width**2))
    valid = tf.logical_and(
        tf.sequence_mask(token_lengths, shape[1])[:, :, None], tf.sequence_mask(frame_lengths, shape[2])[:, None, :]
    )
    return tf.reduce_sum(weights * penalty * tf.cast(valid, tf.float32), axis=[1, 2])


def attention_cross_entropy(targets: tf.Tensor, logits: tf.Tensor, label_smoothing: float = 0.0) -> tf.Tensor:
    """Token cross-entropy [B, U] of logits [B, U, V] against targets [B, U]; with `label_smoothing` = e the
    target distribution is (1 - e) on the target plus e spread uniformly over all V labels (ESPnet's lsm_weight;
    not in the paper). The teacher-forced accuracy and decoding are unaffected."""
    if not label_smoothing:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    vocab = tf.shape(logits)[-1]
    smoothed = tf.one_hot(targets, vocab) * (1.0 - label_smoothing) + label_smoothing / tf.cast(vocab, tf.float32)
    return tf.nn.softmax_cross_entropy_with_logits(labels=smoothed, logits=logits)


def _for_keras_reduction(logs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Keras 3.15 (pinned) reduces step outputs under `MultiWorkerMirroredStrategy` with
    `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars: give it shape [1] there, so the logs become
    the mean over all workers (scalars again). Other strategies reduce scalars themselves."""
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def _section(config: Any, key: str) -> Any:
    """`config.key` if present (a full experiment config), else `config` itself (already the section)."""
    try:
        return config[key] if key in config else config
    except TypeError:
        return config


def _spec_augment_settings(model: Any) -> dict[str, Any] | None:
    """`model.spec_augment` as the model's keyword argument (None if the config has no such section)."""
    if "spec_augment" not in model:
        return None
    section = model["spec_augment"]
    return {key: section[key] for key in MASK_SETTINGS if key in section}


def _cmvn_arrays(cmvn: Any) -> tuple[Any, Any]:
    if cmvn is None:
        return None, None
    if hasattr(cmvn, "mean") and hasattr(cmvn, "std"):
        return np.asarray(cmvn.mean, np.float32), np.asarray(cmvn.std, np.float32)
    if isinstance(cmvn, Mapping):
        return np.asarray(cmvn["mean"], np.float32), np.asarray(cmvn["std"], np.float32)
    mean, std = cmvn
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def build_model(model_config: Any, loss_config: Any, vocab: Any, cmvn: Any = None) -> JointCTCAttention:
    """Builds the model from ml_collections configs.

    Args:
      model_config: ConfigDict with (or being) `model`: encoder.{num_layers, units, projection_units,
        subsample, implementation, input_stack, training_projection_dtype, input_dims, conv_channels}, attention
        ("location"|"content"), attention_dim, attention_filters, attention_width, sharpening, decoder_units,
        init_scale, forget_bias, utterance_cmvn, ctc_self_conditioning, vtlp_warp, vtlp_probability,
        spectral_tilt, spec_augment.{freq_masks, freq_width, time_masks, time_width, max_time_fraction}.
      loss_config: ConfigDict with (or being) `loss`: ctc_weight (lambda of eq. 14), label_smoothing,
        ctc_warmup_steps, guided_attention_weight, guided_attention_width, intermediate_ctc_weight,
        intermediate_ctc_layer.
      vocab: a `text.Vocabulary` (size, sos_id, eos_id).
      cmvn: None (identity normalization), a `CMVNStats`-like object with `.mean`/`.std`, a dict with
        "mean"/"std", or a (mean, std) pair.
    """
    model = _section(model_config, "model")
    loss = _section(loss_config, "loss")
    encoder = model["encoder"]
    mean, std = _cmvn_arrays(cmvn)
    return JointCTCAttention(
        vocab_size=vocab.size,
        ctc_weight=float(loss["ctc_weight"]),
        encoder_layers=int(encoder["num_layers"]),
        encoder_units=int(encoder["units"]),
        encoder_projection_units=int(encoder["projection_units"]),
        encoder_subsample=tuple(encoder["subsample"]),
        encoder_implementation=str(encoder.get("implementation", "fused")),
        encoder_input_stack=int(encoder.get("input_stack", 1)),
        encoder_training_projection_dtype=str(encoder.get("training_projection_dtype", "float32")),
        encoder_input_dims=int(encoder.get("input_dims", 0)),
        encoder_conv_channels=int(encoder.get("conv_channels", 0)),
        attention=str(model.get("attention", "location")),
        attention_dim=int(model.get("attention_dim", 320)),
        attention_filters=int(model.get("attention_filters", 10)),
        attention_width=int(model.get("attention_width", 100)),
        sharpening=float(model.get("sharpening", 2.0)),
        decoder_units=int(model.get("decoder_units", 320)),
        init_scale=float(model.get("init_scale", 0.1)),
        cmvn_mean=mean,
        cmvn_std=std,
        utterance_cmvn=str(model.get("utterance_cmvn", "none")),
        sos_id=vocab.sos_id,
        eos_id=vocab.eos_id,
        label_smoothing=float(loss.get("label_smoothing", 0.0)),
        forget_bias=float(model.get("forget_bias", 0.0)),
        ctc_warmup_steps=int(loss.get("ctc_warmup_steps", 0)),
        guided_attention_weight=float(loss.get("guided_attention_weight", 0.0)),
        guided_attention_width=float(loss.get("guided_attention_width", 0.2)),
        spec_augment=_spec_augment_settings(model),
        vtlp_warp=tuple(model.get("vtlp_warp", (1.0, 1.0))),
        vtlp_probability=float(model.get("vtlp_probability", 1.0)),
        spectral_tilt=float(model.get("spectral_tilt", 0.0)),
        intermediate_ctc_weight=float(loss.get("intermediate_ctc_weight", 0.0)),
        intermediate_ctc_layer=int(loss.get("intermediate_ctc_layer", 0)),
        ctc_self_conditioning=bool(model.get("ctc_self_conditioning", False)),
    )


@keras.saving.register_keras_serializable(package="tf_jointctc")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate: linear warm-up from 0 to `peak` over `warmup_steps`, then

    - "inverse_sqrt": `peak * sqrt(warmup_steps / step)` (Transformer-style; no end point needed), or
    - "cosine": cosine from `peak` down to `peak * final_fraction` at `total_steps`, flat after it.

    `elapsed_fraction` (optional, "cosine" only): a scalar float32 variable in [0, 1], the fraction of a wall-time
    budget spent (`train.max_minutes`; `training.callbacks.TimeBudget` sets it before every batch). The cosine's
    progress past the warm-up is then the larger of the step count's and this fraction, so the rate reaches its
    floor when the budget ends even if `total_steps` would come later. It is a run-time input, not part of
    `get_config`: a schedule rebuilt from its config follows the step count alone.
    """

    def __init__(self, peak: float, warmup_steps: int, kind: str = "cosine", total_steps: int = 0,
                 final_fraction: float = 0.05, elapsed_fraction: tf.Variable | None = None):
        if kind not in ("inverse_sqrt", "cosine"):
            raise ValueError(f"schedule must be 'inverse_sqrt' or 'cosine', got {kind!r}")
        if kind == "cosine" and total_steps <= warmup_steps:
            raise ValueError(f"cosine schedule needs total_steps ({total_steps}) > warmup_steps ({warmup_steps})")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.kind = kind
        self.total_steps = int(total_steps)
        self.final_fraction = float(final_fraction)
        self.elapsed_fraction = elapsed_fraction

    def __call__(self, step: Any) -> tf.Tensor:
        step = tf.cast(step, tf.float32) + 1.0
        warmup = tf.cast(max(self.warmup_steps, 1), tf.float32)
        ramp = self.peak * tf.minimum(step / warmup, 1.0)
        if self.kind == "inverse_sqrt":
            return tf.where(step < warmup, ramp, self.peak * tf.sqrt(warmup / step))
        span = float(self.total_steps - self.warmup_steps)
        progress = (step - warmup) / span
        if self.elapsed_fraction is not None:
            progress = tf.maximum(progress, tf.cast(self.elapsed_fraction, tf.float32))
        progress = tf.clip_by_value(progress, 0.0, 1.0)
        floor = self.peak * self.final_fraction
        cosine = floor + (self.peak - floor) * 0.5 * (1.0 + tf.cos(np.pi * progress))
        return tf.where(step < warmup, ramp, cosine)

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "kind": self.kind,
                "total_steps": self.total_steps, "final_fraction": self.final_fraction}


def learning_rate(
    optimizer_config: Any, total_steps: int = 0, elapsed_fraction: tf.Variable | None = None
) -> float | WarmupDecay:
    """The configured learning rate: a float for `optimizer.schedule = "constant"` (default), else a
    `WarmupDecay` with `optimizer.warmup_steps` and `optimizer.final_fraction`; "cosine" needs `total_steps`
    and follows `elapsed_fraction` too when given (a wall-time budget, see `WarmupDecay`)."""
    config = _section(optimizer_config, "optimizer")
    peak = float(config.get("learning_rate", 1e-3))
    kind = str(config.get("schedule", "constant"))
    if kind == "constant":
        return peak
    return WarmupDecay(peak, int(config.get("warmup_steps", 0)), kind, total_steps,
                       float(config.get("final_fraction", 0.05)),
                       elapsed_fraction=elapsed_fraction if kind == "cosine" else None)


def make_optimizer(
    optimizer_config: Any, total_steps: int = 0, elapsed_fraction: tf.Variable | None = None
) -> keras.optimizers.Optimizer:
    """Optimizer from config keys optimizer.{name, learning_rate, rho, epsilon, clip_norm} and the learning
    rate schedule of `learning_rate` (optimizer.{schedule, warmup_steps, final_fraction}; `total_steps` and
    `elapsed_fraction` for "cosine").

    "adadelta" (paper; defaults learning_rate 1.0, rho 0.95, epsilon 1e-8) or "adam" (defaults learning_rate
    1e-3, epsilon 1e-7). `clip_norm` > 0 sets `global_clipnorm` (gradient-norm clipping, paper [20]); None or
    <= 0 disables it.
    """
    config = _section(optimizer_config, "optimizer")

    def get(key: str, default: Any) -> Any:
        value = config.get(key, default) if hasattr(config, "get") else getattr(config, key, default)
        return default if value is None else value

    name = str(get("name", "adadelta")).lower()
    clip = get("clip_norm", None)
    clip = float(clip) if clip is not None and float(clip) > 0 else None
    if name == "adadelta":
        return keras.optimizers.Adadelta(
            learning_rate=float(get("learning_rate", 1.0)),
            rho=float(get("rho", 0.95)),
            epsilon=float(get("epsilon", 1e-8)),
            global_clipnorm=clip,
        )
    if name == "adam":
        return keras.optimizers.Adam(
            learning_rate=learning_rate(config, total_steps, elapsed_fraction),
            epsilon=float(get("epsilon", 1e-7)),
            global_clipnorm=clip,
        )
    raise ValueError(f"unknown optimizer {name!r}: expected 'adadelta' or 'adam'")
