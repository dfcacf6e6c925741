"""Unit tests of the training helpers: atomic writes, checkpoints and history, non-finite guard, time budget,
images."""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import REPO, SHALLOW_ENCODER, tiny_config
from tf_jointctc.trained_model import restore_weights
from tf_jointctc.training import atomic
from tf_jointctc.training.callbacks import NonFiniteGuard, TimeBudget, alignment_image, validation_dataset
from tf_jointctc.training.checkpoint import TrainingCheckpoints
from tf_jointctc.training.errors import ConfigError
from tf_jointctc.training.loop import train
from tf_jointctc.training.strategy import make_strategy, set_cpu_threads


def test_atomic_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "state.json"
    atomic.write_json(str(path), {"a": 1})
    atomic.write_json(str(path), {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="out")])  # stable variable paths
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_checkpoints_restore_epoch_weights_and_truncate_history(tmp_path):
    model = _tiny_model()
    checkpoints = TrainingCheckpoints(str(tmp_path), model, model.optimizer)
    assert checkpoints.restore_latest() == 0
    checkpoints.save(1, {"loss": 3.0, "dev_cer": 50.0})
    saved_weights = [w.copy() for w in model.get_weights()]
    checkpoints.save(2, {"loss": 2.0, "dev_cer": 60.0})  # worse: best stays at epoch 1
    # A history written after a checkpoint that was then lost (kill between the two writes) is cut back.
    atomic.write_json(checkpoints.history_path, [*checkpoints.history(), {"epoch": 3, "loss": 1.0}])

    fresh = _tiny_model()
    restored = TrainingCheckpoints(str(tmp_path), fresh, fresh.optimizer)
    assert restored.restore_latest() == 2
    assert [h["epoch"] for h in restored.history()] == [1, 2]
    assert float(restored.best_dev_cer.numpy()) == 50.0
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    best = _tiny_model()
    assert restore_weights(best, str(tmp_path), "best").endswith("ckpt-1")
    for a, b in zip(best.get_weights(), saved_weights):
        np.testing.assert_array_equal(a, b)


def test_a_restart_removes_what_interrupted_writes_left_and_nothing_else(tmp_path):
    model = _tiny_model()
    checkpoints = TrainingCheckpoints(str(tmp_path), model, model.optimizer)
    checkpoints.save(1, {"loss": 3.0, "dev_cer": 50.0})
    latest = tmp_path / "checkpoints" / "latest"
    (tmp_path / "alignments").mkdir()
    left = [latest / "checkpoint.tmp26b8de147a1444fc9200fb30fc4b3328", tmp_path / ".tmp-k3j2history.json",
            tmp_path / ".tmp-cmvn.json", tmp_path / "alignments" / ".tmp-epoch_002.npz"]
    for path in left:
        path.write_text("half")
    (latest / "ckpt-2_temp").mkdir()
    kept = sorted(str(p) for p in tmp_path.rglob("*") if p not in left and p.name != "ckpt-2_temp")
    fresh = _tiny_model()
    restarted = TrainingCheckpoints(str(tmp_path), fresh, fresh.optimizer)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == kept
    assert restarted.restore_latest() == 1


def test_a_restart_drops_checkpoints_an_interrupted_sweep_deleted_from_the_index(tmp_path):
    """A kill while the manager deletes its oldest checkpoint (after recording the newest, before recording the
    list without the oldest) leaves the index naming deleted files: the next start drops them, keeping the
    index's paths relative (the work dir can move), and the run resumes from the newest."""
    model = _tiny_model()
    checkpoints = TrainingCheckpoints(str(tmp_path / "work"), model, model.optimizer)
    for epoch in (1, 2, 3):
        checkpoints.save(epoch, {"loss": 1.0, "dev_cer": 50.0 - epoch})
    latest = tmp_path / "work" / "checkpoints" / "latest"
    assert not list(latest.glob("ckpt-1.*"))  # swept: two are kept
    state = tf.train.get_checkpoint_state(str(latest))  # what the manager wrote before its sweep, as it writes it
    timestamps = list(state.all_model_checkpoint_timestamps)
    tf.compat.v1.train.update_checkpoint_state(
        str(latest), "ckpt-3", ["ckpt-1", "ckpt-2", "ckpt-3"], all_model_checkpoint_timestamps=[
            timestamps[0] - 1.0, *timestamps], last_preserved_timestamp=state.last_preserved_timestamp)
    os.rename(tmp_path / "work", tmp_path / "moved")
    fresh = _tiny_model()
    restarted = TrainingCheckpoints(str(tmp_path / "moved"), fresh, fresh.optimizer)
    state = tf.train.get_checkpoint_state(str(tmp_path / "moved" / "checkpoints" / "latest"))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-3"]
    assert "ckpt-1" not in (tmp_path / "moved" / "checkpoints" / "latest" / "checkpoint").read_text()
    assert str(tmp_path) not in (tmp_path / "moved" / "checkpoints" / "latest" / "checkpoint").read_text()
    assert restarted.restore_latest() == 3
    restarted.save(4, {"loss": 1.0, "dev_cer": 40.0})
    state = tf.train.get_checkpoint_state(str(tmp_path / "moved" / "checkpoints" / "latest"))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-3", "ckpt-4"]
    assert all(os.path.exists(p + ".index") for p in state.all_model_checkpoint_paths)


def test_history_sums_epoch_seconds_across_resumptions(tmp_path):
    model = _tiny_model()
    checkpoints = TrainingCheckpoints(str(tmp_path), model, model.optimizer)
    checkpoints.save(1, {"loss": 3.0, "epoch_seconds": 10.5})
    checkpoints.save(2, {"loss": 2.0, "epoch_seconds": 20.25})
    fresh = _tiny_model()
    resumed = TrainingCheckpoints(str(tmp_path), fresh, fresh.optimizer)
    assert resumed.restore_latest() == 2
    resumed.save(2, {"loss": 2.5, "epoch_seconds": 7.0})  # epoch 2 repeated after a kill: replaces its entry
    resumed.save(3, {"loss": 1.0, "epoch_seconds": 4.0})
    assert [h["train_seconds"] for h in resumed.history()] == [10.5, 17.5, 21.5]
    assert resumed.train_seconds() == 21.5
    empty = _tiny_model()
    assert TrainingCheckpoints(str(tmp_path / "new"), empty, empty.optimizer).train_seconds() == 0.0
    resumed.save(4, {"loss": 0.5})  # no timing given: none invented
    assert "train_seconds" not in resumed.history()[-1]


def test_non_finite_guard_stops_after_consecutive_skips_only():
    guard = NonFiniteGuard(max_consecutive=3)
    guard.set_model(_tiny_model())
    guard.on_epoch_begin(0)
    for step, count in enumerate([1, 2, 2, 3, 4]):  # skips at steps 0, 1, 3, 4: never 3 in a row
        guard.on_train_batch_end(step, {"non_finite_steps": count})
    assert not guard.model.stop_training and guard.total == 4
    guard.on_train_batch_end(5, {"non_finite_steps": 5})
    assert guard.model.stop_training and "3 consecutive non-finite" in guard.stopped_reason


def test_alignment_image_scales_rows():
    image = alignment_image(np.array([[0.1, 0.3], [0.5, 0.5]]))
    assert image.shape == (1, 2, 2, 1) and image.dtype == np.uint8
    assert image[0, :, :, 0].tolist() == [[85, 255], [255, 255]]


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("horovod")


def test_cpu_threads_apply_in_a_fresh_process_after_importing_the_training_loop():
    """jointctc-train sets them first thing in `train`: importing the package must not start TensorFlow."""
    code = ("import json; import tf_jointctc.training.loop; from tf_jointctc.training.strategy import set_cpu_threads;"
            " import tensorflow as tf; print(json.dumps([set_cpu_threads(1, 3),"
            " tf.config.threading.get_intra_op_parallelism_threads()]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [{"intra_op": 1, "inter_op": 3}, 1]


def test_cpu_threads_that_cannot_change_any_more_are_reported_as_they_are(caplog):
    tf.constant(1.0) + 1.0  # TensorFlow is running in this process
    current = tf.config.threading.get_intra_op_parallelism_threads()
    with caplog.at_level(logging.WARNING):
        assert set_cpu_threads(current + 5, 0)["intra_op"] == current
    assert "cannot apply" in caplog.text
    with pytest.raises(ConfigError, match="train.intra_op_threads must be >= 0"):
        set_cpu_threads(-1, 0)


def test_train_refuses_negative_threads_before_any_work(tiny_corpus, tmp_path):
    with pytest.raises(ConfigError, match="inter_op_threads must be >= 0"):
        train(tiny_config(tiny_corpus, **{"train.inter_op_threads": -2}), str(tmp_path / "work"))
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("overrides, message", [
    ({"data.train_noise.probability": 0.5}, "cannot be cached"),  # tiny_config caches the features
    ({"data.cache_features": False, "data.train_noise.snr_db": (9.0, 3.0)}, "snr_db"),
    ({"data.speed_perturbation": (0.9, 1.0, 1.1)}, "cannot be cached"),
    ({"data.cache_features": False, "data.speed_perturbation": (0.3, 1.0)}, r"\[0.5, 2\]"),
    ({"data.num_mel_bins": 0}, "num_mel_bins must be >= 1"),
])
def test_train_refuses_bad_train_noise_before_any_work(tiny_corpus, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(tiny_config(tiny_corpus, **overrides), str(tmp_path / "work"))
    assert not (tmp_path / "work").exists()


def test_training_with_noise_drawn_each_pass_learns_and_its_stream_is_noisy(tiny_corpus, tmp_path):
    """One pass of the tiny config with noise on every utterance (`data.train_noise`): the run finishes with a
    finite loss, and the stream it trains on (the same augmentation over its train shards) has other features
    than the clean one."""
    config = tiny_config(tiny_corpus, **{**SHALLOW_ENCODER, "data.cache_features": False,
                                         "data.train_noise.probability": 1.0, "train.epochs": 1})
    summary = train(config, str(tmp_path / "work"))
    assert summary["epochs"] == 1 and np.isfinite(summary["loss"]) and summary["non_finite_steps"] == 0
    from tf_jointctc.data import make_training_stream, resolve_shards
    from tf_jointctc.training.loop import train_noise_augmentation, train_noise_settings

    shards = resolve_shards(str(tmp_path / "work" / "cache" / "train"))
    augmentation = train_noise_augmentation(train_noise_settings(config), shards, summary["train_utterances"])
    assert train_noise_augmentation(train_noise_settings(tiny_config(tiny_corpus)), shards, 1) is None
    noisy, clean = (next(iter(make_training_stream(shards, batch_size=4, seed=1, augmentation=a)))
                    for a in (augmentation, None))
    assert noisy["ids"].numpy().tolist() == clean["ids"].numpy().tolist()
    assert np.abs(noisy["features"].numpy() - clean["features"].numpy()).mean() > 0.1


def test_a_training_on_80_mel_bins_evaluates_on_them_and_refuses_a_resume_with_other_bins(tiny_corpus, tmp_path):
    """`data.num_mel_bins` 80: the CMVN statistics, the cached train features, the dev pass and the model (its
    front end and VTLP) all read 240 features per frame; jointctc-eval's decoding computes the same from the work
    dir's model; and the work dir refuses a rerun at 40 bins, whose features its model cannot read, before writing."""
    from tf_jointctc.evaluation import evaluate_workdir
    from tf_jointctc.features import CMVNStats
    from tf_jointctc.trained_model import load_trained_model

    config = tiny_config(tiny_corpus, **{**SHALLOW_ENCODER, "data.num_mel_bins": 80, "train.max_minutes": 0.001,
                                         "train.epochs": 3, "train.steps_per_epoch": 2,
                                         "model.encoder.conv_channels": 2, "model.vtlp_warp": (0.9, 1.1)})
    workdir = str(tmp_path / "work")
    summary = train(config, workdir, verbose=0)
    assert summary["updates"] == 1 and summary["dev_cer"] is not None
    assert CMVNStats.load(os.path.join(workdir, "cmvn.json")).dim == 240
    model = load_trained_model(workdir)[0]
    assert (model.num_mel_bins, model.vtlp.bins, model.encoder.frontend.output_dim()) == (80, 80, 40)
    result = evaluate_workdir(workdir, config.data.dev, "ctc_greedy", which="latest")
    assert result["utterances"] == summary["dev_utterances"]  # a 120-feature pipeline would fail the CMVN
    config.data.num_mel_bins = 40
    with pytest.raises(ConfigError, match="CMVN statistics are of 240 features per frame, and data.num_mel_bins 40"):
        train(config, workdir, verbose=0)
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["data"]["num_mel_bins"] == 80  # the refused rerun wrote nothing


def test_time_budget_ends_training_after_the_batch_that_reaches_it():
    """A fake clock of 1 s per batch and a budget of 7.5 s: fit stops after the 8th batch (in its 2nd epoch of
    5), with that epoch's end as usual, and the schedule's variable follows the spent fraction before each batch."""
    clock = {"seconds": 0.0}
    fractions, epoch_ends = [], []
    spent = tf.Variable(0.0, trainable=False)
    budget = TimeBudget(7.5, lambda: clock["seconds"], spent)

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):  # runs before the budget's: the batch's own second
            fractions.append(round(float(spent.numpy()), 4))  # what the budget set before this batch
            clock["seconds"] += 1.0

        def on_epoch_end(self, epoch, logs=None):
            epoch_ends.append(epoch)

    model = _tiny_model()
    x, y = np.ones((20, 3), "float32"), np.zeros((20, 2), "float32")
    history = model.fit(x, y, batch_size=4, epochs=10, verbose=0, callbacks=[Clock(), budget])
    assert budget.reached and len(fractions) == 8 and epoch_ends == [0, 1] and len(history.history["loss"]) == 2
    assert fractions == [round(i / 7.5, 4) for i in range(8)]
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(0.0, lambda: 0.0)


def test_epoch_checkpoint_counts_the_seconds_of_finished_epochs_and_of_a_resumed_one(tmp_path):
    from tf_jointctc.training.callbacks import EpochCheckpoint
    from tf_jointctc.training.resume import ResumePoint

    model = _tiny_model()
    checkpoints = TrainingCheckpoints(str(tmp_path), model, model.optimizer)
    checkpoints.save(1, {"loss": 1.0, "epoch_seconds": 10.0})
    callback = EpochCheckpoint(checkpoints, resume=ResumePoint(1, 3, "p", 4.0))
    callback.on_epoch_begin(1)  # epoch 2, resumed after 4 s of it
    assert 14.0 <= callback.train_seconds() < 15.0


def test_validation_dataset_turns_autotuning_off_and_keeps_the_elements():
    dataset = tf.data.Dataset.range(10).map(lambda x: x * 2, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)
    assert dataset.options().autotune.enabled is not False
    validation = validation_dataset(dataset)
    assert validation.options().autotune.enabled is False
    assert [int(x) for x in validation] == [int(x) for x in dataset] == list(range(0, 20, 2))


def test_length_bucket_boundaries_sit_just_above_the_frame_count_quantiles():
    from tf_jointctc.training.loop import length_bucket_boundaries

    summary = {"num_frames": {"percentiles": {"25": 99, "50": 150, "75": 150, "90": 300, "99": 800}}}
    assert length_bucket_boundaries(summary) == [100, 151, 301]  # equal quantiles give one boundary; 99 unused
    assert length_bucket_boundaries({"num_frames": {}}) == []


def test_length_buckets_of_equal_size_come_from_the_interpolated_quantiles():
    from tf_jointctc.training.loop import length_bucket_boundaries

    summary = {"num_frames": {"percentiles": {"25": 99, "50": 150}, "quantiles": [100 + p for p in range(1, 100)]}}
    assert length_bucket_boundaries(summary, 4) == [126, 151, 176]  # the 25/50/75th: 125, 150, 175
    assert length_bucket_boundaries(summary, 8)[0] == 113  # the 12.5th, halfway between 112 and 113
    assert len(length_bucket_boundaries(summary, 8)) == 7
    assert length_bucket_boundaries(summary, 0) == [100, 151]  # 0 keeps the percentile buckets
    flat = {"num_frames": {"quantiles": [300] * 99}}
    assert length_bucket_boundaries(flat, 10) == [301]  # equal boundaries merge
    assert length_bucket_boundaries({"num_frames": {"quantiles": []}}, 8) == []


def test_length_buckets_of_equal_size_match_the_frame_counts_they_split():
    from tf_jointctc.data.tfrecord import _stats
    from tf_jointctc.training.loop import length_bucket_boundaries

    frames = np.random.default_rng(0).integers(70, 1100, size=2000).tolist()
    boundaries = length_bucket_boundaries({"num_frames": _stats(frames)}, 8)
    counts = np.bincount(np.searchsorted(boundaries, frames, side="right"), minlength=8)
    assert len(boundaries) == 7
    assert counts.min() >= 0.9 * len(frames) / 8 and counts.max() <= 1.1 * len(frames) / 8


def test_length_buckets_refuse_one_bucket_and_a_summary_without_quantiles():
    from tf_jointctc.training.errors import ConfigError
    from tf_jointctc.training.loop import length_bucket_boundaries

    with pytest.raises(ConfigError, match="0 or >= 2"):
        length_bucket_boundaries({"num_frames": {"quantiles": [1] * 99}}, 1)
    with pytest.raises(ConfigError, match="delete the cache"):
        length_bucket_boundaries({"num_frames": {"percentiles": {"50": 10}}}, 8)


def test_shuffle_buffer_zero_is_the_whole_train_split():
    from tf_jointctc.training.loop import shuffle_buffer_size

    assert shuffle_buffer_size(0, 5453) == 5453
    assert shuffle_buffer_size(2000, 5453) == 2000
    assert shuffle_buffer_size(0, 0) == 1
    with pytest.raises(ValueError, match="shuffle_buffer"):
        shuffle_buffer_size(-1, 10)


def test_train_augmentation_is_speed_then_noise_and_none_when_both_are_off():
    from tf_jointctc.data.train_noise import TrainNoise, noisy_utterance
    from tf_jointctc.training.loop import train_augmentation

    waveform = np.sin(np.arange(16000) * 0.05).astype(np.float32) * 0.5
    example = {"waveform": tf.constant(waveform), "num_samples": tf.constant(16000), "labels": tf.constant([1, 2])}
    seed = tf.constant([3, 0], tf.int64)
    noise = functools.partial(noisy_utterance, settings=TrainNoise(probability=1.0, kinds=("white",),
                                                                   weights=(1.0,)))
    assert train_augmentation(None, (1.0,), 3) is None
    assert train_augmentation(noise, (1.0,), 3) is noise
    speed_only = train_augmentation(None, (1.25,), 3)(example, seed)
    both = train_augmentation(noise, (1.25,), 3)(example, seed)
    assert int(speed_only["num_samples"]) == int(both["num_samples"]) == 12800
    np.testing.assert_allclose(both["waveform"].numpy() - speed_only["waveform"].numpy(),
                               noise(speed_only, seed)["waveform"].numpy() - speed_only["waveform"].numpy(),
                               atol=1e-6)
    assert np.abs(both["waveform"].numpy() - speed_only["waveform"].numpy()).max() > 0.01
