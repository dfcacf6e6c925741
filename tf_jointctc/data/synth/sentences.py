"""The committed sentence pools and the transcript of a sentence.

`sentences/{train,dev,test,babble}.txt` hold one sentence per line as it is spoken (cased, with punctuation
for prosody). The pools are disjoint by transcript; see `SOURCES.md` and `extract_sentences.py`.
"""

from __future__ import annotations

import functools
import os

from tf_jointctc.text import normalize

POOLS = ("train", "dev", "test", "babble")
SENTENCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sentences")


def transcript(sentence: str) -> str:
    """The manifest text of a spoken sentence: `normalize` of it without its final punctuation.

    The final period (or ! or ?) is not spoken, so it is not transcribed; periods of abbreviations (`mr.`)
    are kept, as in WSJ transcripts.
    """
    text = sentence.strip().rstrip(".!?,;: ")
    return normalize(text)


@functools.cache
def load_pool(pool: str) -> tuple[str, ...]:
    """The sentences of a pool, in file order."""
    if pool not in POOLS:
        raise ValueError(f"unknown sentence pool {pool!r}; expected one of {POOLS}")
    with open(os.path.join(SENTENCE_DIR, f"{pool}.txt"), encoding="utf-8") as handle:
        return tuple(line.strip() for line in handle if line.strip())
