"""Keras layers of the joint CTC-attention model."""

from tf_jointctc.layers.attention import ContentAttention, LocationAwareAttention, make_attention
from tf_jointctc.layers.ctc import CTCHead, ctc_loss
from tf_jointctc.layers.decoder import AttentionDecoder
from tf_jointctc.layers.encoder import PyramidalBLSTM

__all__ = [
    "AttentionDecoder",
    "CTCHead",
    "ContentAttention",
    "LocationAwareAttention",
    "PyramidalBLSTM",
    "ctc_loss",
    "make_attention",
]
