"""`jointctc-train --config configs/X.py --workdir W [--config.a.b=v ...] [--strategy NAME]`
(docs/interfaces.md).

Trains with `model.fit`. Started again on the same work dir, it resumes from the last complete checkpoint (an
epoch end, or inside an epoch with `train.checkpoint_every_steps`) and prints `resuming from ... at epoch N`.
Prints last one JSON line with the final losses and dev CER. A run that cannot go on (`TrainingError`: no
usable data, too many non-finite losses, ...) ends with its message on stderr and exit code 1.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from tf_jointctc.cli.resume_line import print_resume
from tf_jointctc.training.errors import TrainingError
from tf_jointctc.training.loop import train
from tf_jointctc.training.strategy import STRATEGIES

__all__ = ["run", "train"]

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Work dir: config, vocabulary, CMVN, checkpoints, TensorBoard.")
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy.")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices (mirrored).")
_TPU = flags.DEFINE_string("tpu", "", "TPU address for --strategy=tpu.")
_VERBOSE = flags.DEFINE_integer(
    "verbose", None,
    "Keras progress: 0 silent, 1 progress bar, 2 one line per epoch; default: 1 on a terminal, 2 when stdout is "
    "redirected to a file.",
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        summary = train(_CONFIG.value, _WORKDIR.value, _STRATEGY.value, _CPU_DEVICES.value, _TPU.value, _VERBOSE.value,
                        on_resume=print_resume)
    except TrainingError as error:
        raise SystemExit(f"jointctc-train: {error}") from None
    logging.info("training finished: %s", summary)
    sys.stdout.write(json.dumps(summary) + "\n")



def run() -> None:
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)


if __name__ == "__main__":
    run()
