"""The weight average of `train.ema_decay` (training/weight_average.py): its arithmetic against a NumPy
reference, the swap in and out, and what the checkpoints hold. A whole training run with it, killed and
resumed, is in tests/faults/test_mid_epoch_resume.py."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.helpers import tiny_config
from tf_jointctc.trained_model import model_variables, restore_weights
from tf_jointctc.training.checkpoint import TrainingCheckpoints
from tf_jointctc.training.errors import ConfigError
from tf_jointctc.training.loop import train
from tf_jointctc.training.weight_average import AverageWeights, WeightAverage, effective_decay


def _tiny_model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="out"),
                              keras.layers.BatchNormalization(name="norm")])  # norm: non-trainable variables too
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_effective_decay_follows_the_update_count_then_holds_at_the_decay():
    assert float(effective_decay(0.99, 0)) == pytest.approx(0.1)
    assert float(effective_decay(0.99, 90)) == pytest.approx(0.91)
    assert float(effective_decay(0.99, 10_000)) == pytest.approx(0.99)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_tiny_model(), decay)


def test_update_is_the_exponential_moving_average_of_the_trainable_weights():
    model = _tiny_model()
    average = WeightAverage(model, 0.8)
    assert sorted(average.shadows) == sorted(k for k, v in model_variables(model).items() if v.trainable)
    rng = np.random.default_rng(0)
    reference = {key: var.numpy().copy() for key, var in average.weights.items()}
    for t in range(1, 30):
        for var in average.weights.values():
            var.assign(rng.normal(size=var.shape).astype(np.float32))
        average.update(t)
        d = min(0.8, (1 + t) / (10 + t))
        for key, var in average.weights.items():
            reference[key] = d * reference[key] + (1 - d) * var.numpy()
    for key, shadow in average.shadows.items():
        np.testing.assert_allclose(shadow.numpy(), reference[key], rtol=1e-5, atol=1e-6, err_msg=key)
        assert not np.allclose(shadow.numpy(), average.weights[key].numpy())


def test_swapped_in_holds_the_averages_and_then_exactly_the_weights_again():
    model = _tiny_model()
    average = WeightAverage(model, 0.5)
    for var in average.weights.values():
        var.assign(var + 1.0)
    average.update(100)
    before = [w.copy() for w in model.get_weights()]
    own = {key: var.numpy().copy() for key, var in average.weights.items()}
    with average.swapped_in():
        for key, var in average.weights.items():
            np.testing.assert_array_equal(var.numpy(), average.shadows[key].numpy())
            assert not np.array_equal(var.numpy(), own[key])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_the_callback_updates_after_each_batch_and_validates_on_the_averages():
    model = _tiny_model()
    average = WeightAverage(model, 0.9)
    seen = {}

    class Spy(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen["validation"] = model.get_layer("out").kernel.numpy().copy()

    x = np.random.default_rng(1).normal(size=(32, 3)).astype(np.float32)
    model.fit(x, x[:, :2], batch_size=8, epochs=1, verbose=0, validation_data=(x, x[:, :2]),
              callbacks=[AverageWeights(average), Spy()])
    assert int(model.optimizer.iterations.numpy()) == 4
    shadow = average.shadows["out/kernel"].numpy()
    np.testing.assert_array_equal(seen["validation"], shadow)  # validation ran on the averages
    assert not np.allclose(model.get_layer("out").kernel.numpy(), shadow)  # and training goes on with its own


def test_best_holds_the_averages_and_latest_holds_both(tmp_path):
    model = _tiny_model()
    average = WeightAverage(model, 0.5)
    for var in average.weights.values():
        var.assign(var + 1.0)
    average.update(100)
    checkpoints = TrainingCheckpoints(str(tmp_path), model, model.optimizer, weight_average=average)
    checkpoints.save(1, {"dev_cer": 50.0})

    best = _tiny_model(seed=1)
    restore_weights(best, str(tmp_path), "best")
    for key, var in model_variables(best).items():
        expected = average.shadows[key] if key in average.shadows else model_variables(model)[key]
        np.testing.assert_array_equal(var.numpy(), expected.numpy(), err_msg=key)

    resumed = _tiny_model(seed=2)
    resumed_average = WeightAverage(resumed, 0.5)
    assert TrainingCheckpoints(str(tmp_path), resumed, resumed.optimizer,
                               weight_average=resumed_average).restore_latest() == 1
    for a, b in zip(resumed.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for key, shadow in average.shadows.items():
        np.testing.assert_array_equal(resumed_average.shadows[key].numpy(), shadow.numpy())


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_train_refuses_a_decay_outside_zero_to_one_before_any_work(tiny_corpus, tmp_path, decay):
    """A `ConfigError` (a `TrainingError`: jointctc-train prints it as one line and exits 1)."""
    with pytest.raises(ConfigError, match=r"train.ema_decay must be in \[0, 1\)"):
        train(tiny_config(tiny_corpus, **{"train.ema_decay": decay}), str(tmp_path / "work"))
    assert not (tmp_path / "work" / "cache").exists()
