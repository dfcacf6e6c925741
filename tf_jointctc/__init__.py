"""tf-jointctc: joint CTC-attention end-to-end speech recognition (Kim, Hori & Watanabe, ICASSP 2017)."""

from tf_jointctc.text import Vocabulary, normalize

__all__ = ["Vocabulary", "normalize"]
__version__ = "0.1.0"
