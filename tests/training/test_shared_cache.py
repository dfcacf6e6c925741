"""Multi-worker runs on one host share `data.cache_dir`: the chief builds it and marks it complete, the other
workers only read it once the chief's marker names their data (or give up after a timeout, with a message)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers import REPO, tiny_config
from tf_jointctc.data.tfrecord import cache_fingerprint, prepare_dataset
from tf_jointctc.text import Vocabulary
from tf_jointctc.training import shared_cache
from tf_jointctc.training.errors import SharedCacheTimeoutError, TrainingError

# One process of a multi-worker run, up to its data: the chief or a worker calls prepare_data on one cache dir.
_PREPARE = """
import json, sys
from absl import logging
logging.set_verbosity(logging.INFO)
import ml_collections
from tf_jointctc.text import Vocabulary
from tf_jointctc.training.loop import prepare_data
config = ml_collections.ConfigDict(json.loads(open(sys.argv[2]).read()))
prepared = prepare_data(config, sys.argv[3], Vocabulary(), is_chief=sys.argv[1] == "chief")
print(json.dumps({s: {"n": p["num_utterances"], "shards": p["shards"]} for s, p in sorted(prepared.items())}))
"""


def _start(role: str, config_file: str, workdir: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-c", _PREPARE, role, config_file, workdir], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _files(folder) -> dict[str, tuple[int, int]]:
    """Every file below `folder` (hidden ones included): (size, mtime_ns)."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            stat = os.stat(os.path.join(root, name))
            found[os.path.relpath(os.path.join(root, name), folder)] = (stat.st_size, stat.st_mtime_ns)
    return found


def test_the_worker_waits_for_the_chiefs_cache_and_never_writes_it(tiny_corpus, tmp_path):
    cache = tmp_path / "cache"
    config = tiny_config(tiny_corpus, **{"data.cache_dir": str(cache), "data.cache_wait_seconds": 300.0})
    config_file = tmp_path / "config.json"
    config_file.write_text(config.to_json())

    worker = _start("worker", str(config_file), str(tmp_path / "work" / "workers" / "1"))
    lines, waiting = [], threading.Event()

    def read_stderr():
        for line in worker.stderr:
            lines.append(line)
            if "waiting for the chief" in line:
                waiting.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert waiting.wait(timeout=300), "".join(lines)[-3000:]
        time.sleep(2.0)  # a few polls of the worker alone
        assert worker.poll() is None, "".join(lines)[-3000:]
        assert not cache.exists()  # nothing written while it waits

        chief = _start("chief", str(config_file), str(tmp_path / "work"))
        chief_out, chief_err = chief.communicate(timeout=600)
        assert chief.returncode == 0, chief_err[-3000:]
        assert (cache / shared_cache.MARKER).is_file()
        after_chief = _files(cache)
        worker_out = worker.stdout.read()
        assert worker.wait(timeout=120) == 0, "".join(lines)[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
    reader.join(timeout=10)
    log = "".join(lines)
    assert "caches in" in log and "are ready" in log
    assert "preparing" not in log  # it never built a split
    assert _files(cache) == after_chief  # nor touched the chief's files
    assert json.loads(worker_out.strip().splitlines()[-1]) == json.loads(chief_out.strip().splitlines()[-1])
    assert not (tmp_path / "work" / "workers" / "1" / "cache").exists()


def _fingerprints(tiny_corpus) -> dict[str, dict]:
    return {"train": cache_fingerprint(str(tiny_corpus / "dev" / "manifest.jsonl"), Vocabulary(), num_shards=1,
                                       max_seconds=30.0, subsampling=3)}


def test_a_worker_gives_up_with_a_clear_error_when_the_chief_never_marks_the_cache(tiny_corpus, tmp_path):
    wanted = _fingerprints(tiny_corpus)
    now = [0.0]

    def sleep(seconds):  # a fake clock: the test does not wait the timeout out
        now[0] += seconds

    with pytest.raises(SharedCacheTimeoutError, match=r"chief.*data\.cache_dir.*file system they share") as error:
        shared_cache.wait_until_ready(str(tmp_path), wanted, timeout=30.0, clock=lambda: now[0], sleep=sleep)
    assert isinstance(error.value, TrainingError)
    assert now[0] == pytest.approx(30.0)
    assert not os.listdir(tmp_path)

    # A marker of other data (an earlier run) is not this run's: still waiting.
    prepare_dataset(str(tiny_corpus / "dev" / "manifest.jsonl"), str(tmp_path / "train"), Vocabulary(),
                    num_shards=1, max_seconds=30.0, subsampling=3)
    stale = {"train": {**wanted["train"], "num_shards": 2}}
    shared_cache.mark_ready(str(tmp_path), stale)
    now[0] = 0.0
    with pytest.raises(SharedCacheTimeoutError):
        shared_cache.wait_until_ready(str(tmp_path), wanted, timeout=5.0, clock=lambda: now[0], sleep=sleep)

    # The chief's marker for this data: ready at once, with the cache's summary.
    shared_cache.mark_ready(str(tmp_path), wanted)
    ready = shared_cache.wait_until_ready(str(tmp_path), wanted, timeout=0.0, clock=lambda: now[0], sleep=sleep)
    assert ready["train"]["num_utterances"] > 0 and ready["train"]["reused"]
    assert all(os.path.isfile(p) for p in ready["train"]["shards"])
