"""Issue 12: with `train.steps_per_epoch` (epochs of N updates from an endless, per-pass-seeded stream), a run
stopped after an epoch and resumed continues with exactly the batches an uninterrupted run sees: after the
same number of updates both have the same weights (to float tolerance)."""

from __future__ import annotations

import numpy as np

from tests.helpers import tiny_config
from tf_jointctc.trained_model import load_trained_model
from tf_jointctc.training.loop import train


def _weights(workdir) -> list[np.ndarray]:
    model = load_trained_model(str(workdir), "latest")[0]
    return [w.numpy() for w in model.weights]


def test_resumed_stream_run_equals_uninterrupted_run(tiny_corpus, tmp_path):
    def config(epochs):
        # 5 updates of 8 per epoch over ~13 train utterances: epoch 2 starts inside the second pass.
        return tiny_config(tiny_corpus, **{"train.steps_per_epoch": 5, "train.epochs": epochs,
                                           "data.cache_dir": str(tmp_path / "cache")})

    straight = train(config(2), str(tmp_path / "straight"), verbose=0)
    train(config(1), str(tmp_path / "resumed"), verbose=0)
    after_one_epoch = _weights(tmp_path / "resumed")
    resumed = train(config(2), str(tmp_path / "resumed"), verbose=0)
    assert straight["epochs"] == resumed["epochs"] == 2
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=2e-5, rtol=1e-4)
    # The resumed epoch's five updates moved the weights (so equal weights mean equal batches).
    assert sum(not np.allclose(w, x, atol=1e-4) for w, x in zip(after_one_epoch, b)) > len(b) // 2
