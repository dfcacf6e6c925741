"""The training library raises `TrainingError`s (never `SystemExit`); jointctc-train turns them into one clear
line on stderr and exit code 1."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli, tiny_config, write_config_file
from tf_jointctc.text import Vocabulary
from tf_jointctc.training.errors import NoUsableDataError, TrainingError
from tf_jointctc.training.loop import prepare_data


def _unusable_manifest(tmp_path) -> str:
    path = tmp_path / "unusable.jsonl"
    path.write_text(json.dumps({"id": "u1", "audio": str(tmp_path / "missing.wav"), "text": "hello"}) + "\n")
    return str(path)


def test_prepare_data_raises_when_no_utterance_is_usable(tiny_corpus, tmp_path):
    config = tiny_config(tiny_corpus, **{"data.train": _unusable_manifest(tmp_path)})
    with pytest.raises(NoUsableDataError, match="no usable utterances in train data") as error:
        prepare_data(config, str(tmp_path / "work"), Vocabulary())
    assert isinstance(error.value, TrainingError) and not isinstance(error.value, SystemExit)


def test_jointctc_train_reports_a_training_error_on_stderr_with_exit_code_1(tiny_corpus, tmp_path):
    config = tiny_config(tiny_corpus, **{"data.train": _unusable_manifest(tmp_path)})
    result = run_cli("tf_jointctc.cli.train", f"--config={write_config_file(config, tmp_path)}",
                     f"--workdir={tmp_path / 'work'}", "--verbose=0")
    assert result.returncode == 1
    assert "jointctc-train: no usable utterances in train data" in result.stderr
    assert "Traceback" not in result.stderr
    assert not result.stdout.strip()  # no JSON summary
