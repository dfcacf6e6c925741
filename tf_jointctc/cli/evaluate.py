"""`jointctc-eval --workdir W --data D --mode {ctc_greedy,attention,joint} [--beam 20] [--ctc_weight 0.3]
[--length_penalty 0.1] [--min_length_ratio 0] [--max_length_ratio 1] [--coverage_weight 0 --coverage_threshold 0.5]
[--max_repeats 0] [--max_attention_stall 0] [--lm_workdir LM --lm_weight 0.3] [--output H.jsonl]
[--intra_op_threads N]` (docs/interfaces.md): decodes a data set with a trained model and prints one JSON line
`{"cer", "wer", "utterances", "audio_seconds", "decode_seconds", "rtf", ..., "min_length_ratio", "max_length_ratio",
"coverage_weight", "coverage_threshold", "max_repeats", "max_attention_stall", "lm_workdir", "lm_weight",
"cpu_threads"}`. `--min_length_ratio` / `--max_length_ratio` (tokens per encoder frame: eos forbidden before,
output capped at), `--coverage_weight` / `--coverage_threshold` (the coverage
term: + weight per encoder frame whose attention summed over the hypothesis exceeds the threshold) and
`--max_repeats` (at most that many consecutive copies of a unit of 2 to 24 tokens in a hypothesis; 0: no limit)
and `--max_attention_stall` (a hypothesis whose attention peak has stayed behind its furthest frame for more than
that many tokens in a row may only end; 0: no limit) default to the config's `decode` section.

`--lm_workdir` (a jointctc-train-lm work dir) adds its character LM to the attention and joint beam searches by
shallow fusion with weight `--lm_weight`; both default to the recognizer config's `decode.lm_workdir` and
`decode.lm_weight` (`--lm_workdir=` decodes without an LM). The config's weight is the weight *when* an LM is
fused: without one (and in mode ctc_greedy) it is not used, where an explicit `--lm_weight > 0` is refused. An
LM over another vocabulary is refused.

`--output` receives one JSON object per utterance: reference, hypothesis, score and its edit counts.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from tf_jointctc.decoding.modes import MODES
from tf_jointctc.evaluation import evaluate_workdir
from tf_jointctc.training.strategy import set_cpu_threads

_WORKDIR = flags.DEFINE_string("workdir", None, "A jointctc-train work dir.")
_DATA = flags.DEFINE_string("data", None, "Data set: a .jsonl manifest or a Kaldi data dir.")
_MODE = flags.DEFINE_enum("mode", "joint", list(MODES), "Decoding: CTC best path, attention beam, or joint beam.")
_BEAM = flags.DEFINE_integer("beam", None, "Beam size (default: the config's decode.beam, paper: 20).")
_CTC_WEIGHT = flags.DEFINE_float("ctc_weight", None, "CTC weight of joint decoding (default: decode.ctc_weight).")
_LENGTH_PENALTY = flags.DEFINE_float("length_penalty", None, "Score bonus per output token (default: config).")
_MIN_LENGTH_RATIO = flags.DEFINE_float(
    "min_length_ratio", None, "Tokens per encoder frame before eos is allowed, attention/joint modes (default: config)."
)
_MAX_LENGTH_RATIO = flags.DEFINE_float(
    "max_length_ratio", None, "Max tokens per encoder frame, attention/joint modes (default: config)."
)
_COVERAGE_WEIGHT = flags.DEFINE_float(
    "coverage_weight", None,
    "Score per encoder frame the hypothesis' attention covers, attention/joint modes (default: config; 0: none).",
)
_COVERAGE_THRESHOLD = flags.DEFINE_float(
    "coverage_threshold", None, "Summed attention at which a frame counts as covered (default: config).",
)
_MAX_REPEATS = flags.DEFINE_integer(
    "max_repeats", None,
    "At most this many consecutive copies of a unit of 2 to 24 tokens in a hypothesis, attention/joint modes "
    "(default: config; 0: no limit).", lower_bound=0,
)
_MAX_ATTENTION_STALL = flags.DEFINE_integer(
    "max_attention_stall", None,
    "A hypothesis whose attention peak has stayed behind its furthest frame for more than this many tokens in a row "
    "may only end, attention/joint modes (default: config; 0: no limit).", lower_bound=0,
)
# Flags named after `DecodeOptions` fields: evaluate_workdir's overrides of the config's `decode` (None: the config's).
_DECODE_OPTION_FLAGS = (
    _BEAM, _CTC_WEIGHT, _LENGTH_PENALTY, _MIN_LENGTH_RATIO, _MAX_LENGTH_RATIO, _COVERAGE_WEIGHT, _COVERAGE_THRESHOLD,
    _MAX_REPEATS, _MAX_ATTENTION_STALL,
)
_LM_WORKDIR = flags.DEFINE_string(
    "lm_workdir", None, "A jointctc-train-lm work dir for shallow fusion (default: decode.lm_workdir; '' for none)."
)
_LM_WEIGHT = flags.DEFINE_float("lm_weight", None, "LM weight beta, attention/joint modes (default: decode.lm_weight).")
_OUTPUT = flags.DEFINE_string("output", None, "Write per-utterance hypotheses and errors to this JSONL file.")
_WHICH = flags.DEFINE_enum(
    "which", "best", ["best", "latest"],
    "Checkpoint: best dev CER (averaged weights with train.ema_decay) or the newest (the weights as trained).",
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Utterances decoded together.")
_INTRA_OP_THREADS = flags.DEFINE_integer(
    "intra_op_threads", 0, "Threads per TensorFlow op (0: TensorFlow's default, one per core). 1 decodes the demo "
    "model 1.09-1.18x faster on 2 cores, the same hypotheses (docs/performance.md); `make demo` uses it.",
    lower_bound=0,
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    threads = set_cpu_threads(_INTRA_OP_THREADS.value, 0)  # before any TensorFlow op runs
    try:
        summary = evaluate_workdir(
            _WORKDIR.value, _DATA.value, _MODE.value, output=_OUTPUT.value, which=_WHICH.value,
            batch_size=_BATCH_SIZE.value, lm_workdir=_LM_WORKDIR.value, lm_weight=_LM_WEIGHT.value,
            **{flag.name: flag.value for flag in _DECODE_OPTION_FLAGS},
        )
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"jointctc-eval: {error}") from None
    summary["cpu_threads"] = threads
    sys.stdout.write(json.dumps(summary) + "\n")


def run() -> None:
    flags.mark_flags_as_required(["workdir", "data"])
    app.run(main)


if __name__ == "__main__":
    run()
