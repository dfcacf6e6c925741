"""Converts an exported recognizer to TFLite with built-in ops only (no Flex delegate).

- Batch is fixed to 1: the converter lowers the TensorLists of the BLSTM and beam-search `tf.while_loop`s only
  with static element shapes. Inputs are `waveform [1, samples]` with `samples` dynamic: call
  `interpreter.resize_tensor_input(index, [1, S])` (or let a signature runner resize) before each utterance.
- Outputs `token_ids`, `num_tokens`, `score` (no `text`: TFLite has no string outputs).
- The vocabulary and the decoding options travel in the model's flatbuffer **metadata**: an entry named
  `export_info` (`METADATA_NAME`) whose buffer is the UTF-8 JSON of `signatures.export_info` (key
  `"vocabulary"`: the token strings by id). `tf_jointctc.tflite_metadata.read_export_info(path_or_bytes)` reads
  it back without TensorFlow (`ai_edge_litert.schema_py_generated`).
- Assertions are dropped by the converter: the maximum length (`signatures.MAX_SAMPLES`) is enforced by
  `tf_jointctc.Recognizer` instead.
- `quantize`: "none" (float32), "float16" (float16 weights) or "int8" (dynamic-range: int8 weights, float
  activations; `optimizations=[tf.lite.Optimize.DEFAULT]` without a representative dataset).
- A fused character LM (`lm=`, `signatures.FusionLM`) is one more set of weights and ops inside the same
  `WHILE` loops: still built-ins only, quantized like the rest.
- The encoder's LSTMs are traced as composites (`layers.fused_lstm.tflite_fusable_lstms`) that the converter
  turns into fused `UNIDIRECTIONAL_SEQUENCE_LSTM` ops (two per BLSTM: the backward one on a reversed input);
  their cell clip, which the converter sets to 10, is reset to 0 (no clip, as in TensorFlow). **Their initial
  states are TFLite variable tensors that each invocation overwrites: call `Interpreter.reset_all_variables()`
  before every invocation** (a signature runner re-allocates, and so resets, only when an input's shape
  changes). `tf_jointctc.Recognizer` does; export_info records it (`"reset_variables_before_invoke": true`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from tf_jointctc.export import signatures as sig
from tf_jointctc.layers.attention import convolution_in_search
from tf_jointctc.layers.fused_lstm import tflite_fusable_lstms
from tf_jointctc.tflite_metadata import METADATA_NAME, TFLITE_IDENTIFIER, schema

QUANTIZATIONS = ("none", "float16", "int8")


def write_tflite_saved_model(
    model: Any,
    vocab: Any,
    directory: str,
    options: sig.DecodeOptions | None = None,
    *,
    extra_info: Mapping[str, Any] | None = None,
    lm: sig.FusionLM | None = None,
) -> dict[str, Any]:
    """The batch-1, text-free SavedModel that `convert` turns into TFLite; returns its export_info dict."""
    options = options or sig.DecodeOptions()
    extra_info = {**dict(extra_info or {}), "reset_variables_before_invoke": True}
    with tflite_fusable_lstms(), convolution_in_search():
        archive, info = sig.build_archive(
            model, vocab, options, batch_size=1, with_text=False, check_max=False, extra_info=extra_info, lm=lm
        )
        archive.write_out(str(directory), verbose=False)
    return info


def convert(saved_model_dir: str, info: Mapping[str, Any], quantize: str = "none") -> bytes:
    """SavedModel from `write_tflite_saved_model` -> .tflite bytes (built-ins only, metadata added)."""
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize in ("float16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    info = {**dict(info), "quantize": quantize}
    model = _unpack(converter.convert())
    _unclip_fused_lstms(model)
    _add_metadata_entries(model, {METADATA_NAME: json.dumps(info, sort_keys=True).encode("utf-8")})
    return _pack(model)


def export_tflite(
    model: Any,
    vocab: Any,
    path: str | Mapping[str, str],
    options: sig.DecodeOptions | None = None,
    *,
    quantize: str = "none",
    extra_info: Mapping[str, Any] | None = None,
    lm: sig.FusionLM | None = None,
) -> dict[str, Any]:
    """Writes `.tflite` file(s). `path` is one file (converted with `quantize`) or {quantize: file} to write
    several quantizations from one trace. Returns the export_info dict (without "quantize").

    `lm`: a character LM fused into the beam-search signatures, as for `export_saved_model`; its weights are
    quantized like the recognizer's."""
    targets = {quantize: str(path)} if isinstance(path, str | os.PathLike) else dict(path)
    with tempfile.TemporaryDirectory(prefix="jointctc_tflite_") as tmp:
        info = write_tflite_saved_model(model, vocab, tmp, options, extra_info=extra_info, lm=lm)
        for mode, target in targets.items():
            data = convert(tmp, info, mode)
            folder = os.path.dirname(os.path.abspath(target))
            os.makedirs(folder, exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
    return info


def _unpack(flatbuffer: bytes) -> Any:
    generated = schema()
    return generated.ModelT.InitFromObj(generated.Model.GetRootAs(bytearray(flatbuffer), 0))


def _pack(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _unclip_fused_lstms(model: Any) -> None:
    """Sets the cell clip of every fused LSTM op of an unpacked model to 0 (no clipping): the converter's
    Keras-LSTM fusion writes 10, which TensorFlow's LSTM does not have (a cell state past 10 would change the
    result)."""
    for subgraph in model.subgraphs or []:
        for op in subgraph.operators or []:
            if getattr(op.builtinOptions, "cellClip", 0.0):
                op.builtinOptions.cellClip = 0.0


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def add_metadata(flatbuffer: bytes, entries: Mapping[str, bytes]) -> bytes:
    """Returns `flatbuffer` with named metadata entries (each a new buffer) added or replaced."""
    model = _unpack(flatbuffer)
    _add_metadata_entries(model, entries)
    return _pack(model)


def _add_metadata_entries(model: Any, entries: Mapping[str, bytes]) -> None:
    """Adds (or replaces) named metadata entries of an unpacked model, each in a new buffer."""
    import numpy as np

    generated = schema()
    model.metadata = [m for m in (model.metadata or []) if _text(m.name) not in entries]
    model.buffers = model.buffers or []
    for name, data in entries.items():
        buffer = generated.BufferT()
        buffer.data = np.frombuffer(bytes(data), np.uint8)
        model.buffers.append(buffer)
        metadata = generated.MetadataT()
        metadata.name = name
        metadata.buffer = len(model.buffers) - 1
        model.metadata.append(metadata)
