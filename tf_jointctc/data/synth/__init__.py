"""The built-in synthesized corpus (`jointctc-synth`): sentences, TTS engines, augmentation, builder."""

from tf_jointctc.data.synth.builder import SPLITS, SynthConfig, build_corpus

__all__ = ["SPLITS", "SynthConfig", "build_corpus"]
