"""`jointctc-transcribe --model M AUDIO...` (docs/interfaces.md): one `AUDIO<TAB>TEXT` line per file.

`M` is a SavedModel folder or a `.tflite` file (both from jointctc-export), read by `tf_jointctc.Recognizer`.
For convenience `M` may also be a jointctc-train work dir: its model (`--which` checkpoint, decoding options
and the character LM of its `config.decode`, as jointctc-export exports them by default) is then exported to a
temporary SavedModel first, which takes a while. An audio file
that cannot be read or decoded gets a line `jointctc-transcribe: AUDIO: error` on stderr and the others are
still transcribed; the exit status is 1 if any file failed, 2 if the model cannot be loaded.
`--segment_seconds S` decodes audio longer than S seconds in pieces cut at its pauses (`Recognizer.transcribe`).
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import app, flags

_MODEL = flags.DEFINE_string("model", None, "SavedModel folder, .tflite file or jointctc-train work dir.")
_SIGNATURE = flags.DEFINE_enum(
    "signature", "serving_default", ["serving_default", "ctc_greedy", "attention_beam"], "Decoding signature."
)
_WHICH = flags.DEFINE_enum(
    "which", "best", ["best", "latest"], "Checkpoint, when --model is a work dir (exported to a temporary folder)."
)
_NUM_THREADS = flags.DEFINE_integer("num_threads", None, "TFLite interpreter threads.")
_SEGMENT_SECONDS = flags.DEFINE_float(
    "segment_seconds", 0.0,
    "Audio longer than this is cut at its quietest points into pieces of at most this many seconds (1-60), "
    "decoded one by one and joined: decoding time linear in the length, and any length accepted. 0: each file "
    "is decoded whole (at most 60 s).",
)


def _is_workdir(path: str) -> bool:
    """A jointctc-train work dir (it has a config.json) rather than an exported model (a SavedModel folder)."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return False
    return os.path.isfile(os.path.join(path, "config.json"))


def _export_workdir(workdir: str, which: str, folder: str) -> str:
    """Exports the model of `workdir` as a SavedModel under `folder`, as jointctc-export would with no flags but
    `--which`: decoding options from its config.decode, and the character LM of `decode.lm_workdir` (weight
    `decode.lm_weight`) inside the beam-search signatures. Returns the SavedModel's path."""
    from tf_jointctc.export.from_workdir import export_workdir

    path = os.path.join(folder, "saved_model")
    export_workdir(workdir, path, which=which)
    return path


def _transcribe(model: str, audio: list[str]) -> None:
    """Loads `model` (an exported one) and prints one line per audio file; exits 1 or 2 on failures."""
    from tf_jointctc.recognizer import ModelLoadError, Recognizer

    try:
        recognizer = Recognizer.load(model, num_threads=_NUM_THREADS.value)
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
            (text,) = recognizer.transcribe([path], signature=_SIGNATURE.value,
                                            segment_seconds=_SEGMENT_SECONDS.value or None)
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


def main(argv: list[str]) -> None:
    audio = argv[1:]
    if not _MODEL.value:
        sys.stderr.write("jointctc-transcribe: --model is required\n")
        sys.exit(2)
    if not audio:
        sys.stderr.write("jointctc-transcribe: no audio files given\n")
        sys.exit(2)
    if not _is_workdir(_MODEL.value):
        _transcribe(_MODEL.value, audio)
        return
    with tempfile.TemporaryDirectory(prefix="jointctc_transcribe_") as folder:
        try:
            model = _export_workdir(_MODEL.value, _WHICH.value, folder)
        except Exception as error:  # noqa: BLE001 - any failure means an unusable work dir
            sys.stderr.write(f"jointctc-transcribe: {_MODEL.value}: cannot export the work dir "
                             f"({type(error).__name__}: {error})\n")
            sys.exit(2)
        _transcribe(model, audio)


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
