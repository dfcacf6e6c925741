"""The metadata of a `.tflite` file written by jointctc-export, read without TensorFlow.

The exporter (`tf_jointctc.export.to_tflite`) stores the export's description (decoding options, signatures,
vocabulary: `export/signatures.py`, `export_info`) as UTF-8 JSON in a flatbuffer metadata entry named
`METADATA_NAME`; `tf_jointctc.Recognizer` reads it back from here. This module imports neither of them.
"""

from __future__ import annotations

import json
import os
from typing import Any

METADATA_NAME = "export_info"  # the metadata entry holding the export_info JSON
TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer file identifier of a TFLite model (bytes 4..8)


def schema() -> Any:
    """The generated TFLite flatbuffer schema module (`ai_edge_litert`'s, else TensorFlow's copy)."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:  # pragma: no cover - tensorflow's own copy
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def read_metadata(source: str | os.PathLike | bytes | bytearray) -> dict[str, bytes]:
    """All metadata entries of a .tflite file (path or bytes): {name: bytes}, without TensorFlow.

    Raises ValueError if `source` is not a TFLite flatbuffer (or is truncated).
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            data = bytearray(f.read())
    else:
        data = bytearray(source)
    if len(data) < 8 or bytes(data[4:8]) != TFLITE_IDENTIFIER:
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    generated = schema()
    try:
        model = generated.Model.GetRootAs(data, 0)
        entries: dict[str, bytes] = {}
        for i in range(model.MetadataLength()):
            metadata = model.Metadata(i)
            buffer = model.Buffers(metadata.Buffer())
            if buffer.Offset() > 1:  # large models keep their buffers after the flatbuffer
                if buffer.Offset() + buffer.Size() > len(data):
                    raise ValueError("metadata buffer past the end of the file")
                payload = bytes(data[buffer.Offset() : buffer.Offset() + buffer.Size()])
            else:
                payload = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
            name = metadata.Name()
            entries[name.decode("utf-8") if isinstance(name, bytes) else str(name)] = payload
    except (IndexError, TypeError, UnicodeDecodeError, AttributeError) as error:
        raise ValueError(f"corrupt or truncated TFLite flatbuffer ({type(error).__name__}: {error})") from error
    return entries


def read_export_info(source: str | os.PathLike | bytes | bytearray) -> dict[str, Any]:
    """The export_info JSON of a .tflite written by jointctc-export. Raises ValueError if it has none."""
    entries = read_metadata(source)
    if METADATA_NAME not in entries:
        raise ValueError(f"no {METADATA_NAME!r} metadata: not written by jointctc-export")
    return json.loads(entries[METADATA_NAME].decode("utf-8"))
