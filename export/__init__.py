"""Export of a trained joint CTC-attention model: SavedModel and TFLite (docs/interfaces.md, "Public contract").

The repository's top-level `export/` folder, installed as the package `tf_jointctc.export` (pyproject.toml,
`[tool.setuptools] package-dir`).

- `signatures.py`: the serving functions (features, CMVN, encoder, decoding, vocabulary, all in-graph) and
  the boundary rules (`MAX_SAMPLES`, `MIN_SAMPLES`, non-finite samples);
- `to_saved_model.py`: `export_saved_model(model, vocab, directory, options, lm=None)`;
- `to_tflite.py`: `export_tflite(model, vocab, path, options, quantize=..., lm=None)` (built-ins only, batch 1,
  vocabulary in the flatbuffer metadata, read back by `tf_jointctc.tflite_metadata.read_export_info`);
- `from_workdir.py`: `export_workdir(workdir, saved_model, tflite=None, ...)`, the export of a jointctc-train
  work dir with the LM its flags or config name (what jointctc-export and jointctc-transcribe run; not imported
  here, it loads the training side).

`lm`: a `FusionLM` (a character LM and its vocabulary, issue 13) fused into the beam-search signatures with
weight `options.lm_weight`.

Importing this package imports TensorFlow (through `signatures`).
"""

from tf_jointctc.export.signatures import (
    ATTENTION_BEAM,
    CTC_GREEDY,
    DECODING_SIGNATURES,
    MAX_SAMPLES,
    MAX_SECONDS,
    MIN_SAMPLES,
    SERVING_DEFAULT,
    DecodeOptions,
    FusionLM,
    available_modes,
)
from tf_jointctc.export.to_saved_model import export_saved_model
from tf_jointctc.export.to_tflite import QUANTIZATIONS, export_tflite
from tf_jointctc.tflite_metadata import read_export_info

__all__ = [
    "ATTENTION_BEAM",
    "CTC_GREEDY",
    "DECODING_SIGNATURES",
    "MAX_SAMPLES",
    "MAX_SECONDS",
    "MIN_SAMPLES",
    "QUANTIZATIONS",
    "SERVING_DEFAULT",
    "DecodeOptions",
    "FusionLM",
    "available_modes",
    "export_saved_model",
    "export_tflite",
    "read_export_info",
]
