"""An exponential moving average of the trained weights (`train.ema_decay`; not in the paper).

After every update each trainable variable's shadow copy moves towards it:

    shadow <- d_t * shadow + (1 - d_t) * weight,    d_t = min(ema_decay, (1 + t) / (10 + t))

with t the optimizer's update count after the update (TensorFlow's `ExponentialMovingAverage` with
`num_updates`: early shadows follow the weights closely instead of remembering the initialization). Training
itself is unchanged: the shadows only watch. Dev evaluation, the best checkpoint and everything read from it
(evaluation, export) use the averaged weights; `latest` and mid-epoch checkpoints keep both, so a resumed run
continues the average exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf

from tf_jointctc.trained_model import model_variables


def effective_decay(decay: float, updates: Any) -> tf.Tensor:
    """d_t = min(decay, (1 + t) / (10 + t)) for `updates` = t, as float32."""
    t = tf.cast(updates, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + t) / (10.0 + t))


class WeightAverage:
    """Shadow copies of `model`'s trainable variables, keyed as `trained_model.model_variables` keys them.

    Create it where the model's variables were created (inside the distribution strategy's scope), after the
    model is built."""

    def __init__(self, model: keras.Model, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an average's decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self._variables = model_variables(model)
        self.weights = {key: var for key, var in self._variables.items() if var.trainable}
        self.shadows = {
            key: tf.Variable(var.value, trainable=False, name="average/" + key.replace("/", "_"))
            for key, var in self.weights.items()
        }
        self._update = tf.function(self._update_shadows)

    def _update_shadows(self, updates: tf.Tensor) -> None:
        decay = effective_decay(self.decay, updates)
        for key, var in self.weights.items():
            shadow = self.shadows[key]
            shadow.assign(decay * shadow + (1.0 - decay) * tf.convert_to_tensor(var))

    def update(self, updates: Any) -> None:
        """Moves every shadow towards its weight, `updates` = the update count t after the latest update."""
        self._update(tf.convert_to_tensor(updates, tf.int64))

    def averaged_model_variables(self) -> dict[str, Any]:
        """`model_variables(model)` with each trainable variable replaced by its shadow: a checkpoint of this
        mapping reads back as the model's weights (`trained_model.restore_weights`)."""
        return {key: self.shadows.get(key, var) for key, var in self._variables.items()}

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block the model holds the averaged weights; after it, exactly its own again."""
        saved = {key: var.numpy() for key, var in self.weights.items()}
        for key, var in self.weights.items():
            var.assign(self.shadows[key])
        try:
            yield
        finally:
            for key, var in self.weights.items():
                var.assign(saved[key])


class AverageWeights(keras.callbacks.Callback):
    """Updates `average` after every training batch, and evaluates `fit`'s validation data on the averaged
    weights (they are swapped in for the validation pass and out after it)."""

    def __init__(self, average: WeightAverage):
        super().__init__()
        self.average = average
        self._swap: contextlib.AbstractContextManager | None = None

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # Put this callback before those that save checkpoints after a batch, so that they hold the update.
        self.average.update(self.model.optimizer.iterations)

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._swap = self.average.swapped_in()
        self._swap.__enter__()

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._swap is not None:
            self._swap.__exit__(None, None, None)
            self._swap = None
