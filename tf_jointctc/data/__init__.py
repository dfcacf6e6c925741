"""Data: manifests and Kaldi dirs -> checked 16 kHz audio -> TFRecord shards -> tf.data batches.

`read_dataset` lists utterances, `read_audio` decodes one, `prepare_dataset` (or `write_shards`) writes and
caches shards, `make_dataset` batches them into the dict of docs/interfaces.md. Skipped utterances are counted
per reason in a `SkipReport`.

Names are imported on first use, so that `tf_jointctc.data.synth` and the audio/manifest readers do not pay
for importing TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AudioError": "audio",
    "read_audio": "audio",
    "Utterance": "manifest",
    "read_dataset": "manifest",
    "SkipReport": "skips",
    "encoder_frames": "tfrecord",
    "parse_example": "tfrecord",
    "prepare_dataset": "tfrecord",
    "write_shards": "tfrecord",
    "cached_utterance_features": "pipeline",
    "make_dataset": "pipeline",
    "make_epoch_dataset": "pipeline",
    "make_training_stream": "pipeline",
    "resolve_shards": "pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
