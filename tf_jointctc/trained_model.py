"""Reading a trained model back from a jointctc-train work dir: config, vocabulary, CMVN and checkpoint weights.

A work dir (written by `tf_jointctc.training`) holds `config.json` (the resolved config), `vocab.json`,
`cmvn.json` (global CMVN statistics of the training set) and `checkpoints/{latest,best}` (TF checkpoints whose
`model` entry maps each variable's Keras path to the variable: `model_variables`). Evaluation, export and the
reproduction scripts rebuild the model from these files alone (`load_trained_model`). A jointctc-train-lm work
dir holds the same files but CMVN, and `load_trained_lm` rebuilds its character LM.
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import ml_collections
import tensorflow as tf

from tf_jointctc.features import CMVNStats
from tf_jointctc.language_model import build_language_model
from tf_jointctc.model import build_model
from tf_jointctc.text import Vocabulary

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
CMVN_FILE = "cmvn.json"
CHECKPOINTS_DIR = "checkpoints"  # holds `latest` and `best`, one tf.train.CheckpointManager folder each


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The resolved config of a work dir. Raises FileNotFoundError if `workdir` has none."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: {workdir} is not a jointctc-train work dir")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def load_vocab(workdir: str) -> Vocabulary:
    with open(os.path.join(workdir, VOCAB_FILE)) as f:
        return Vocabulary.from_json(f.read())


def model_variables(model: keras.Model) -> dict[str, Any]:
    """Every variable of `model` keyed by its Keras path below the model: what checkpoints save as the model.

    `tf.train.Checkpoint(model=model)` does not reach the variables of Keras 3 layers held in plain Python
    lists (the encoder's BLSTM stack): they were missing from weight-only checkpoints. An explicit mapping
    names each variable once, whatever the layer nesting. Sub-layers therefore need explicit names (Keras would
    number an unnamed `dense` differently in another model of the same process); ours all have them.
    """
    prefix = model.name + "/"  # Keras numbers a process's second model "..._1": keys must not depend on it
    variables = {v.path.removeprefix(prefix): v for v in model.weights}
    if len(variables) != len(model.weights):
        raise ValueError("model variables must have unique paths to be checkpointed")
    return variables


def restore_weights(model: keras.Model, workdir: str, which: str = "best") -> str:
    """Loads the model weights of `<workdir>/checkpoints/<which>` (falls back to latest); returns the path."""
    for name in (which, "latest"):
        path = tf.train.latest_checkpoint(os.path.join(workdir, CHECKPOINTS_DIR, name))
        if path:
            tf.train.Checkpoint(model=model_variables(model)).restore(path).expect_partial().assert_existing_objects_matched()
            return path
    raise FileNotFoundError(f"no checkpoint in {workdir}/{CHECKPOINTS_DIR}; train first (jointctc-train)")


def load_trained_model(workdir: str, which: str = "best") -> tuple[Any, ml_collections.ConfigDict, Vocabulary, str]:
    """Rebuilds the model of a jointctc-train work dir with its `which` ("best" or "latest") weights.

    Returns:
      (model: `JointCTCAttention`, config, vocab, checkpoint_path).
    """
    config = load_config(workdir)
    vocab = load_vocab(workdir)
    cmvn = CMVNStats.load(os.path.join(workdir, CMVN_FILE))
    model = build_model(config.model, config.loss, vocab, cmvn)
    path = restore_weights(model, workdir, which)
    return model, config, vocab, path


def load_trained_lm(workdir: str, which: str = "best") -> tuple[Any, ml_collections.ConfigDict, Vocabulary, str]:
    """Rebuilds the character LM of a jointctc-train-lm work dir (`config.json`, `vocab.json`, checkpoints)
    with its `which` ("best": lowest dev bits per character, or "latest") weights.

    Returns:
      (model: `CharacterLanguageModel`, config, vocab, checkpoint_path).
    """
    config = load_config(workdir)
    if "layers" not in config.get("model", {}):
        raise ValueError(f"{workdir} is not a jointctc-train-lm work dir (its config has no model.layers)")
    vocab = load_vocab(workdir)
    model = build_language_model(config.model, vocab)
    path = restore_weights(model, workdir, which)
    return model, config, vocab, path
