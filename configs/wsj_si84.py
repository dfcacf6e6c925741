"""Paper, Table 1, WSJ train_si84 (15 h): MTL lambda = 0.2, location attention, beam 20, length penalty 0.1.

Paper: CER 23.03 (dev93) / 14.53 (eval92).
"""

from tf_jointctc.config import base_config


def get_config():
    config = base_config()
    config.data.train = "data/wsj/train_si84"
    config.data.dev = "data/wsj/test_dev93"
    return config
