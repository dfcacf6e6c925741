"""`train.alignment_data`: DevEvaluation takes its fixed alignment utterances from that data set, not dev."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_jointctc.config import base_config
from tf_jointctc.model import build_model
from tf_jointctc.text import Vocabulary
from tf_jointctc.training.callbacks import DevEvaluation


def _dataset(prefix: str, count: int, batch_size: int) -> tf.data.Dataset:
    rng = np.random.default_rng(len(prefix))
    frames, labels = 48, 5
    data = {
        "features": rng.normal(size=[count, frames, 120]).astype(np.float32),
        "feature_lengths": np.full([count], frames, np.int32),
        "labels": rng.integers(1, 30, size=[count, labels]).astype(np.int32),
        "label_lengths": np.full([count], labels, np.int32),
        "ids": np.array([f"{prefix}-{i}".encode() for i in range(count)]),
        "texts": np.array([b"abcde"] * count),
    }
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)


def _tiny_model():
    config = base_config()
    config.model.encoder.units = 8
    config.model.encoder.projection_units = 8
    config.model.attention_dim = 8
    config.model.attention_filters = 2
    config.model.attention_width = 5
    config.model.decoder_units = 8
    return build_model(config.model, config.loss, Vocabulary())


def _aligned_ids(tmp_path, alignment_dataset) -> list[str]:
    callback = DevEvaluation(_dataset("dev", 4, 3), Vocabulary(), str(tmp_path), num_alignments=2,
                             alignment_dataset=alignment_dataset)
    callback.set_model(_tiny_model())
    logs = {}
    callback.on_epoch_end(0, logs)
    assert "dev_cer" in logs
    with np.load(tmp_path / "alignments" / "epoch_001.npz") as data:
        for name in data.files:
            assert data[name].shape == (6, 12)  # labels + eos, 48 frames / 4
        return list(data.files)


def test_alignments_come_from_the_alignment_dataset(tmp_path):
    assert _aligned_ids(tmp_path / "a", _dataset("noisy", 5, 2)) == ["noisy-0", "noisy-1"]
    assert _aligned_ids(tmp_path / "b", None) == ["dev-0", "dev-1"]  # unchanged default: the first dev batch


def test_config_key_defaults_to_dev():
    assert base_config().train.alignment_data == ""
