"""Character LM for `make demo` (issue 13): one LSTM layer of 256 cells over the recognizer's 33 labels,
trained on the committed public-domain demo text (`tf_jointctc/data/lm_corpus/`: the Austen and WordNet
sentences of the built-in corpus' sources, without any dev, test or babble sentence) and evaluated on the
corpus' dev transcripts. A few minutes on 2 cores.
"""

from tf_jointctc.config import lm_base_config
from tf_jointctc.data.lm_text import DEMO_LM_TEXT


def get_config():
    config = lm_base_config()
    config.data.train = DEMO_LM_TEXT
    config.data.dev = "data/corpus/dev/manifest.jsonl"
    config.model.layers = 1
    config.model.units = 256
    config.model.embedding_dim = 64
    config.train.batch_size = 64
    config.train.epochs = 4
    config.train.steps_per_epoch = 250
    config.optimizer.learning_rate = 5e-3  # dev bits per character after 750 updates: 2.09 (2e-3: 2.49)
    return config
