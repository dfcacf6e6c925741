"""`jointctc-synth --out_dir D --minutes M --seed S`: builds the built-in synthesized corpus
(docs/interfaces.md).

Prints last one JSON line: `{"out_dir", "splits": {split: {"utterances", "minutes"}}, "speakers": {split: n},
"engines", "seconds_elapsed"}`.
"""

from __future__ import annotations

import json

from absl import app, flags, logging

from tf_jointctc.data.synth.engines import ENGINES

flags.DEFINE_string(
    "out_dir", None, "Folder to build the corpus in (train, dev, test_clean, test_noisy, test_unseen_voice, "
    "dev_unseen_voice, dev_noisy)."
)
flags.DEFINE_float(
    "minutes", 60.0, "Minutes of train + dev + test_clean speech (test_noisy copies test_clean; test_unseen_voice "
    "is test_clean's size)."
)
flags.DEFINE_float(
    "heldout_minutes", 0.0, "Minutes of dev and of test_clean each (train gets the rest); 0: 10%% of --minutes each."
)
flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives byte-identical manifests and audio.")
flags.DEFINE_integer("workers", 2, "Worker processes (the result does not depend on it).")
flags.DEFINE_list(
    "engines", list(ENGINES), "TTS engines the corpus uses; a missing one is an error. `festival` (not in the "
    "default) adds its voice ked to train only (engines.TRAIN_ONLY_VOICES); dev and test splits are unchanged."
)
flags.DEFINE_bool(
    "allow_missing_engines", False, "Build without the engines of --engines that are not installed (warned and "
    "recorded in corpus.json) instead of failing."
)
flags.DEFINE_bool(
    "extra_train_voices", False, "Train is also spoken by eight more espeak-ng voices that speak no other split "
    "(engines.EXTRA_TRAIN_VOICES); dev and test splits are unchanged."
)
flags.DEFINE_float(
    "noise_fraction", 0.5, "Probability that a train utterance gets babble or coloured noise (SynthConfig."
    "noise_fraction); the same seed makes the noisy utterances of a smaller fraction a subset of a larger one's."
)
flags.mark_flag_as_required("out_dir")

FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from tf_jointctc.data.synth import MissingEngineError, SynthConfig, build_corpus

    if FLAGS.minutes <= 0:
        raise app.UsageError("--minutes must be positive")
    if FLAGS.heldout_minutes < 0 or 2 * FLAGS.heldout_minutes >= FLAGS.minutes:
        raise app.UsageError("--heldout_minutes must be >= 0 and leave train some of --minutes")
    if not 0.0 <= FLAGS.noise_fraction <= 1.0:
        raise app.UsageError(f"--noise_fraction must be in [0, 1], got {FLAGS.noise_fraction}")
    config = SynthConfig(
        minutes=FLAGS.minutes,
        seed=FLAGS.seed,
        heldout_minutes=FLAGS.heldout_minutes,
        engines=tuple(FLAGS.engines),
        allow_missing_engines=FLAGS.allow_missing_engines,
        extra_train_voices=FLAGS.extra_train_voices,
        noise_fraction=FLAGS.noise_fraction,
    )
    try:
        summary = build_corpus(FLAGS.out_dir, config, workers=FLAGS.workers)
    except (MissingEngineError, ValueError) as error:
        raise SystemExit(f"jointctc-synth: {error}") from None
    logging.info("corpus written to %s", summary["out_dir"])
    print(json.dumps(summary), flush=True)


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
