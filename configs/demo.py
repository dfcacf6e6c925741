"""CPU-sized default for `make demo`: the paper's model (pyramid-free 4-layer BLSTM encoder with projections,
location attention, 1-layer LSTM decoder, lambda = 0.2) trained with a recipe for small compute.

How it differs from the paper's recipe (section 3.2; `configs/demo_paper_recipe.py` is that recipe at this
width), and why (measurements in docs/accuracy.md):
- Width 128 instead of 320: the model trains in 20 minutes on a 2-core CPU.
- Input stacking: 3 feature frames form one encoder input frame (33 frames/s at every BLSTM layer, no
  pyramid): the BLSTMs run at half the paper's frame-steps per second, and synthesized speech has ~15-19
  characters per second, so CTC keeps ~2 encoder frames per character.
- Adam (peak 2e-3, 150 warm-up steps, cosine decay) instead of AdaDelta, batches of 32 utterances capped at
  12,800 feature frames: more audio per second of compute than batches of 8.
- Epochs of 200 updates over a 288-minute train split (`make demo` builds it with `--minutes 300
  --heldout_minutes 6`), not passes over the data: every utterance is seen about five times instead of a
  48-minute split seen ten times.
"""

from tf_jointctc.config import base_config


def get_config():
    config = base_config()
    config.data.train = "data/corpus/train/manifest.jsonl"
    config.data.dev = "data/corpus/dev/manifest.jsonl"
    config.data.cache_dir = "data/cache"  # shared with `make demo`'s inspect_corpus stage
    config.data.num_shards = 8
    config.data.max_seconds = 20.0
    config.model.encoder.units = 128
    config.model.encoder.projection_units = 128
    config.model.encoder.input_stack = 3
    config.model.encoder.subsample = (1, 1, 1, 1)
    config.model.attention_dim = 128
    config.model.decoder_units = 128
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 2e-3
    config.optimizer.schedule = "cosine"
    config.optimizer.warmup_steps = 150
    config.train.batch_size = 32
    config.train.max_frames_per_batch = 12800
    config.train.steps_per_epoch = 200
    config.train.epochs = 6
    config.decode.length_penalty = 0.1
    return config
