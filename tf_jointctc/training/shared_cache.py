"""A TFRecord cache (`data.cache_dir`) shared by the workers of one multi-worker run: the chief builds it, the
other workers wait for it without writing.

The chief prepares every split (`prepare_dataset`), then writes `<cache_dir>/ready.json` atomically: the
fingerprint of each split's cache (`tfrecord.cache_fingerprint`). A worker computes the same fingerprints from
its own config, waits until the marker holds exactly them, and reads the caches (`tfrecord.load_cache`). A
marker left by an earlier run over other data does not match, so the worker goes on waiting for the chief.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from absl import logging

from tf_jointctc.data.tfrecord import load_cache
from tf_jointctc.training import atomic
from tf_jointctc.training.errors import SharedCacheTimeoutError

MARKER = "ready.json"


def mark_ready(cache_dir: str, fingerprints: dict[str, dict[str, Any]]) -> None:
    """Written by the chief once the caches of every split (`{split: cache_fingerprint}`) are complete."""
    atomic.write_json(os.path.join(cache_dir, MARKER), fingerprints)


def wait_until_ready(
    cache_dir: str,
    fingerprints: dict[str, dict[str, Any]],
    timeout: float,
    poll_seconds: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, dict[str, Any]]:
    """Waits (reading only) until the chief's marker in `cache_dir` names `fingerprints` ({split:
    cache_fingerprint}, each split's cache in `<cache_dir>/<split>`); returns {split: the cache's summary}.

    Raises:
      SharedCacheTimeoutError: not ready after `timeout` seconds.
    """
    marker = os.path.join(cache_dir, MARKER)
    deadline = clock() + timeout
    logging.info("waiting for the chief to prepare %s (marker %s, at most %.0f s)", cache_dir, marker, timeout)
    while True:
        ready = _ready(cache_dir, marker, fingerprints)
        if ready is not None:
            logging.info("the chief's caches in %s are ready", cache_dir)
            return ready
        if clock() >= deadline:
            raise SharedCacheTimeoutError(
                f"waited {timeout:.0f} s for the chief to prepare data.cache_dir {cache_dir!r}, but {marker} "
                "does not name this run's data. Is the chief (worker 0) running and preparing the same data? "
                "Workers on different hosts need data.cache_dir on a file system they share (or an empty "
                "data.cache_dir: each worker then prepares its own copy in its work dir); "
                "data.cache_wait_seconds sets how long to wait."
            )
        sleep(poll_seconds)


def _ready(cache_dir: str, marker: str, fingerprints: dict[str, dict[str, Any]]) -> dict[str, dict] | None:
    try:
        with open(marker, encoding="utf-8") as f:
            if json.load(f) != fingerprints:
                return None
    except (OSError, json.JSONDecodeError):
        return None
    caches = {split: load_cache(os.path.join(cache_dir, split), wanted) for split, wanted in fingerprints.items()}
    return None if any(c is None for c in caches.values()) else caches
