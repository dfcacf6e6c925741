"""`train.max_minutes`: a wall-time budget ends training inside an epoch (with that epoch's dev evaluation and
checkpoint), and a rerun of a work dir whose budget is spent trains no more. The callback and the schedule are
unit-tested in test_training_units.py and test_model.py."""

from __future__ import annotations

import json

import pytest

from tests.helpers import SHALLOW_ENCODER, tiny_config
from tf_jointctc.training.errors import ConfigError
from tf_jointctc.training.loop import train


def test_a_spent_budget_ends_the_epoch_and_a_rerun_trains_no_more(tiny_corpus, tmp_path):
    # A budget of 0.06 s: spent by the first batch (its tracing alone takes seconds) of 50 epochs of 4 batches.
    config = tiny_config(tiny_corpus, **{**SHALLOW_ENCODER, "train.max_minutes": 0.001, "train.epochs": 50,
                                         "train.steps_per_epoch": 4, "optimizer.schedule": "cosine",
                                         "optimizer.warmup_steps": 1})
    workdir = str(tmp_path / "work")
    summary = train(config, workdir, verbose=0)
    assert summary["time_budget_reached"] and summary["epochs"] == 1 and summary["dev_cer"] is not None
    assert summary["updates"] == 1  # the batch that spent the budget, read back from the checkpoint
    history = json.loads((tmp_path / "work" / "history.json").read_text())
    assert len(history) == 1 and history[0]["train_seconds"] >= 0.06
    again = train(config, workdir, verbose=0)  # the budget is spent: nothing more to train
    assert again["time_budget_reached"] and again["epochs"] == 1 and again["updates"] == 1
    assert json.loads((tmp_path / "work" / "history.json").read_text()) == history


def test_a_budget_is_refused_where_workers_would_disagree_on_the_clock(tiny_corpus, tmp_path):
    """A `TrainingError`: jointctc-train prints it as one line and exits 1 (tests/training/test_training_errors.py)."""
    config = tiny_config(tiny_corpus, **{"train.max_minutes": 1.0})
    with pytest.raises(ConfigError, match="one process"):
        train(config, str(tmp_path / "work"), strategy_name="multi_worker")
    with pytest.raises(ConfigError, match=">= 0"):
        train(tiny_config(tiny_corpus, **{"train.max_minutes": -1.0}), str(tmp_path / "work"))
