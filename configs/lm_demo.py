"""Character LM for `make demo` (issue 13): one LSTM layer of 256 cells over the recognizer's 33 labels,
trained on the committed public-domain demo text (`tf_jointctc/data/lm_corpus/`: the Austen and WordNet
sentences of the built-in corpus' sources, without any dev, test or babble sentence) and evaluated on the
corpus' dev transcripts. Four epochs of 250 updates of 256 sentences at Adam 1e-2 (cosine): 6.7 minutes on
2 idle cores in a fast phase of the machine (2026-12-01; about twice that in a slow one), dev 1.86 bits per
character. With the demo recognizer it lowers test_clean WER by 30 % (joint decoding, beta 0.7). Two epochs (the
former setting, 3.6 min) reached 2.01 bits and -22 %: the issue's target of -25 % needs the longer training.
Figures: docs/accuracy.md, "Language model".
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
    config.train.batch_size = 256
    config.train.epochs = 4
    config.train.steps_per_epoch = 250
    config.optimizer.learning_rate = 1e-2
    return config
