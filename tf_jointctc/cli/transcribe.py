"""`jointctc-transcribe --model M AUDIO...` (CONTRACT.md): one `AUDIO<TAB>TEXT` line per file.

`M` is a SavedModel folder, a `.tflite` file (both from jointctc-export) or a jointctc-train work dir. An
audio file that cannot be read or decoded gets a line `jointctc-transcribe: AUDIO: error` on stderr and the
others are still transcribed; the exit status is 1 if any file failed, 2 if the model cannot be loaded.
"""

from __future__ import annotations

import sys

from absl import app, flags

_MODEL = flags.DEFINE_string("model", None, "SavedModel folder, .tflite file or jointctc-train work dir.")
_SIGNATURE = flags.DEFINE_enum(
    "signature", "serving_default", ["serving_default", "ctc_greedy", "attention_beam"], "Decoding signature."
)
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint, when --model is a work dir.")
_NUM_THREADS = flags.DEFINE_integer("num_threads", None, "TFLite interpreter threads.")


def main(argv: list[str]) -> None:
    audio = argv[1:]
    if not _MODEL.value:
        sys.stderr.write("jointctc-transcribe: --model is required\n")
        sys.exit(2)
    if not audio:
        sys.stderr.write("jointctc-transcribe: no audio files given\n")
        sys.exit(2)
    from tf_jointctc.recognizer import ModelLoadError, Recognizer

    try:
        recognizer = Recognizer.load(_MODEL.value, which=_WHICH.value, num_threads=_NUM_THREADS.value)
    except ModelLoadError as error:
        sys.stderr.write(f"jointctc-transcribe: {error}\n")
        sys.exit(2)
    if _SIGNATURE.value not in recognizer.signatures:
        sys.stderr.write(
            f"jointctc-transcribe: {_MODEL.value} has no signature {_SIGNATURE.value!r} "
            f"(it has {', '.join(recognizer.signatures)})\n"
        )
        sys.exit(2)
    failed = 0
    for path in audio:
        try:
            (text,) = recognizer.transcribe([path], signature=_SIGNATURE.value)
        except Exception as error:  # noqa: BLE001 - report and go on with the other files
            failed += 1
            sys.stderr.write(f"jointctc-transcribe: {path}: {error}\n")
            sys.stderr.flush()
            continue
        sys.stdout.write(f"{path}\t{text}\n")
        sys.stdout.flush()
    if failed:
        sys.stderr.write(f"jointctc-transcribe: {failed} of {len(audio)} files failed\n")
        sys.exit(1)


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
