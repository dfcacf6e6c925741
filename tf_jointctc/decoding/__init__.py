"""Decoders: CTC greedy, attention beam search, joint CTC/attention beam search."""

from tf_jointctc.decoding.greedy import ctc_greedy_decode

__all__ = ["ctc_greedy_decode"]
