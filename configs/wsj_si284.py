"""Paper, Table 1, WSJ train_si284 (81 h): MTL lambda = 0.2, location attention, beam 20, length penalty 0.1.

Set the data to your WSJ Kaldi data dirs, e.g.
  jointctc-train --config configs/wsj_si284.py --workdir runs/si284 \
    --config.data.train=/path/to/data/train_si284 --config.data.dev=/path/to/data/test_dev93
Paper: CER 11.27 (dev93) / 7.36 (eval92). Lambda 1 / 0 give the CTC / attention rows (--config.loss.ctc_weight).
"""

from tf_jointctc.config import base_config


def get_config():
    config = base_config()
    config.data.train = "data/wsj/train_si284"
    config.data.dev = "data/wsj/test_dev93"
    return config
