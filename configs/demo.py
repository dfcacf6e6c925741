"""CPU-sized default for `make demo`: the paper's model (a 4-layer BLSTM encoder with projections, location
attention, 1-layer LSTM decoder, joint CTC-attention loss) trained by a recipe for 20 minutes of a 2-core CPU.

How it differs from the paper's recipe (section 3.2; `configs/demo_paper_recipe.py` is that recipe at width 128,
the demo's width until stop 42), and why (measurements in docs/accuracy.md):
- Width 160 instead of 320 (encoder cells and projections, attention and decoder; 2.49 M parameters), so that it
  trains in 20 minutes on 2 cores. 160 rather than 128 (1.67 M): 1.23x the time per update, and at about equal
  compute (3,400 updates against 4,200, the same wall time when trained side by side) ahead in dev CER with
  both seeds: CTC greedy 13.8 / 14.4 against 15.1 / 15.1, joint + LM dev -1.0, dev_noisy -1.3, dev_unseen_voice
  -0.3 (row w160 of docs/accuracy.md). The budget holds fewer updates of it (how many: docs/accuracy.md's `make
  demo` sections). The encoder at 192 with the rest at 160 (1.14x per update) was level with this at equal wall
  time with joint + LM (row e192): not taken.
- Input stacking: 3 feature frames form one encoder frame, and no pyramid (33 frames/s at every BLSTM layer):
  half the paper's BLSTM frame-steps, and ~2 encoder frames per character of the corpus' 15-19 characters/s.
- A convolutional front end before the stacking (`model.encoder.conv_channels` 16: two 3 x 3 convolutions over
  time and mel bins, each halving the mel axis, the static, delta and delta-delta log-mels as input channels; a
  CPU-sized version of Hori et al. 2017's VGG encoder), so the first BLSTM reads 3 x 160 learned features instead
  of 3 x 120 log-mels. At equal wall time (four runs side by side under one 74-minute budget each: ~8 % fewer
  updates) ahead with both seeds on all three dev sets, joint + LM: dev -0.73, dev_noisy -2.72, dev_unseen_voice
  -1.49 CER points on average (row cv of docs/accuracy.md). 8 channels (the first BLSTM reads 3 x 80) fit 4.4 %
  more updates at equal wall time and were level with joint + LM (dev 0.00, dev_noisy -0.55 with the seeds split,
  dev_unseen_voice -0.57; row cc8): not taken. 80 mel bins (`data.num_mel_bins`) with 8 channels, the same 3 x 160
  BLSTM inputs, lost joint + LM dev with both seeds (+0.52) and were split on dev_noisy (+0.71; row mel80): not taken.
- Adam (peak 2e-3, 200 warm-up updates, cosine decay to 30 % of the peak at the last update) instead of
  AdaDelta (a decay to 5 % stalled dev CER for the last quarter of the budget: 22.8 against 20.9 after the same
  2,800 updates, rows a6 and a14 of docs/accuracy.md; with seed 2 on this recipe 24.5 against 22.1, row a14s2);
  every LSTM's forget-gate bias starts at +1.
- Batches of 8 utterances capped at 3,200 feature frames (the paper's batch size). Until stop 55 the demo took 16
  (6,400 frames); a joint update of 8 costs about half one of 16 (0.45 against 0.85-0.92 s on the AVX2-only CPU),
  so the budget holds twice the updates on about as many utterances, and at equal wall time batch 8 was ahead
  with both seeds, joint + LM: dev -0.78, dev_noisy -1.47, dev_unseen_voice 0.00 CER points on average (row b8 of
  docs/accuracy.md; the schedule below kept per utterance, the same Adam peak). Batch 4 went the other way: a
  step of 4 costs more than half one of 8, the budget held ~20 % fewer utterances, and it was behind with both
  seeds (dev +1.58, dev_noisy +2.87; row b4).
- lambda 0.5 instead of 0.2, and the first 1,600 updates (12,800 utterances) train CTC alone (the decoder, most
  of a step's time, does not run): the encoder aligns first and the attention decoder learns on top of it. At
  batch 16, 800 rather than 400: where the budget fits ~1,500 updates (a slow phase of the machine; stops 30-31's
  `make demo` fit ~1,640) 800 beat 400 by 4-9 dev CER points in every decoding mode, and where it fits ~2,700
  they were within a point (rows a12 and a12' of docs/accuracy.md); batch 8 keeps those utterances. At equal wall
  time lambda 0.3 and 0.7 each lost joint + LM on every dev set with both seeds (rows lam3 and lam7: dev +0.34 and
  +0.41, dev_noisy +0.80 and +1.24 CER points on average).
- Epochs of 700 updates (5,600 utterances) over a 288-minute train split (`make demo` builds it with `--minutes 300
  --heldout_minutes 6`; rows a16 and xv576 of docs/accuracy.md tried eight more train voices: better on voices
  never heard in training, worse on dev and dev_noisy), not passes over the data, and
  a wall-time budget: training ends when 18.5 minutes of it are spent (`train.max_minutes`; dev evaluations
  included; start-up and the last checkpoint took another ~0.5-1 min in `make demo`, 19.0-19.5 min in all, so
  jointctc-train stays under issue 12's 20 minutes), or after 14 epochs (9,800 updates of 8: the utterances of
  4,900 of 16, where twice the old demo's updates stopped improving dev: row a13 of docs/accuracy.md), whichever
  comes first, and the cosine decay follows the budget. This machine's speed differs by 2x between phases: a fixed
  1,400 updates took 15.6 minutes in one and 7.9 in another, and the budget uses what the machine gives.
- One thread per TensorFlow op, two ops at a time (`train.intra_op_threads = 1`): this model's ops are small,
  and a joint step ran 1.04-1.87x faster (median ~1.35x) than with two threads per op (docs/performance.md); with
  the oneDNN kernels the package turns on (stop 66) still 1.32-1.47x on an AVX2-only CPU.
- Noise drawn anew in every pass (`data.train_noise`, probability 0.5, the corpus builder's kinds and 0-20 dB
  SNRs) over a train split synthesized clean (`make demo` builds the corpus with `--noise_fraction 0`), instead
  of the same noise baked into half the train utterances: ahead on dev, dev_noisy and dev_unseen_voice with both
  seeds at 4,200 updates (mean -1.2, -1.4 and -1.7 CER points, row tn of docs/accuracy.md). The features are then
  computed for every batch (no `data.cache_features`: 1.09x per update against the cached features, the noise
  itself about free; docs/performance.md, stop 38), and the stream is shuffled over the whole train split every
  pass (`train.shuffle_buffer = 0`, row sh0: as good as a 2,000-utterance buffer; row tn measured with it). At
  equal wall time (`make demo`, stop 38) it was level with the static noise: the budget held 12 % fewer updates
  with the noise code of then (1.12x).
- Intermediate CTC (`loss.intermediate_ctc_weight` 0.3 on encoder layer 2 of 4, Lee & Watanabe 2021): the CTC
  term is 0.7 CTC(top layer) + 0.3 CTC(layer 2) through the one CTC head; no weights added, decoding unchanged.
  At a fixed 4,200 updates it led by ~20 dev CER points after the first epoch and by 2.7-2.8 at the end (CTC
  greedy); joint + LM with both seeds: dev -1.6, dev_noisy -2.9, dev_unseen_voice -0.2 (row ic of
  docs/accuracy.md), at no measurable cost per update.
- VTLP on half the train utterances (`model.vtlp_warp` (0.9, 1.1), `model.vtlp_probability` 0.5; Jaitly & Hinton
  2013, not in the paper): each one's mel axis warped per update by a factor uniform in 0.9-1.1 with chance 0.5, the
  others as synthesized. At equal wall time with two seeds (four runs side by side, 74 minutes each, ~3,850 updates,
  joint + LM; row vtp of docs/accuracy.md): dev_unseen_voice -2.38 CER points on average (ahead with both seeds; of
  it Piper's natural voice joe -4.38), dev +0.48, dev_noisy -0.16. Warping every utterance (row vtj) cost dev +1.48
  and dev_noisy +2.47 for dev_unseen_voice -1.46.
- Decoding: beam 10 (20 in the paper) and joint CTC weight 0.3 without the LM (the paper's; `decode.ctc_weight`) and
  0.5 with it (`decode.joint_lm_ctc_weight`: jointctc-eval --mode joint with `--lm_workdir` and the exports'
  `serving_default`), each tuned on dev: with the LM 0.5 (stop 36's grid of CTC weight and beta); without it 0.3
  beat 0.5 on dev with two recognizers (12.11 against 12.67 and 10.79 against 11.16 at beam 20; dev_noisy 30.59
  against 30.71; docs/accuracy.md, "Joint decoding's CTC weight without the LM"). Beam 10 is what the exports serve
  on tablet-class CPUs (issue 14); `make demo` evaluates at the paper's 20 (Makefile `BEAM`), which gained on every
  dev set with joint + LM (row b20 of docs/accuracy.md: dev -0.2, dev_noisy -0.7, dev_unseen_voice -0.8) at ~1.4x
  the decode time.
- Eos is forbidden before 0.1 output tokens per encoder frame (`decode.min_length_ratio`, ESPnet's minlenratio; the
  train split holds 0.19-0.80 characters per encoder frame): in noise the attention beam ended three of dev_noisy's
  hypotheses after 1-4 of their 60-91 characters. With it attention beam 20 went from 34.98 to 32.46 on dev_noisy,
  dev and dev_unseen_voice unchanged (0.1, 0.15, 0.2 and 0.25 gave the same), and the joint modes did not change
  (row ml of docs/accuracy.md).
- No hypothesis of the beam modes may hold more than 2 consecutive copies of a unit of 2 to 24 characters
  (`decode.max_repeats`; "had had" passes, "the the the" does not): in noise the attention beam loops ("they with
  the was the was the was ..."), and two such dev_noisy hypotheses of stop 57's `make demo` recognizer held 189 of
  its 593 inserted characters. With the limit attention beam 20 went from 31.66 to 29.98 on dev_noisy (CTC greedy:
  30.25), dev, dev_unseen_voice and joint + LM unchanged to the last digit; 3 copies gained less (31.25) (row rl of
  docs/accuracy.md).
- A hypothesis of the beam modes may emit at most 8 tokens in a row whose attention peak (the argmax of the step's
  attention) does not pass the furthest encoder frame it has reached; then it may only end
  (`decode.max_attention_stall`): the loops the repeat limit misses are near-copies ("you could of the could the
  could ...", "the the plied the the pried ..."), and teacher-forced through four recognizers every looping dev_noisy
  hypothesis stalled for 28-145 tokens, every other hypothesis of the attention and joint + LM modes for at most 6.
  On six recognizers' dev_noisy the attention beam went 31.96 -> 30.41 and 35.24 -> 32.20 on the two with such loops,
  29.98 -> 29.42, +0.05 and level on the others (mean -0.85; 16 tokens: -0.69); dev unchanged on all six; joint + LM
  changed 5 of their 2,154 dev hypotheses (-0.26 to +0.02); attention + LM, where the LM makes loops likelier, gained
  most (`make demo`'s two recognizers: dev_noisy -1.70 and -1.41, dev 0.00 and -2.53) (row as of docs/accuracy.md; a
  limit on how far the peak jumps back, row ab, missed the loops near the end). It presumes an attention that
  aligns: the test suite's tiny model (a few dozen updates) keeps its peak on one frame for many tokens and loses
  words to it, so its tests decode without it.
- With the character LM fused (`make demo` passes `--lm_workdir`; the config names none, and without an LM the
  weights below are not used), joint decoding takes beta 0.9 (`decode.lm_weight`; jointctc-eval --mode joint and
  the exports' `serving_default`), tuned on dev with the 256-cell LM at beam 20 (row lm256, two LM seeds: 0.9
  against 0.7 dev -0.04, dev_noisy -0.25, dev_unseen_voice -0.40 CER and lower WER on all three; 1.1 worse on dev
  and dev_noisy), and the bonus 0.1; attention decoding takes its own beta 0.1 and length bonus 0.3
  (`decode.attention_lm_weight`, `decode.attention_lm_length_penalty`: jointctc-eval --mode attention and the
  exports' `attention_beam`). At the joint
  mode's beta (0.3 then) the LM ended attention hypotheses early at width 160 ("The attention mode's LM weight at
  width 160", docs/accuracy.md), and at beta 0.1 a bonus of 0.3 beat 0.1 on dev and dev_noisy with two recognizers
  (row alp: 11.50 / 32.12 against 13.87 / 33.63, and 10.46 / 32.20 against 11.11 / 32.44; 0.5 loops).
"""

from tf_jointctc.config import base_config


def get_config():
    config = base_config()
    config.data.train = "data/corpus/train/manifest.jsonl"
    config.data.dev = "data/corpus/dev/manifest.jsonl"
    config.data.cache_dir = "data/cache"  # shared with `make demo`'s inspect_corpus stage
    config.data.num_shards = 8
    config.data.max_seconds = 20.0
    config.data.cache_features = False  # train noise needs the features computed per batch
    config.data.train_noise.probability = 0.5
    width = 160  # one width for the encoder cells and projections, the attention and the decoder
    config.model.encoder.units = width
    config.model.encoder.projection_units = width
    config.model.encoder.input_stack = 3
    config.model.encoder.subsample = (1, 1, 1, 1)
    config.model.encoder.conv_channels = 16
    config.model.attention_dim = width
    config.model.decoder_units = width
    config.model.forget_bias = 1.0
    config.model.vtlp_warp = (0.9, 1.1)
    config.model.vtlp_probability = 0.5
    config.loss.ctc_weight = 0.5
    config.loss.ctc_warmup_steps = 1600
    config.loss.intermediate_ctc_weight = 0.3
    config.loss.intermediate_ctc_layer = 2
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 2e-3
    config.optimizer.schedule = "cosine"
    config.optimizer.warmup_steps = 200
    config.optimizer.final_fraction = 0.3
    config.train.batch_size = 8
    config.train.max_frames_per_batch = 3200
    config.train.steps_per_epoch = 700
    config.train.epochs = 14
    config.train.intra_op_threads = 1
    config.train.shuffle_buffer = 0
    config.train.max_minutes = 18.5
    config.decode.beam = 10
    config.decode.ctc_weight = 0.3  # without an LM
    config.decode.joint_lm_ctc_weight = 0.5  # joint decoding with the LM (`--lm_workdir`)
    config.decode.length_penalty = 0.1
    config.decode.min_length_ratio = 0.1
    config.decode.max_repeats = 2
    config.decode.max_attention_stall = 8
    config.decode.lm_weight = 0.9  # used only with an LM (`--lm_workdir`)
    config.decode.attention_lm_weight = 0.1
    config.decode.attention_lm_length_penalty = 0.3
    return config
