"""Decoders: CTC greedy, attention beam search, joint CTC/attention beam search."""

from tf_jointctc.decoding.attention_greedy import attention_greedy_decode
from tf_jointctc.decoding.beam_search import batch_beam_search, beam_search, beam_search_decode, length_limits
from tf_jointctc.decoding.ctc_prefix_score import CTCPrefixState
from tf_jointctc.decoding.greedy import ctc_greedy_decode
from tf_jointctc.decoding.scorers import (
    AttentionScorer,
    AttentionStallLimit,
    CoverageScorer,
    CTCPrefixScorer,
    LengthBonus,
    RepeatLimit,
    Scorer,
)

__all__ = [
    "AttentionScorer",
    "AttentionStallLimit",
    "CTCPrefixScorer",
    "CoverageScorer",
    "RepeatLimit",
    "CTCPrefixState",
    "LengthBonus",
    "attention_greedy_decode",
    "Scorer",
    "batch_beam_search",
    "beam_search",
    "beam_search_decode",
    "ctc_greedy_decode",
    "length_limits",
]
