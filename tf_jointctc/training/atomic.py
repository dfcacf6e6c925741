"""Writes that are never seen half-done: write to a temporary sibling, then `os.replace`."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

# What every temporary sibling's name starts with; a restarted trainer deletes the ones a kill left
# (`checkpoint.remove_interrupted_writes`).
TEMP_PREFIX = ".tmp-"


def write_text(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path: str, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
