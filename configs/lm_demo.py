"""Character LM for `make demo` (issue 13): one LSTM layer of 256 cells (128 on a CPU without native bfloat16,
below) over the recognizer's 33 labels, trained on the committed public-domain demo text
(`tf_jointctc/data/lm_corpus/`: the Austen and WordNet sentences of the built-in corpus' sources, without any dev,
test or babble sentence) and evaluated on the corpus' dev transcripts. Updates of 128 sentences at Adam 1e-2
(cosine), for a wall-time budget of 5 minutes (`train.max_minutes`; the cosine follows it) or 16 epochs of 500
updates, whichever ends first, so that `make demo` spends a few minutes on it however fast the machine is at the
time.

At this budget the LM's width decides more than its updates on a CPU with AMX-BF16: 256 cells at batch 128 reach
dev 1.84 bits/char in 5 minutes (~1,500 updates) where 128 cells reach 1.96 (~3,000 updates), and the demo
recognizer of stop 43 (runs/demo_v18) with it fused at beta 0.7, joint decoding at beam 20, gains on every dev set
with both LM seeds: dev -0.53, dev_noisy -0.79, dev_unseen_voice -1.20 CER points on average (docs/accuracy.md, row
lm256; `make demo` fuses it at beta 0.9, slightly better still). 384 and 512 cells in the same 5 minutes were no
better (1.84 and 1.89 bits/char); 512 cells trained for 25 minutes reach 1.68 (dev 6.95, dev_noisy 25.76,
dev_unseen_voice 15.85), what a longer budget would buy. The wider LM costs the demo's TFLite joint beam 1.02-1.04x
(docs/performance.md, stop 46). On a CPU that does not multiply bfloat16 natively (AVX2 only: no AMX-BF16 or
AVX512-BF16) the width costs more and the LM trains in float32, so there the config takes 128 cells
(`cpu_has_native_bfloat16`, decided when the config is built; the work dir's config.json records the width): in the
same 5 minutes 128 cells beat 256 on two AVX2 machines (2.05 against 2.18 bits/char, row lm_u128; 2.060 / 2.070
against 2.095 / 2.094 with seeds 1 / 2, row lm128a), and fused into stop 51's recognizer they gained on every dev
set with both LM seeds (dev -0.32, dev_noisy -1.07, dev_unseen_voice -0.57 CER points on average, row lm128a);
both measured with TensorFlow's oneDNN kernels off, its default on those CPUs until the package turned them on.
With them on (stop 67, row lm256b, two seeds of each width, each LM alone for the 5 minutes) the widths are level:
128 cells 2,401-2,406 updates and 1.973-1.976 bits/char, 256 cells 824-842 updates and 1.960-1.963, and fused
into stop 66's two `make demo` recognizers (three pairs) 256 cells gave dev +0.05, dev_noisy +0.42,
dev_unseen_voice -0.31 CER points on average, so 128 cells stay there (they also decode faster: joint + LM on dev
at beam 20 took 51-53 s against 55-56 s).
`--config.model.units` overrides the choice. The LSTM's training matmuls take bfloat16 operands where the CPU
multiplies bfloat16 natively (`model.training_dtype = "auto"`; float32 weights, states and results, and the LM
decodes in float32): on an AMX-BF16 CPU the same dev bits per character after the same updates and 1.30x faster
steps (row lmbf); on an AVX2-only CPU bfloat16 buys nothing and "auto" trains in float32.
"""

from tf_jointctc.config import lm_base_config
from tf_jointctc.data.lm_text import DEMO_LM_TEXT
from tf_jointctc.layers.fused_lstm import cpu_has_native_bfloat16

# The LM's width by what the CPU multiplies natively (rows lm128a and lm256b of docs/accuracy.md).
UNITS_WITH_NATIVE_BFLOAT16 = 256
UNITS_WITHOUT_NATIVE_BFLOAT16 = 128


def get_config():
    config = lm_base_config()
    config.data.train = DEMO_LM_TEXT
    config.data.dev = "data/corpus/dev/manifest.jsonl"
    config.model.layers = 1
    config.model.units = UNITS_WITH_NATIVE_BFLOAT16 if cpu_has_native_bfloat16() else UNITS_WITHOUT_NATIVE_BFLOAT16
    config.model.embedding_dim = 64
    config.model.training_dtype = "auto"
    config.train.batch_size = 128
    config.train.epochs = 16
    config.train.steps_per_epoch = 500
    config.optimizer.learning_rate = 1e-2
    config.train.max_minutes = 5.0
    return config
