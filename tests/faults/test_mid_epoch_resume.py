"""Issues 12 and 15: a run SIGKILLed inside an epoch, after a mid-epoch checkpoint
(`train.checkpoint_every_steps`), resumes at that step: it skips the batches it had consumed, finishes the epoch
as one epoch (one history entry, one dev evaluation), goes on normally, and ends with the weights, optimizer
state and history of an uninterrupted run (to float tolerance).

Epochs here are `train.steps_per_epoch` = 5 updates of the endless, per-pass-seeded training stream (issue 12),
about 2.5 passes over the tiny train split, and the kill lands after update 2 of epoch 2: the resumed run
continues the stream at batch 7, inside a pass and past an epoch boundary, then runs epoch 3 as a second `fit`
(`resume.fit_segments`). This one run replaces two tests of three trainings each: a stream resumed at an epoch
end (batch 5: the same `start_batch` skip) and a run whose epochs are passes killed mid-epoch. The batches a
resumed pass skips are checked exactly at the data level (tests/data/test_data_pipeline.py) and its `fit`
calls in tests/training/test_resume.py.

The kill is real and lands at a chosen point: the killed run is its own process, whose `save_mid_epoch` sends
SIGKILL to that process right after the chosen mid-epoch checkpoint is on disk (a kill from outside, timed by
polling, would land one batch earlier or later from run to run). The uninterrupted reference and the resumption
run in this process. The weights are compared to a tolerance, not exactly: the resumed run is a new model whose
multi-threaded kernels may reassociate float sums differently.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import REPO, SHALLOW_ENCODER, tiny_config, write_config_file
from tf_jointctc.training.loop import train

pytestmark = pytest.mark.slow

# The killed run: `train` as `jointctc-train` calls it, in a process that SIGKILLs itself right after writing
# the mid-epoch checkpoint of (finished epochs, step) = argv[3].
_KILLED_RUN = textwrap.dedent(
    """
    import importlib.util, os, signal, sys
    from tf_jointctc.training.checkpoint import TrainingCheckpoints
    from tf_jointctc.training.loop import train

    config_file, workdir, kill_at = sys.argv[1], sys.argv[2], tuple(map(int, sys.argv[3].split(",")))
    spec = importlib.util.spec_from_file_location("config", config_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    original = TrainingCheckpoints.save_mid_epoch

    def save_then_die(self, finished_epochs, step, seconds):
        path = original(self, finished_epochs, step, seconds)
        if (finished_epochs, step) == kill_at:
            print(path, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return path

    TrainingCheckpoints.save_mid_epoch = save_then_die
    train(module.get_config(), workdir, verbose=0)
    """
)


def _checkpoint_values(folder) -> dict[str, np.ndarray]:
    """Model, optimizer and (with `train.ema_decay`) weight-average tensors of the newest checkpoint in `folder`."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(folder)))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith(("model/", "optimizer/", "averages/"))]
    return {name: reader.get_tensor(name) for name in names}


def test_a_run_sigkilled_mid_epoch_resumes_there_and_equals_an_uninterrupted_run(tiny_corpus, tmp_path):
    """With `data.cache_features` and `train.ema_decay`, as `configs/demo.py` trains: the resumed process fills its
    cache anew, and its batches are still those the killed one would have trained on; the weight average continues
    where the mid-epoch checkpoint left it. (The same run with live features and no average was a second case
    here, ~60 s of the suite; the live stream's resumed batches are checked exactly at the data level, and its
    skip is the same `start_batch` as the cached stream's.)"""
    killed_at = (1, 2)  # (finished epochs, updates into the next one)
    config = tiny_config(tiny_corpus, **{**SHALLOW_ENCODER, "train.steps_per_epoch": 5, "train.epochs": 3,
                                         "train.checkpoint_every_steps": 1, "data.cache_dir": str(tmp_path / "cache"),
                                         "data.cache_features": True, "train.ema_decay": 0.9})
    straight_dir, workdir = tmp_path / "straight", tmp_path / "killed"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, write_config_file(config, tmp_path), str(workdir),
         ",".join(map(str, killed_at))],
        capture_output=True, text=True, timeout=600, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    killed_checkpoint = killed.stdout.strip().splitlines()[-1]
    assert "/mid_epoch/" in killed_checkpoint
    straight = train(config, str(straight_dir), verbose=0)
    epoch, step = killed_at
    history = json.loads((workdir / "history.json").read_text()) if epoch else []
    assert [h["epoch"] for h in history] == list(range(1, epoch + 1))  # the killed epoch has no entry yet
    at_kill = _checkpoint_values(workdir / "checkpoints" / "mid_epoch")

    resumed_from = []
    resumed = train(config, str(workdir), verbose=0, on_resume=resumed_from.append)
    assert len(resumed_from) == 1
    point = resumed_from[0]
    assert (point.epoch, point.step) == killed_at and point.path == killed_checkpoint
    assert point.describe().startswith(f"resuming from {point.path} at epoch {epoch}, step {step}")

    assert resumed["epochs"] == straight["epochs"] == 3
    # The default `model.encoder.implementation = "auto"` on this machine: recorded and reported.
    runtime = json.loads((workdir / "runtime.json").read_text())
    expected_encoder = "keras" if tf.config.list_physical_devices("GPU") else "fused"
    assert runtime["requested_encoder_implementation"] == "auto"
    assert runtime["encoder_implementation"] == resumed["encoder_implementation"] == expected_encoder
    want = json.loads((straight_dir / "history.json").read_text())
    got = json.loads((workdir / "history.json").read_text())
    assert [h["epoch"] for h in got] == [1, 2, 3]  # the interrupted epoch once
    for a, b in zip(want, got):
        # The resumed epoch's losses are over all its batches (the metrics of those before the kill are restored).
        for key in ("loss", "ctc_loss", "attention_loss", "attention_accuracy", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (b["epoch"], key)
        assert b["dev_cer"] == pytest.approx(a["dev_cer"], abs=1e-6)
        # With a weight average, the dev CER of the raw weights is logged too.
        assert b["dev_cer_raw"] == pytest.approx(a["dev_cer_raw"], abs=1e-6)
    assert got[epoch]["epoch_seconds"] >= point.seconds > 0.0
    assert not (workdir / "alignments").exists()  # tiny_config's `train.alignment_images` 0: none logged

    expected = _checkpoint_values(straight_dir / "checkpoints" / "latest")
    final = _checkpoint_values(workdir / "checkpoints" / "latest")
    assert sorted(final) == sorted(expected)
    assert any(n.startswith("averages/") for n in final)
    for name, value in expected.items():
        np.testing.assert_allclose(final[name], value, atol=2e-5, rtol=1e-4, err_msg=name)
    # The updates after the resumption moved the weights, so equal weights mean the same remaining batches.
    model_names = [n for n in at_kill if n.startswith("model/") and at_kill[n].size > 1]
    moved = sum(not np.allclose(at_kill[n], final[n], atol=1e-4) for n in model_names)
    assert moved > len(model_names) // 2, (moved, len(model_names))
