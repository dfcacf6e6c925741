"""The built-in synthesized corpus (`jointctc-synth`): sentences, TTS engines, augmentation, builder."""

from tf_jointctc.data.synth.builder import SPLITS, MissingEngineError, SynthConfig, build_corpus

__all__ = ["SPLITS", "MissingEngineError", "SynthConfig", "build_corpus"]
