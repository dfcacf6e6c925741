"""`jointctc-synth --out_dir D --minutes M --seed S`: builds the built-in synthesized corpus (CONTRACT.md).

Prints last one JSON line: `{"out_dir", "splits": {split: {"utterances", "minutes"}}, "speakers": {split: n},
"engines", "seconds_elapsed"}`.
"""

from __future__ import annotations

import json

from absl import app, flags, logging

flags.DEFINE_string("out_dir", None, "Folder to build the corpus in (train, dev, test_clean, test_noisy).")
flags.DEFINE_float("minutes", 60.0, "Minutes of speech: ~80% train, ~10% dev, ~10% test_clean (test_noisy copies it).")
flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives byte-identical manifests and audio.")
flags.DEFINE_integer("workers", 2, "Worker processes (the result does not depend on it).")
flags.DEFINE_list("engines", [], "TTS engines to use among pico, flite, espeak (default: every one installed).")
flags.mark_flag_as_required("out_dir")

FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from tf_jointctc.data.synth import SynthConfig, build_corpus

    if FLAGS.minutes <= 0:
        raise app.UsageError("--minutes must be positive")
    config = SynthConfig(minutes=FLAGS.minutes, seed=FLAGS.seed, engines=tuple(FLAGS.engines))
    summary = build_corpus(FLAGS.out_dir, config, workers=FLAGS.workers)
    logging.info("corpus written to %s", summary["out_dir"])
    print(json.dumps(summary), flush=True)


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
