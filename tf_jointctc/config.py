"""Typed defaults shared by every config in `configs/` (the paper's section 3.2 unless noted).

Each config file calls `base_config()` and overrides what differs, so every key exists in every config.
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    """The paper's WSJ system (section 3.2) with data paths left for the user to set."""
    config = ml_collections.ConfigDict()
    config.seed = 1

    config.data = ml_collections.ConfigDict()
    config.data.train = ""  # JSONL manifest or Kaldi data dir (docs/interfaces.md, "Public contract")
    config.data.dev = ""
    config.data.cache_dir = ""  # TFRecord shards; "" -> <workdir>/cache
    config.data.num_shards = 8
    config.data.max_seconds = 30.0  # longer utterances are skipped with a logged count
    # Mel bins of the log-mel features (the paper's 40; ESPnet and WeNet recipes use 80): the model reads static,
    # delta and delta-delta log-mels, 3 x num_mel_bins per frame, and its exports compute the same from audio.
    config.data.num_mel_bins = 40
    # Training computes each utterance's features once, in the first pass, and keeps them in memory for the
    # later passes (not in the paper; ~170 MB per hour of audio). The batches differ from those of a run
    # without it, and are as reproducible. False: features computed for every batch.
    config.data.cache_features = False
    # Noise mixed into train utterances anew in every pass (not in the paper; data/train_noise.py): with chance
    # `probability` (0 = off) an utterance gets babble of `babble_talkers` train utterances (from a bank of
    # `babble_bank`) or white, pink or brown noise (`kinds`, `weights`) at an SNR uniform in `snr_db`, all drawn
    # again each pass. The features are then computed per batch: it needs data.cache_features = False.
    # A curriculum over passes: with `ramp_passes` N > 0, pass p (0-based) uses `initial_probability` + (probability
    # - initial_probability) x min(p / N, 1); N = 0: `probability` in every pass.
    config.data.train_noise = ml_collections.ConfigDict({
        "probability": 0.0,
        "initial_probability": 0.0,
        "ramp_passes": 0,
        "snr_db": (0.0, 20.0),
        "kinds": ("babble", "white", "pink", "brown"),
        "weights": (0.4, 0.2, 0.2, 0.2),
        "babble_talkers": (3, 6),
        "babble_bank": 40,
    })
    # Speed perturbation drawn anew each pass (not in the paper; data/speed_perturbation.py): every train
    # utterance is played at a speed drawn uniformly from these factors (Kaldi's and ESPnet's 0.9, 1.0, 1.1),
    # band-limited, so duration, pitch and formants scale together; (1.0,) is off. Needs data.cache_features =
    # False.
    config.data.speed_perturbation = (1.0,)
    # Multi-worker runs with a shared cache_dir: the chief prepares it, the other workers wait this long for it.
    config.data.cache_wait_seconds = 3600.0

    config.model = ml_collections.ConfigDict()
    config.model.encoder = ml_collections.ConfigDict()
    config.model.encoder.num_layers = 4  # 4-layer BLSTM
    config.model.encoder.units = 320  # cells per layer and direction
    config.model.encoder.projection_units = 320  # linear projection after each BLSTM layer
    # Per-layer input subsampling: the paper's top two layers read every second frame of the layer below
    # (layer inputs T, T, T/2, T/4). ESPnet's blstmp subsamples after layers 1 and 2: (1, 2, 2, 1).
    config.model.encoder.subsample = (1, 1, 2, 2)
    # How the BLSTMs are computed, not what: "fused" (both directions in one loop, hand-written backward pass;
    # faster on a CPU), "keras" (keras.layers.Bidirectional(LSTM), the reference; cuDNN on a GPU) or "auto"
    # ("keras" when a GPU is visible, else "fused"; jointctc-train logs the choice and records it in
    # <workdir>/runtime.json). Same weights and checkpoints.
    config.model.encoder.implementation = "auto"
    # Feature frames stacked into one before the first BLSTM (not in the paper; 1 = the paper's encoder). With
    # k > 1 every BLSTM runs at 1/k of the frame rate. Keep at least ~2 encoder frames per output character.
    config.model.encoder.input_stack = 1
    # The encoder reads the first N features of each frame (not in the paper): 40 = the static log-mels without
    # deltas and delta-deltas (layers/encoder.py); 0 = all 120, the paper's input.
    config.model.encoder.input_dims = 0
    # Channels of a 2-D convolutional front end before the stacking (not in the paper; Hori et al. 2017's VGG
    # encoder at CPU size: two 3 x 3 convolutions over time and mel bins, each halving the mel axis; 0 = none).
    config.model.encoder.conv_channels = 0
    # The dtype of the fused BLSTMs' input-projection GEMMs in training (not in the paper): "float32" or
    # "bfloat16" (float32 weights, recurrence and inference), or "auto" (bfloat16 where the CPU multiplies it
    # natively, float32 elsewhere). With AMX-BF16: 1.10x per step of the WSJ architecture, 1.03x of the demo's
    # (docs/performance.md); no config uses it.
    config.model.encoder.training_projection_dtype = "float32"
    config.model.attention = "location"  # "location" (eq. 9, location-based) or "content"
    config.model.attention_dim = 320
    config.model.attention_filters = 10  # 10 convolution filters ...
    config.model.attention_width = 100  # ... of width 100 (ESPnet: 2 * 100 + 1 = 201 taps)
    config.model.sharpening = 2.0  # gamma in eq. 10
    config.model.decoder_units = 320  # 1-layer LSTM decoder
    config.model.init_scale = 0.1  # uniform in [-0.1, 0.1]
    config.model.forget_bias = 0.0  # added to every LSTM's initial forget-gate bias (not in the paper: 0)
    # Per-utterance normalization after the global CMVN (not in the paper): "none", "mean" (subtract each
    # utterance's mean feature vector) or "mean_var" (and divide by its standard deviation); statistics over the
    # valid frames only, computed inside the model, so the exported graphs do it too (features.UtteranceCMVN).
    config.model.utterance_cmvn = "none"
    # Self-conditioned CTC (not in the paper; Nozaki & Komatsu 2021, ESPnet's interctc_use_conditioning): the
    # encoder layer above `loss.intermediate_ctc_layer` reads that layer's output plus a linear map of its CTC
    # posteriors, in training and in decoding and exports alike (one [vocab] -> [projection] Dense added).
    # Needs `loss.intermediate_ctc_weight` > 0. False: off.
    config.model.ctc_self_conditioning = False
    # VTLP in training (not in the paper; layers/vtlp.py, Jaitly & Hinton 2013): every utterance's mel axis is
    # warped by a factor uniform in (low, high), drawn per update, before CMVN, as a shorter or longer vocal tract
    # would move its formants; tempo unchanged. (1.0, 1.0): off.
    config.model.vtlp_warp = (1.0, 1.0)
    # The chance that VTLP warps a given utterance (each drawn per update; the rest keep their voice): 1.0 warps
    # every one.
    config.model.vtlp_probability = 1.0
    # Spectral tilt in training (not in the paper; layers/spectral_tilt.py): every utterance's static log-mels get
    # a straight line across the mel axis, slope uniform in +-spectral_tilt nats (top bin against bottom), drawn
    # per update, before CMVN, as a brighter or darker microphone or voice would. 0.0: off.
    config.model.spectral_tilt = 0.0
    # SpecAugment in training (not in the paper; layers/spec_augment.py): per utterance `freq_masks` bands of up
    # to `freq_width` of the 40 mel bins (the same bins of the static, delta and delta-delta features) and
    # `time_masks` spans of up to min(`time_width`, `max_time_fraction` x length) feature frames, set to 0 after
    # CMVN. 0 masks: off. Drawn per update, so a resumed run draws the same masks.
    config.model.spec_augment = ml_collections.ConfigDict()
    config.model.spec_augment.freq_masks = 0
    config.model.spec_augment.freq_width = 8
    config.model.spec_augment.time_masks = 0
    config.model.spec_augment.time_width = 20
    config.model.spec_augment.max_time_fraction = 0.2

    config.loss = ml_collections.ConfigDict()
    config.loss.ctc_weight = 0.2  # lambda in eq. 14; 0.2 was the paper's best; 1 = CTC, 0 = attention
    config.loss.label_smoothing = 0.0  # attention targets' label smoothing (not in the paper; ESPnet WSJ: 0.05)
    # A joint model's first N updates train by the CTC loss alone, without running the decoder (not in the
    # paper; 0 = eq. 14 from the first update).
    config.loss.ctc_warmup_steps = 0
    # Guided attention (not in the paper): weight x the attention mass off the diagonal band of relative width
    # `guided_attention_width` is added to the training loss. 0 = eq. 14 alone.
    config.loss.guided_attention_weight = 0.0
    config.loss.guided_attention_width = 0.2
    # Intermediate CTC (not in the paper; Lee & Watanabe 2021, ESPnet's interctc_weight): the CTC loss becomes
    # (1 - w) CTC(top layer) + w CTC(encoder layer k) through the same CTC head, in the loss only (decoding
    # and exports are unchanged). w = 0: off; k is 1-based, 0 = the middle layer (num_layers // 2).
    config.loss.intermediate_ctc_weight = 0.0
    config.loss.intermediate_ctc_layer = 0

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adadelta"  # AdaDelta with gradient clipping (section 3.2)
    config.optimizer.learning_rate = 1.0
    config.optimizer.rho = 0.95
    config.optimizer.epsilon = 1e-8
    config.optimizer.clip_norm = 5.0  # global gradient-norm clipping; the paper gives no value, ESPnet uses 5
    # Adam only (not in the paper): "constant", "cosine" (warm-up, then cosine to final_fraction x the peak
    # at the last step of train.epochs) or "inverse_sqrt" (warm-up, then 1/sqrt(step)).
    config.optimizer.schedule = "constant"
    config.optimizer.warmup_steps = 0
    config.optimizer.final_fraction = 0.05

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 15  # the paper gives none; ESPnet's WSJ recipe trains 15
    config.train.batch_size = 30  # ESPnet's WSJ recipe
    config.train.max_non_finite_steps = 20  # consecutive non-finite losses that stop training
    config.train.alignment_images = 3  # dev utterances whose attention alignment is logged every epoch (0: none)
    # Data set (manifest or Kaldi dir) whose first `alignment_images` utterances are aligned; "" = dev.
    config.train.alignment_data = ""
    # Utterances in the shuffle buffer; 0: the whole train split (every pass a full shuffle). The prepared shards
    # hold the utterances in manifest order, which for the built-in corpus is voice by voice (~680 utterances
    # each), so 2,000 mixes only ~3 voices at a time (docs/accuracy.md, stop 35). With `data.cache_features` the
    # buffer holds references to the cached features; without it, waveforms (~230 MB per hour of audio).
    config.train.shuffle_buffer = 2000
    # 0: an epoch is one pass over the train data (the paper). N > 0: an epoch is N updates drawn from an
    # endless stream of passes, each shuffled by (seed, pass), so dev evaluation and checkpoints come every N
    # updates and a resumed run continues with exactly the batches it would have seen.
    config.train.steps_per_epoch = 0
    # 0: checkpoints at epoch ends only. N > 0: also a mid-epoch checkpoint every N updates of an epoch (weights,
    # optimizer and position), from which a killed run resumes inside the epoch with the batches it had not seen.
    config.train.checkpoint_every_steps = 0
    # 0: every batch holds batch_size utterances. N > 0: a length bucket's batch holds at most N feature frames
    # (batch size x the bucket's longest utterance), and at most batch_size utterances.
    config.train.max_frames_per_batch = 0
    # Length buckets of the training batches (not in the paper). 0: at the train split's frame-count quartiles and
    # 90th percentile (5 buckets). N >= 2: N buckets of about equal size (less padding per batch: with 8 the demo's
    # step saw 8-13 % more utterances per second alone on the machine, but no more updates beside another training,
    # and was level on dev: row fb of docs/accuracy.md).
    config.train.length_buckets = 0
    # 0: train.epochs decide when training ends. M > 0: a wall-time budget as well (not in the paper): training
    # ends after the batch at which M minutes of training (dev evaluations included, data preparation not) are
    # spent, with that epoch's dev evaluation and checkpoint, and a cosine schedule's progress is the larger of
    # the step count's and the spent fraction of M (so the rate reaches its floor with the budget). Such a run
    # depends on the machine's speed: a resumed one is not bit-identical to an uninterrupted one. One process
    # only (not with --strategy multi_worker or tpu).
    config.train.max_minutes = 0.0
    # d > 0 (not in the paper): an exponential moving average of the weights with decay d (warmed up as
    # min(d, (1 + t) / (10 + t)) at update t) is what dev evaluation, the best checkpoint, evaluation and export
    # use; training itself is unchanged, and the history logs the dev CER of both (`dev_cer`, `dev_cer_raw`).
    # 0: the weights as trained.
    config.train.ema_decay = 0.0
    # TensorFlow's CPU thread pools for jointctc-train (not in the paper; 0: TensorFlow's default, one thread per
    # core): threads per op (intra) and ops run at once (inter). A small model's many small ops can run faster
    # one thread each, side by side (docs/performance.md). Applied before TensorFlow starts; recorded in
    # <workdir>/runtime.json.
    config.train.intra_op_threads = 0
    config.train.inter_op_threads = 0

    config.decode = ml_collections.ConfigDict()
    config.decode.beam = 20
    config.decode.length_penalty = 0.1  # per output token; paper: 0.1 for WSJ, 0.3 for CHiME-4
    config.decode.ctc_weight = 0.3  # joint decoding weight (ESPnet's WSJ recipe)
    config.decode.max_length_ratio = 1.0  # max output tokens per encoder frame
    config.decode.min_length_ratio = 0.0  # output tokens per encoder frame before eos is allowed (ESPnet's minlenratio)
    # The coverage term (not in the paper; Chorowski & Jaitly 2017), attention and joint modes: + coverage_weight per
    # encoder frame whose attention summed over the hypothesis' tokens exceeds coverage_threshold. 0 = none.
    config.decode.coverage_weight = 0.0
    config.decode.coverage_threshold = 0.5
    # Attention and joint modes (not in the paper): no hypothesis may hold more than max_repeats consecutive copies of
    # a unit of 2 to 24 tokens ("the the the" at 2), against the attention beam's loops. 0 = no limit.
    config.decode.max_repeats = 0
    # Attention and joint modes (not in the paper): a hypothesis may emit at most max_attention_stall tokens in a row
    # whose attention peak does not pass the furthest frame it has reached; then it may only end, against the attention
    # beam's loops over frames it has read ("you could of the could the could"). 0 = no limit.
    config.decode.max_attention_stall = 0
    # Shallow fusion with a character LM (issue 13; not in the paper): a jointctc-train-lm work dir and its
    # weight beta in `score += beta * log p_lm` for the attention and joint modes. "" / 0 = no LM. The weight is
    # the one used *when* an LM is fused: a config may hold it while its evaluations run with and without an LM.
    config.decode.lm_workdir = ""
    config.decode.lm_weight = 0.0
    # The attention mode's own beta and length bonus when an LM is fused (jointctc-eval --mode attention with an
    # LM, and the exports' attention_beam signature): None keeps lm_weight / length_penalty.
    config.decode.attention_lm_weight = ml_collections.config_dict.placeholder(float)
    config.decode.attention_lm_length_penalty = ml_collections.config_dict.placeholder(float)
    # The joint mode's own CTC weight when an LM is fused (jointctc-eval --mode joint with an LM, and the exports'
    # joint serving_default): None keeps ctc_weight, which is then the weight without an LM.
    config.decode.joint_lm_ctc_weight = ml_collections.config_dict.placeholder(float)
    return config


def lm_base_config() -> ml_collections.ConfigDict:
    """A character LSTM language model (`jointctc-train-lm`, issue 13) over the recognizer's vocabulary."""
    config = ml_collections.ConfigDict()
    config.seed = 1

    config.data = ml_collections.ConfigDict()
    # Comma-separated text sources: plain (.txt) or gzipped (.gz) text, one sentence per line, or JSONL
    # manifests (.jsonl: their transcripts). `data.lm_text` holds the skip rules.
    config.data.train = ""
    config.data.dev = ""
    config.data.max_length = 400  # longer sentences (labels) are skipped with a logged count

    config.model = ml_collections.ConfigDict()
    config.model.layers = 1  # stacked LSTM layers
    config.model.units = 256  # cells per layer
    config.model.embedding_dim = 64
    config.model.dropout = 0.0  # on the embedding and between layers, training only
    config.model.init_scale = 0.1  # uniform in [-0.1, 0.1], as the recognizer
    # "bfloat16": the LSTM matmuls' operands in training (float32 weights, states, results and inference);
    # "auto": bfloat16 where the CPU multiplies it natively (AMX-BF16, AVX512-BF16), float32 elsewhere
    config.model.training_dtype = "float32"

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 2e-3
    config.optimizer.clip_norm = 5.0
    config.optimizer.schedule = "cosine"  # see base_config
    config.optimizer.warmup_steps = 100
    config.optimizer.final_fraction = 0.05
    config.optimizer.rho = 0.95
    config.optimizer.epsilon = 1e-8

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 4
    config.train.batch_size = 64  # sentences per update
    config.train.steps_per_epoch = 0  # 0: an epoch is a pass over the text, else N updates of passes in turn
    config.train.checkpoint_every_steps = 0  # as base_config's
    config.train.max_minutes = 0.0  # wall-time budget, as base_config's (0: none; the cosine follows it)
    return config


def encoder_time_reduction(config: ml_collections.ConfigDict) -> int:
    """Feature frames per encoder frame of `config.model.encoder` (`layers.encoder.time_reduction`): what
    data preparation uses to drop utterances whose labels CTC cannot emit."""
    from tf_jointctc.layers.encoder import time_reduction  # imports Keras: only when asked

    encoder = config.model.encoder
    return time_reduction(encoder.subsample, encoder.get("input_stack", 1))
