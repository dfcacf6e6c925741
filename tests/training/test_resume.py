"""Units of resuming inside an epoch: the fit calls from a resume point, mid-epoch checkpoints (which of them
and the epoch-end ones a restart picks), the epoch's metrics put back, the non-finite counter, and the choice
of Keras' progress output."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tf_jointctc.training.callbacks import EpochCheckpoint, NonFiniteGuard
from tf_jointctc.training.checkpoint import TrainingCheckpoints
from tf_jointctc.training.progress import fit_verbosity
from tf_jointctc.training.resume import ResumePoint, Segment, fit_segments


def test_fit_segments_from_an_epoch_boundary_and_from_inside_an_epoch():
    # Epochs of N updates from one stream: one fit call, preceded by the rest of an unfinished epoch.
    assert fit_segments(ResumePoint(), 3, one_call_per_epoch=False) == [Segment(0, 3)]
    assert fit_segments(ResumePoint(2), 3, one_call_per_epoch=False) == [Segment(2, 3)]
    assert fit_segments(ResumePoint(1, 4), 3, one_call_per_epoch=False) == [Segment(1, 2, 4), Segment(2, 3)]
    assert fit_segments(ResumePoint(2, 4), 3, one_call_per_epoch=False) == [Segment(2, 3, 4)]
    # Epochs that are passes: one call per epoch, the first one starting after the consumed batches.
    assert fit_segments(ResumePoint(), 2, one_call_per_epoch=True) == [Segment(0, 1), Segment(1, 2)]
    assert fit_segments(ResumePoint(1, 3), 3, one_call_per_epoch=True) == [Segment(1, 2, 3), Segment(2, 3)]
    # Nothing left to train.
    for per_epoch in (False, True):
        assert fit_segments(ResumePoint(3), 3, one_call_per_epoch=per_epoch) == []


def test_resume_line_names_the_epoch_and_the_step():
    assert ResumePoint(2, 0, "w/checkpoints/latest/ckpt-2").describe() == (
        "resuming from w/checkpoints/latest/ckpt-2 at epoch 2"
    )
    line = ResumePoint(1, 7, "w/checkpoints/mid_epoch/ckpt-3").describe()
    assert line.startswith("resuming from w/checkpoints/mid_epoch/ckpt-3 at epoch 1, step 7")
    assert "epoch 2 continues after its first 7 batches" in line


def test_fit_verbosity_is_one_line_per_epoch_when_stdout_is_not_a_terminal():
    assert fit_verbosity(None, stdout_is_tty=False) == 2
    assert fit_verbosity(None, stdout_is_tty=True) == "auto"
    for requested in (0, 1, 2):  # an explicit --verbose wins
        assert fit_verbosity(requested, stdout_is_tty=False) == requested
        assert fit_verbosity(requested, stdout_is_tty=True) == requested


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="out")])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _loss_metric(model) -> keras.metrics.Metric:
    return next(m for m in model.metrics if m.name == "loss")


def test_mid_epoch_checkpoint_restores_position_weights_and_the_epochs_metrics(tmp_path):
    model = _tiny_model()
    checkpoints = TrainingCheckpoints(str(tmp_path), model, model.optimizer)
    checkpoints.save(1, {"loss": 3.0, "dev_cer": 50.0, "epoch_seconds": 10.0})
    for value in (2.0, 4.0):  # epoch 2's first batches
        _loss_metric(model).update_state(value)
    model.layers[0].kernel.assign(np.full((3, 2), 0.5, "float32"))
    path = checkpoints.save_mid_epoch(1, 2, seconds=6.5)
    assert "mid_epoch" in path

    fresh = _tiny_model()
    resumed = TrainingCheckpoints(str(tmp_path), fresh, fresh.optimizer)
    point = resumed.restore()
    assert point == ResumePoint(1, 2, path, 6.5)
    np.testing.assert_array_equal(fresh.layers[0].kernel.numpy(), np.full((3, 2), 0.5))
    assert [h["epoch"] for h in resumed.history()] == [1]
    assert float(resumed.best_dev_cer.numpy()) == 50.0
    fresh.reset_metrics()  # what fit does at the start of the resumed epoch ...
    assert float(_loss_metric(fresh).result()) == 0.0
    resumed.restore_epoch_metrics()  # ... after which the epoch's first batches are counted again
    assert float(_loss_metric(fresh).result()) == pytest.approx(3.0)

    # The epoch end supersedes the mid-epoch checkpoint; a later mid-epoch checkpoint supersedes the epoch end.
    resumed.save(2, {"loss": 2.0, "dev_cer": 40.0, "epoch_seconds": 9.0})
    again = _tiny_model()
    third = TrainingCheckpoints(str(tmp_path), again, again.optimizer)
    assert third.restore() == ResumePoint(2, 0, str(tmp_path / "checkpoints" / "latest" / "ckpt-2"))
    later = third.save_mid_epoch(2, 1, seconds=1.0)
    last = _tiny_model()
    assert TrainingCheckpoints(str(tmp_path), last, last.optimizer).restore() == ResumePoint(2, 1, later, 1.0)
    assert json.loads((tmp_path / "history.json").read_text())[-1]["epoch"] == 2
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "mid_epoch").iterdir() if p.suffix == ".index") == [
        later.rsplit("/", 1)[1] + ".index"
    ]


class _Recorder:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


def test_epoch_checkpoint_saves_every_n_batches_counting_the_resumed_ones():
    recorder = _Recorder()
    callback = EpochCheckpoint(recorder, every_steps=2, steps_per_epoch=6, resume=ResumePoint(1, 3, "p", 4.0))
    callback.on_epoch_begin(1)  # the resumed epoch: its Keras batches 0, 1, 2 are batches 4, 5, 6
    assert recorder.calls[0][0] == "restore_epoch_metrics"
    for batch in range(3):
        callback.on_train_batch_end(batch)
    callback.on_epoch_end(1, {"loss": 1.0})
    callback.on_epoch_begin(2)  # a fresh epoch
    for batch in range(6):
        callback.on_train_batch_end(batch)
    saves = [(args[0], args[1]) for name, args, _ in recorder.calls if name == "save_mid_epoch"]
    assert saves == [(1, 4), (2, 2), (2, 4)]  # never after the epoch's last batch: the epoch end saves that
    (_, (epoch, logs), _) = next(c for c in recorder.calls if c[0] == "save")
    assert epoch == 2 and logs["loss"] == 1.0 and logs["epoch_seconds"] >= 4.0  # the seconds before the kill


def test_non_finite_guard_starts_an_epoch_from_the_restored_counter():
    counter = keras.metrics.Sum(name="non_finite_steps")  # the model's counter (tf_jointctc.model)
    guard = NonFiniteGuard(max_consecutive=2)

    class WithCounter:  # the model's metrics as the guard reads them
        metrics = [counter]
        stop_training = False

    guard.set_model(WithCounter())
    counter.update_state(1.0)  # one skipped step before the interruption, put back at the epoch's start
    guard.on_epoch_begin(1)
    guard.on_train_batch_end(0, {"non_finite_steps": 1.0})  # no new skip
    assert guard.consecutive == 0 and guard.total == 0
    guard.on_train_batch_end(1, {"non_finite_steps": 2.0})
    assert guard.consecutive == 1 and guard.total == 1
