"""What a work dir holds besides checkpoints: the resolved config, the vocabulary and the CMVN statistics.

Evaluation, export and transcription rebuild the model from these files alone.
"""

from __future__ import annotations

import json
import os

import ml_collections
import tensorflow as tf
from absl import logging

from tf_jointctc.features import CMVNStats, compute_cmvn_stats
from tf_jointctc.text import Vocabulary
from tf_jointctc.training import atomic

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
CMVN_FILE = "cmvn.json"


def save_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    atomic.write_text(os.path.join(workdir, CONFIG_FILE), config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: {workdir} is not a jointctc-train work dir")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def save_vocab(workdir: str, vocab: Vocabulary) -> None:
    atomic.write_text(os.path.join(workdir, VOCAB_FILE), vocab.to_json() + "\n")


def load_vocab(workdir: str) -> Vocabulary:
    with open(os.path.join(workdir, VOCAB_FILE)) as f:
        return Vocabulary.from_json(f.read())


def load_or_compute_cmvn(workdir: str, train_dataset: tf.data.Dataset | None = None) -> CMVNStats:
    """Global CMVN statistics of the training set, computed once and kept in the work dir."""
    path = os.path.join(workdir, CMVN_FILE)
    if os.path.exists(path):
        return CMVNStats.load(path)
    if train_dataset is None:
        raise FileNotFoundError(f"{path} not found")
    stats = compute_cmvn_stats(train_dataset)
    tmp = path + ".tmp"
    stats.save(tmp)
    os.replace(tmp, path)
    logging.info("CMVN statistics over %d training frames saved to %s", int(stats.count), path)
    return stats


def load_trained_model(workdir: str, which: str = "best"):
    """Rebuilds the model of a jointctc-train work dir with its `which` ("best" or "latest") weights.

    Returns:
      (model, config, vocab, checkpoint_path).
    """
    from tf_jointctc.model import build_model
    from tf_jointctc.training.checkpoint import restore_weights

    config = load_config(workdir)
    vocab = load_vocab(workdir)
    cmvn = CMVNStats.load(os.path.join(workdir, CMVN_FILE))
    model = build_model(config.model, config.loss, vocab, cmvn)
    path = restore_weights(model, workdir, which)
    return model, config, vocab, path
