"""Paper, Table 1, CHiME-4 tr05_multi (18 h): MTL lambda = 0.2, location attention, beam 20, length penalty 0.3.

Paper: CER 32.08 (dt05_real) / 44.99 (et05_real).
"""

from tf_jointctc.config import base_config


def get_config():
    config = base_config()
    config.data.train = "data/chime4/tr05_multi_noisy"
    config.data.dev = "data/chime4/dt05_multi_isolated_1ch_track"
    config.decode.length_penalty = 0.3
    return config
