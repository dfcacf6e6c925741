"""TensorFlow settings that take effect only if they are made before TensorFlow is first imported.

`import tf_jointctc` (and so every `jointctc-*` command) calls `prefer_onednn` before anything imports TensorFlow.

oneDNN kernels: TensorFlow's x86 Linux wheels carry them but turn them on by default only on CPUs with AVX512-VNNI,
AVX-VNNI, AVX512-BF16 or AMX; on an AVX2-only CPU (the AMD EPYC Zen 3 machines of issue 12) the Eigen kernels run.
There, with oneDNN on, a demo training update ran 1.0-1.4x faster (median of five alternated rounds ~1.2x) and the
demo LM's 1.1-1.45x (docs/performance.md, "Issue 12, stop 66"), in float32 as before: the results differ only by
floating-point rounding. `TF_ENABLE_ONEDNN_OPTS=0` in the environment keeps them off, an empty value leaves
TensorFlow's own default (it warns and uses it), and a program that imports TensorFlow (or Keras) before tf_jointctc
gets that default too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

__all__ = ["ONEDNN_VARIABLE", "prefer_onednn"]

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn(environ: MutableMapping[str, str] | None = None) -> bool:
    """Sets `TF_ENABLE_ONEDNN_OPTS=1` in `environ` (default: `os.environ`) unless it is set already.

    Returns True if TensorFlow will read the value: it has not been imported yet in this process. TensorFlow reads
    the variable once, when it loads, so after its import the call changes only what child processes inherit."""
    environ = os.environ if environ is None else environ
    environ.setdefault(ONEDNN_VARIABLE, "1")
    return "tensorflow" not in sys.modules
