"""Character LM for `make demo` (issue 13): one LSTM layer of 256 cells over the recognizer's 33 labels,
trained on the committed public-domain demo text (`tf_jointctc/data/lm_corpus/`: the Austen and WordNet
sentences of the built-in corpus' sources, without any dev, test or babble sentence) and evaluated on the
corpus' dev transcripts. Updates of 256 sentences at Adam 1e-2 (cosine), for a wall-time budget of 5 minutes
(`train.max_minutes`; the cosine follows it) or 8 epochs of 250 updates, whichever ends first, so that `make
demo` spends a few minutes on it however fast the machine is at the time. How many updates fit and the dev
bits per character they reach: docs/accuracy.md, "Language model" (1,000 updates reached 1.86 bits and lowered
the demo recognizer's test_clean WER by 30 % in joint decoding at beta 0.7; 500 updates, 2.01 bits and -22 %).
The LSTM's training matmuls take bfloat16 operands where the CPU multiplies bfloat16 natively
(`model.training_dtype = "auto"`; float32 weights, states and results, and the LM decodes in float32): on an
AMX-BF16 CPU the same dev bits per character after the same 750 updates (1.908 against 1.908) and 1.30x faster
steps (docs/accuracy.md, row lmbf), so more updates fit the budget; on an AVX2-only CPU bfloat16 buys nothing
(0.587 against 0.548 s per step, emulated) and "auto" trains in float32.
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
    config.model.training_dtype = "auto"
    config.train.batch_size = 256
    config.train.epochs = 8
    config.train.steps_per_epoch = 250
    config.optimizer.learning_rate = 1e-2
    config.train.max_minutes = 5.0
    return config
