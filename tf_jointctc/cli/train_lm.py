"""`jointctc-train-lm --config configs/lm_demo.py --workdir W [--config.a.b=v ...]` (issue 13).

Trains the character LSTM language model of joint decoding's shallow fusion on text (plain or gzipped text
files, or manifests' transcripts; `config.data.train` / `config.data.dev`, comma-separated) with `model.fit`.
Started again on the same work dir, it resumes from the last complete checkpoint and prints `resuming from ...`.
Logs dev bits per character every epoch (`history.json`, TensorBoard) and prints last one JSON line. A run
that cannot go on (no usable text) ends with its message on stderr and exit code 1.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from tf_jointctc.cli.resume_line import print_resume
from tf_jointctc.training.errors import TrainingError
from tf_jointctc.training.lm_loop import train_lm

_CONFIG = config_flags.DEFINE_config_file("config", None, "LM config file (configs/lm_*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Work dir: config, vocabulary, checkpoints, TensorBoard.")
_VERBOSE = flags.DEFINE_integer(
    "verbose", None,
    "Keras progress: 0 silent, 1 progress bar, 2 one line per epoch; default: 1 on a terminal, 2 when stdout is "
    "redirected to a file.",
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        summary = train_lm(_CONFIG.value, _WORKDIR.value, _VERBOSE.value, on_resume=print_resume)
    except TrainingError as error:
        raise SystemExit(f"jointctc-train-lm: {error}") from None
    logging.info("LM training finished: %s", summary)
    sys.stdout.write(json.dumps(summary) + "\n")


def run() -> None:
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)


if __name__ == "__main__":
    run()
