"""Character LM for `make demo` (issue 13): one LSTM layer of 128 cells over the recognizer's 33 labels,
trained on the committed public-domain demo text (`tf_jointctc/data/lm_corpus/`: the Austen and WordNet
sentences of the built-in corpus' sources, without any dev, test or babble sentence) and evaluated on the
corpus' dev transcripts. Updates of 128 sentences at Adam 1e-2 (cosine), for a wall-time budget of 5 minutes
(`train.max_minutes`; the cosine follows it) or 16 epochs of 500 updates, whichever ends first, so that `make
demo` spends a few minutes on it however fast the machine is at the time.

At this budget the LM is starved of updates, not of cells: on an AVX2-only CPU (no AMX) 128 cells at batch 128
reach dev 2.05 bits/char in 5 minutes (~1,600 updates) where 256 cells at batch 128 reach 2.18 and the former
setting, 256 cells at batch 256, 2.31 (~320 updates); the demo recognizer's dev CER with the LM fused at beta
0.7 is 14.4 / 16.0 / 17.1 (docs/accuracy.md, row lm_u128). A 128-cell LM is also a quarter of the LSTM work
per hypothesis and step in the beam search. The LSTM's training matmuls take bfloat16 operands where the CPU
multiplies bfloat16 natively (`model.training_dtype = "auto"`; float32 weights, states and results, and the LM
decodes in float32): on an AMX-BF16 CPU the same dev bits per character after the same updates and 1.30x
faster steps (row lmbf); on an AVX2-only CPU bfloat16 buys nothing and "auto" trains in float32.
"""

from tf_jointctc.config import lm_base_config
from tf_jointctc.data.lm_text import DEMO_LM_TEXT


def get_config():
    config = lm_base_config()
    config.data.train = DEMO_LM_TEXT
    config.data.dev = "data/corpus/dev/manifest.jsonl"
    config.model.layers = 1
    config.model.units = 128
    config.model.embedding_dim = 64
    config.model.training_dtype = "auto"
    config.train.batch_size = 128
    config.train.epochs = 16
    config.train.steps_per_epoch = 500
    config.optimizer.learning_rate = 1e-2
    config.train.max_minutes = 5.0
    return config
