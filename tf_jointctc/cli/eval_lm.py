"""`jointctc-eval-lm --lm_workdir W --data A[,B...]` (issue 13): bits per character and perplexity of a trained
character LM on text files or manifests' transcripts. Prints one JSON line (`lm_evaluation.score_text`); text
with no usable sentence or a work dir that is not an LM's: message on stderr, exit code 2."""

from __future__ import annotations

import json
import sys

from absl import app, flags

_LM_WORKDIR = flags.DEFINE_string("lm_workdir", None, "A jointctc-train-lm work dir.")
_DATA = flags.DEFINE_list("data", None, "Text files (.txt, .gz) or JSONL manifests, comma-separated.")
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint scores.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from tf_jointctc.lm_evaluation import score_text  # imports TensorFlow: after flag parsing

    try:
        summary = score_text(_LM_WORKDIR.value, _DATA.value, _CHECKPOINT.value)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"jointctc-eval-lm: {error}\n")
        raise SystemExit(2) from None
    sys.stdout.write(json.dumps({**summary, "lm_workdir": _LM_WORKDIR.value, "data": _DATA.value}) + "\n")


def run() -> None:
    flags.mark_flags_as_required(["lm_workdir", "data"])
    app.run(main)


if __name__ == "__main__":
    run()
