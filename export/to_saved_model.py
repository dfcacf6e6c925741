"""Writes the SavedModel of an exported recognizer (see `signatures.py` for its signatures).

The folder holds, besides the SavedModel itself:

- `assets.extra/export_info.json`: decoding options, what each signature decodes, vocabulary, limits and,
  with a fused character LM, its record (`"lm"`);
- `assets.extra/vocab.json`: the vocabulary (`Vocabulary.to_json`).

Both are also inside the graph (the `export_info` signature returns the JSON and the vocabulary as strings; the
`text` outputs gather from a constant vocabulary tensor), so no file other than the SavedModel is needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from tf_jointctc.export import signatures as sig

EXTRA_DIR = "assets.extra"
EXPORT_INFO_FILE = "export_info.json"
VOCAB_FILE = "vocab.json"


def directory_size(path: str) -> int:
    """Bytes of all files under `path`."""
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
    return total


def export_saved_model(
    model: Any,
    vocab: Any,
    directory: str,
    options: sig.DecodeOptions | None = None,
    *,
    extra_info: Mapping[str, Any] | None = None,
    lm: sig.FusionLM | None = None,
) -> dict[str, Any]:
    """Writes `model` as a SavedModel with dynamic batch and text outputs; returns its export_info dict.

    `lm`: a character LM fused into `serving_default` (when it runs a beam search) and `attention_beam` with
    weight `options.lm_weight` (> 0); refused if it cannot be (`signatures.lm_record`)."""
    options = options or sig.DecodeOptions()
    archive, info = sig.build_archive(
        model, vocab, options, batch_size=None, with_text=True, extra_info=extra_info, lm=lm
    )
    archive.write_out(str(directory), verbose=False)
    extra = os.path.join(str(directory), EXTRA_DIR)
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, EXPORT_INFO_FILE), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(extra, VOCAB_FILE), "w", encoding="utf-8") as f:
        f.write(vocab.to_json() + "\n")
    return info
