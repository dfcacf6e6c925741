"""Character LM for `make demo` (issue 13): one LSTM layer of 256 cells over the recognizer's 33 labels,
trained on the committed public-domain demo text (`tf_jointctc/data/lm_corpus/`: the Austen and WordNet
sentences of the built-in corpus' sources, without any dev, test or babble sentence) and evaluated on the
corpus' dev transcripts. Two epochs of 250 updates of 256 sentences at Adam 1e-2 (cosine): about 5 minutes
on 2 idle cores (`bench/train_lm.py`: 0.55-0.60 s per update), dev 2.01 bits per character on the 300-minute
built-in corpus. The former setting, 4 x 250 updates of 64 sentences at 5e-3 (3.3-4.5 min at 0.20-0.27 s per
update), was at 2.09 after 750 updates; this recipe run to 1,000 updates reached 1.87 in twice the time.
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
    config.train.epochs = 2
    config.train.steps_per_epoch = 250
    config.optimizer.learning_rate = 1e-2
    return config
