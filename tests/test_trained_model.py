"""tf_jointctc.trained_model: a work dir read back (config, vocabulary, checkpoint weights)."""

from __future__ import annotations

import keras
import ml_collections
import numpy as np
import pytest

from tf_jointctc.text import Vocabulary
from tf_jointctc.trained_model import load_config, load_trained_model, load_vocab, restore_weights


def test_what_training_writes_is_read_back(tmp_path):
    from tf_jointctc.training import workdir as wd

    config = ml_collections.ConfigDict({"model": {"units": 8}, "decode": {"beam": 3}})
    wd.save_config(str(tmp_path), config)
    wd.save_vocab(str(tmp_path), Vocabulary())
    assert load_config(str(tmp_path)).to_dict() == config.to_dict()
    assert load_vocab(str(tmp_path)).tokens == Vocabulary().tokens


def test_a_folder_that_is_not_a_workdir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a jointctc-train work dir"):
        load_config(str(tmp_path))


def test_restore_weights_without_checkpoint_is_a_clear_error(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="out")])
    with pytest.raises(FileNotFoundError, match="train first"):
        restore_weights(model, str(tmp_path))


def test_load_trained_model_restores_every_weight(trained_workdir):
    """Every variable, the encoder's BLSTM stack included, comes from the checkpoint: two loads agree exactly
    and differ from a fresh initialisation. (Keras 3 layers kept in Python lists once escaped
    `tf.train.Checkpoint(model=...)`, so a loaded model silently got a random encoder.)"""
    from tf_jointctc.model import build_model

    workdir, _ = trained_workdir
    keras.utils.set_random_seed(1)
    first, config, vocab, path = load_trained_model(str(workdir), "latest")
    keras.utils.set_random_seed(2)
    second, _, _, _ = load_trained_model(str(workdir), "best")
    third, _, _, _ = load_trained_model(str(workdir), "latest")
    assert path.endswith("ckpt-2") and vocab.size == 33 and config.loss.ctc_weight == 0.2
    fresh = build_model(config.model, config.loss, vocab)
    encoder_weights = [v.path for v in first.weights if "/encoder/" in v.path]
    assert len(encoder_weights) >= 16
    for a, c, f in zip(first.weights, third.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), c.numpy(), err_msg=a.path)
        if a.trainable:
            assert not np.array_equal(a.numpy(), f.numpy()), a.path
    assert len(second.weights) == len(first.weights)
