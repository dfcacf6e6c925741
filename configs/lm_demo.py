"""Character LM for `make demo` (issue 13): one LSTM layer of 256 cells over the recognizer's 33 labels,
trained on the committed public-domain demo text (`tf_jointctc/data/lm_corpus/`: the Austen and WordNet
sentences of the built-in corpus' sources, without any dev, test or babble sentence) and evaluated on the
corpus' dev transcripts. Updates of 128 sentences at Adam 1e-2 (cosine), for a wall-time budget of 5 minutes
(`train.max_minutes`; the cosine follows it) or 16 epochs of 500 updates, whichever ends first, so that `make
demo` spends a few minutes on it however fast the machine is at the time.

At this budget the LM's width decides more than its updates on a CPU with AMX-BF16: 256 cells at batch 128 reach
dev 1.84 bits/char in 5 minutes (~1,500 updates) where 128 cells reach 1.96 (~3,000 updates), and the demo
recognizer of stop 43 (runs/demo_v18) with it fused at beta 0.7, joint decoding at beam 20, gains on every dev set
with both LM seeds: dev -0.53, dev_noisy -0.79, dev_unseen_voice -1.20 CER points on average (docs/accuracy.md, row
lm256; `make demo` fuses it at beta 0.9, slightly better still). 384 and 512 cells in the same 5 minutes were no
better (1.84 and 1.89 bits/char); 512 cells trained for 25 minutes reach 1.68 (dev 6.95, dev_noisy 25.76,
dev_unseen_voice 15.85), what a longer budget would buy. The wider LM costs the demo's TFLite joint beam 1.02-1.04x
(docs/performance.md, stop 46). On an AVX2-only CPU (no AMX) the width costs more: there 128 cells beat 256 at this
budget (2.05 against 2.18 bits/char, row lm_u128). The LSTM's training matmuls take bfloat16 operands where the CPU
multiplies bfloat16 natively (`model.training_dtype = "auto"`; float32 weights, states and results, and the LM
decodes in float32): on an AMX-BF16 CPU the same dev bits per character after the same updates and 1.30x faster
steps (row lmbf); on an AVX2-only CPU bfloat16 buys nothing and "auto" trains in float32.
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
    config.train.batch_size = 128
    config.train.epochs = 16
    config.train.steps_per_epoch = 500
    config.optimizer.learning_rate = 1e-2
    config.train.max_minutes = 5.0
    return config
