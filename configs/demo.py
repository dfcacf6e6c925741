"""CPU-sized default for `make demo`: the paper's architecture shape (4-layer pyramidal BLSTM, location
attention, 1-layer LSTM decoder, lambda = 0.2) at a width that trains on the 60-minute built-in corpus on a
2-core CPU. Its data defaults to the corpus `make demo` builds.
"""

from tf_jointctc.config import base_config


def get_config():
    config = base_config()
    config.data.train = "data/corpus/train/manifest.jsonl"
    config.data.dev = "data/corpus/dev/manifest.jsonl"
    config.data.cache_dir = "data/cache"  # shared with `make demo`'s inspect_corpus stage
    config.data.num_shards = 4
    config.data.max_seconds = 20.0
    config.model.encoder.units = 128
    config.model.encoder.projection_units = 128
    config.model.attention_dim = 128
    config.model.decoder_units = 128
    config.optimizer.name = "adam"  # AdaDelta needs far more epochs than a CPU demo affords
    config.optimizer.learning_rate = 1e-3
    config.train.epochs = 12
    config.train.batch_size = 16
    config.decode.length_penalty = 0.1
    return config
