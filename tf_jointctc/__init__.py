"""tf-jointctc: joint CTC-attention end-to-end speech recognition (Kim, Hori & Watanabe, ICASSP 2017)."""

# First: TensorFlow reads its oneDNN setting when it loads (tf_jointctc/runtime.py).
from tf_jointctc.runtime import prefer_onednn

prefer_onednn()

from tf_jointctc.text import Vocabulary, normalize  # noqa: E402

__all__ = ["Recognizer", "Vocabulary", "normalize"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: `tf_jointctc.recognizer` imports TensorFlow only to load a SavedModel, never at import.
    if name == "Recognizer":
        from tf_jointctc.recognizer import Recognizer

        return Recognizer
    raise AttributeError(f"module 'tf_jointctc' has no attribute {name!r}")
