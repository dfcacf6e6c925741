"""Writing what a work dir holds besides checkpoints: the resolved config, the vocabulary and the CMVN statistics.

The file names and the reading side (`load_trained_model`, which rebuilds the model from these files alone for
evaluation, export and transcription) are in `tf_jointctc.trained_model`.
"""

from __future__ import annotations

import os

import ml_collections
import tensorflow as tf
from absl import logging

from tf_jointctc.features import CMVNStats, compute_cmvn_stats
from tf_jointctc.text import Vocabulary
from tf_jointctc.trained_model import CMVN_FILE, CONFIG_FILE, VOCAB_FILE
from tf_jointctc.training import atomic


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    atomic.write_text(os.path.join(workdir, CONFIG_FILE), config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def save_vocab(workdir: str, vocab: Vocabulary) -> None:
    atomic.write_text(os.path.join(workdir, VOCAB_FILE), vocab.to_json() + "\n")


def load_or_compute_cmvn(workdir: str, train_dataset: tf.data.Dataset | None = None) -> CMVNStats:
    """Global CMVN statistics of the training set, computed once and kept in the work dir."""
    path = os.path.join(workdir, CMVN_FILE)
    if os.path.exists(path):
        return CMVNStats.load(path)
    if train_dataset is None:
        raise FileNotFoundError(f"{path} not found")
    stats = compute_cmvn_stats(train_dataset)
    tmp = os.path.join(workdir, atomic.TEMP_PREFIX + CMVN_FILE)
    stats.save(tmp)
    os.replace(tmp, path)
    logging.info("CMVN statistics over %d training frames saved to %s", int(stats.count), path)
    return stats
