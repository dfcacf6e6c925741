"""Training faults (issue 7): a batch whose loss is not finite is skipped and counted, through `model.fit`,
and `NonFiniteGuard` gives up after N such batches in a row with a clear message."""

from __future__ import annotations

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from tf_jointctc.model import build_model, make_optimizer
from tf_jointctc.text import Vocabulary
from tf_jointctc.training.callbacks import NonFiniteGuard

D = 120


def _model():
    keras.utils.set_random_seed(0)
    config = ml_collections.ConfigDict(
        {
            "model": {
                "encoder": {"num_layers": 2, "units": 8, "projection_units": 8, "subsample": (1, 2)},
                "attention": "location",
                "attention_dim": 8,
                "attention_filters": 2,
                "attention_width": 5,
                "sharpening": 2.0,
                "decoder_units": 8,
                "init_scale": 0.1,
            },
            "loss": {"ctc_weight": 0.5},
            "optimizer": {"name": "adam", "learning_rate": 1e-2, "clip_norm": 5.0},
        }
    )
    model = build_model(config.model, config.loss, Vocabulary())
    model.compile(optimizer=make_optimizer(config.optimizer))
    return model


def _batch(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = np.array([20, 16, 12], "int32")
    features = rng.standard_normal((3, 20, D)).astype("float32")
    for i, n in enumerate(lengths):
        features[i, n:] = 0.0
    labels = np.array([[3, 4, 5], [6, 7, 0], [8, 0, 0]], "int32")
    with np.errstate(invalid="ignore"):
        features = features * np.float32(scale)  # scale=inf: +-inf, and NaN where the features were 0
    return {"features": features, "feature_lengths": lengths, "labels": labels,
            "label_lengths": (labels > 0).sum(1).astype("int32")}


def _dataset(batches) -> tf.data.Dataset:
    stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
    return tf.data.Dataset.from_tensor_slices(stacked)


class _CountBatches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def _all_finite(model) -> bool:
    return all(np.all(np.isfinite(v.numpy())) for v in [*model.variables, *model.optimizer.variables])


def test_a_non_finite_batch_is_skipped_and_training_goes_on():
    model = _model()
    batches = [_batch(0), _batch(1), _batch(2, scale=np.inf), _batch(3), _batch(4)]
    guard = NonFiniteGuard(max_consecutive=3)
    history = model.fit(_dataset(batches), epochs=2, verbose=0, shuffle=False, callbacks=[guard])
    assert history.history["non_finite_steps"] == [1.0, 1.0]  # per epoch
    assert all(np.isfinite(history.history["loss"]))
    assert guard.total == 2 and guard.stopped_reason is None and guard.consecutive == 0
    assert int(model.optimizer.iterations.numpy()) == 2 * 4  # the bad batch never reached the optimizer
    assert _all_finite(model)
    # The model still learns from the good batches afterwards.
    logs = model.train_on_batch(_batch(0), return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["non_finite_steps"] == 0.0


def test_guard_stops_after_consecutive_non_finite_batches_with_a_clear_message():
    model = _model()
    before = [v.numpy().copy() for v in model.trainable_variables]
    counter = _CountBatches()
    guard = NonFiniteGuard(max_consecutive=3)
    bad = [_batch(i, scale=np.inf) for i in range(8)]
    history = model.fit(_dataset(bad), epochs=3, verbose=0, shuffle=False, callbacks=[guard, counter])
    assert counter.batches == 3 and len(history.epoch) == 1
    assert guard.total == 3
    assert guard.stopped_reason is not None
    assert "3 consecutive non-finite losses" in guard.stopped_reason
    assert "last checkpoint holds finite weights" in guard.stopped_reason
    for old, var in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(old, var.numpy())
    assert _all_finite(model)
    assert int(model.optimizer.iterations.numpy()) == 0
