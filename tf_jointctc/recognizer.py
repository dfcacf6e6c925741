"""`Recognizer`: transcribe audio with an exported model (a SavedModel folder or a `.tflite` file).

```python
import tf_jointctc as jc
rec = jc.Recognizer.load("export/saved_model")      # or "model.tflite" (both written by jointctc-export)
rec.transcribe(["a.wav", waveform_np])              # -> list[str]
rec.transcribe(["a.wav"], signature="ctc_greedy")
```

Audio: a path (any WAV/FLAC, read with `tf_jointctc.data.audio.read_audio`, resampled to 16 kHz, first channel)
or a 1-D numpy array of 16 kHz samples (float in [-1, 1], or int16 PCM, scaled by 1/32768). An empty file or
array gives "". Audio longer than `MAX_SAMPLES` (60 s) raises ValueError before the model runs (the TFLite
model cannot refuse it itself: its converter drops assertions); non-finite samples are zeroed in-graph.
Long audio: `transcribe(..., segment_seconds=20)` cuts it at its quietest points into pieces of at most 20 s,
decodes them one by one and joins their texts (`tf_jointctc.segmentation`); time is then linear in the length,
and audio of any length is accepted.

Backends:
- SavedModel: `tf.saved_model.load`, the signature's `text` output;
- TFLite: `ai_edge_litert.interpreter.Interpreter` (no TensorFlow import), batch 1, the input resized to each
  utterance's length; text from the vocabulary in the model's metadata (`tf_jointctc.tflite_metadata`).

It reads exported files only: a jointctc-train work dir is exported first (jointctc-export; jointctc-transcribe
does that itself, into a temporary folder, when `--model` is a work dir). A character LM exported inside the
model (jointctc-export --lm_workdir) is part of its beam-search signatures: `Recognizer.lm` shows its record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tf_jointctc.segmentation import split_long_audio
from tf_jointctc.tflite_metadata import read_export_info

SAMPLE_RATE = 16000
# Kept equal to tf_jointctc.export.signatures.MAX_SAMPLES / MIN_SAMPLES (a test checks) without importing TensorFlow.
MAX_SAMPLES = 960_000
MIN_SAMPLES = 400
MIN_SEGMENT_SECONDS = 1.0  # the shortest piece length `segment_seconds` may ask for
DEFAULT_SIGNATURE = "serving_default"


class ModelLoadError(OSError, ValueError):
    """A model path that cannot be loaded (missing, corrupt, truncated or not an export)."""


def decode_ids(info: dict[str, Any], ids: Sequence[int] | np.ndarray, count: int) -> str:
    """The text of a signature's first `count` token ids [max_len], read with the export's vocabulary
    (`export_info`); blank, sos/eos and out-of-range ids are left out."""
    tokens = info["vocabulary"]
    specials = {int(info.get("blank_id", 0)), int(info.get("sos_id", len(tokens) - 1))}
    return "".join(tokens[i] for i in map(int, ids[:count]) if 0 <= i < len(tokens) and i not in specials)


def join_pieces(pieces: Sequence[dict[str, Any]], space_id: int | None) -> dict[str, Any]:
    """Pieces of one recording decoded one by one, [{"text", "token_ids", "score"}] in order, as one
    transcript: texts joined by one space and token ids by `space_id`, each piece without its own leading and
    trailing spaces, empty pieces left out; the score is the sum of theirs."""
    texts = [piece["text"].strip() for piece in pieces]
    words = [_strip(list(piece["token_ids"]), space_id) for piece in pieces]
    token_ids = [i for k, ids in enumerate(ids for ids in words if ids)
                 for i in ([space_id] if k and space_id is not None else []) + ids]
    return {"text": " ".join(t for t in texts if t), "token_ids": token_ids,
            "score": sum(float(piece["score"]) for piece in pieces)}


def _strip(token_ids: list[int], value: int | None) -> list[int]:
    start, end = 0, len(token_ids)
    while start < end and token_ids[start] == value:
        start += 1
    while end > start and token_ids[end - 1] == value:
        end -= 1
    return token_ids[start:end]


def to_waveform(audio: Any) -> np.ndarray:
    """A path or a 1-D array -> float32 [S] in [-1, 1] at 16 kHz (see the module docstring)."""
    if isinstance(audio, str | os.PathLike):
        from tf_jointctc.data import skips
        from tf_jointctc.data.audio import AudioError, read_audio

        try:
            pcm = read_audio(os.fspath(audio), sample_rate=SAMPLE_RATE)
        except AudioError as error:
            if error.reason == skips.EMPTY_AUDIO:
                return np.zeros(0, np.float32)
            raise
        return pcm.astype(np.float32) / 32768.0
    array = np.asarray(audio)
    if array.ndim != 1:
        raise ValueError(f"a waveform must be 1-D [samples] at 16 kHz, got shape {array.shape}")
    if array.dtype == np.int16:
        return array.astype(np.float32) / 32768.0
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"a waveform must hold numbers, got dtype {array.dtype}")
    return array.astype(np.float32)


class Recognizer:
    """Speech to text with an exported model. Build with `Recognizer.load(path)`."""

    def __init__(self, backend: Any, path: str, info: dict[str, Any]):
        self._backend = backend
        self.path = path
        self.info = info
        self.format: str = backend.format
        self.vocabulary: tuple[str, ...] = tuple(info["vocabulary"])
        self._space_id = self.vocabulary.index(" ") if " " in self.vocabulary else None

    @property
    def lm(self) -> dict[str, Any] | None:
        """The character language model fused into the beam-search signatures, as the export recorded it
        (`export_info["lm"]`: work dir, checkpoint, weight, layers, units, signatures, ...), or None."""
        return self.info.get("lm")

    @property
    def signatures(self) -> tuple[str, ...]:
        """Decoding signatures this model has (`serving_default`, `ctc_greedy`, `attention_beam`)."""
        return tuple(self._backend.signatures)

    @classmethod
    def load(cls, path: str | os.PathLike, *, num_threads: int | None = None) -> Recognizer:
        """Loads a SavedModel folder or a `.tflite` file written by jointctc-export.

        Args:
          path: the model.
          num_threads: TFLite interpreter threads (None: the interpreter's default).

        Raises:
          ModelLoadError (an OSError and a ValueError) naming the path if it cannot be loaded (a jointctc-train
          work dir included: export it first).
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise ModelLoadError(f"{path}: no such model (expected a SavedModel folder or a .tflite file)")
        if os.path.isdir(path):
            if os.path.exists(os.path.join(path, "saved_model.pb")):
                backend = _SavedModelBackend(path)
            elif os.path.exists(os.path.join(path, "config.json")):
                raise ModelLoadError(
                    f"{path}: a jointctc-train work dir, not an exported model; export it first (jointctc-export)"
                )
            else:
                raise ModelLoadError(f"{path}: not a SavedModel (no saved_model.pb)")
        else:
            backend = _TFLiteBackend(path, num_threads)
        return cls(backend, path, backend.info)

    def recognize(self, audio: Sequence[Any], signature: str = DEFAULT_SIGNATURE,
                  segment_seconds: float | None = None) -> list[dict[str, Any]]:
        """Like `transcribe`, with details: [{"text", "token_ids" (list), "score", "segments"}] per input.

        `segments` lists the pieces decoded one by one, [{"start", "end" (seconds), "text"}]: one piece unless
        `segment_seconds` cut the audio. Cut audio's pieces are joined by one space (the space's id in
        `token_ids`), each without its own leading and trailing spaces, empty pieces left out; `score` is the sum
        of theirs."""
        if isinstance(audio, str | os.PathLike | np.ndarray):
            raise TypeError("pass a list of paths or waveforms (a single item: [item])")
        if signature not in self._backend.signatures:
            raise ValueError(f"{self.path} has no signature {signature!r}; it has {sorted(self._backend.signatures)}")
        if segment_seconds is not None and not MIN_SEGMENT_SECONDS <= segment_seconds <= MAX_SAMPLES / SAMPLE_RATE:
            raise ValueError(f"segment_seconds must be within [{MIN_SEGMENT_SECONDS:g}, {MAX_SAMPLES / SAMPLE_RATE:g}] "
                             f"s (None: no cutting), got {segment_seconds}")
        return [self._recognize_one(to_waveform(item), signature, segment_seconds) for item in audio]

    def _recognize_one(self, waveform: np.ndarray, signature: str, segment_seconds: float | None) -> dict[str, Any]:
        if segment_seconds is None:
            if waveform.shape[0] > MAX_SAMPLES:
                raise ValueError(
                    f"audio too long: {waveform.shape[0]} samples ({waveform.shape[0] / SAMPLE_RATE:.1f} s) > "
                    f"{MAX_SAMPLES} ({MAX_SAMPLES / SAMPLE_RATE:g} s); split it first or pass segment_seconds"
                )
            pieces = [(0, waveform.shape[0])] if waveform.shape[0] else []
        else:
            pieces = split_long_audio(waveform, segment_seconds, SAMPLE_RATE)
        decoded = [self._decode(waveform[start:end], signature) for start, end in pieces]
        segments = [{"start": start / SAMPLE_RATE, "end": end / SAMPLE_RATE, "text": piece["text"]}
                    for (start, end), piece in zip(pieces, decoded, strict=True)]
        if len(decoded) == 1:
            return {**decoded[0], "segments": segments}
        return {**join_pieces(decoded, self._space_id), "segments": segments}

    def _decode(self, waveform: np.ndarray, signature: str) -> dict[str, Any]:
        """One piece of at most `MAX_SAMPLES` through the signature -> {"text", "token_ids", "score"}."""
        if waveform.shape[0] < MIN_SAMPLES:
            return {"text": "", "token_ids": [], "score": 0.0}
        token_ids, num_tokens, score, text = self._backend.run(signature, waveform)
        count = int(num_tokens)
        if text is None:
            text = decode_ids(self.info, token_ids, count)
        return {"text": text, "token_ids": [int(i) for i in token_ids[:count]], "score": float(score)}

    def transcribe(self, audio: Sequence[Any], signature: str = DEFAULT_SIGNATURE,
                   segment_seconds: float | None = None) -> list[str]:
        """Paths and/or 1-D waveforms -> one transcript per input (decoded with `signature`).

        `segment_seconds` (at most 60): audio longer than that is cut at its quietest points into pieces of at
        most that length, decoded one by one and joined (`segmentation.split_long_audio`): decoding time then
        grows linearly with the length, and audio longer than the model's 60 s limit is accepted. None (the
        default) decodes each input whole and refuses more than 60 s."""
        return [r["text"] for r in self.recognize(audio, signature, segment_seconds)]

    def __repr__(self) -> str:
        lm = f", lm_weight={self.lm['weight']:g}" if self.lm else ""
        return f"Recognizer({self.path!r}, format={self.format!r}, signatures={list(self.signatures)}{lm})"


class _SavedModelBackend:
    format = "saved_model"

    def __init__(self, path: str):
        import tensorflow as tf

        self._tf = tf
        try:
            self._loaded = tf.saved_model.load(path)
            signatures = dict(self._loaded.signatures)
            described = signatures["export_info"]()
            self.info = json.loads(described["export_info"].numpy().decode("utf-8"))
        except Exception as error:  # noqa: BLE001 - any failure means an unusable model folder
            raise ModelLoadError(f"{path}: cannot load the SavedModel ({type(error).__name__}: {error})") from error
        self.signatures = {name: fn for name, fn in signatures.items() if name in self.info["signatures"]}

    def run(self, signature: str, waveform: np.ndarray):
        tf = self._tf
        out = self.signatures[signature](
            waveform=tf.constant(waveform[None, :]), num_samples=tf.constant([waveform.shape[0]], tf.int32)
        )
        text = out["text"].numpy()[0].decode("utf-8")
        return out["token_ids"].numpy()[0], int(out["num_tokens"].numpy()[0]), float(out["score"].numpy()[0]), text


class TFLiteSignatures:
    """Runs the decoding signatures of a LiteRT interpreter on one utterance at a time.

    The encoder's fused LSTM ops keep their states in variable tensors that every invocation overwrites
    (`export.to_tflite`), so each call resets them first. Resetting needs every subgraph allocated: the
    constructor runs each of the model's signatures once on `MIN_SAMPLES` of silence.

    Args:
      interpreter: an `ai_edge_litert.interpreter.Interpreter` of a jointctc TFLite model.
      names: the signatures to call (default: all of the model's).
    """

    def __init__(self, interpreter: Any, names: Sequence[str] | None = None):
        self.interpreter = interpreter
        every = list(interpreter.get_signature_list())
        runners = {name: interpreter.get_signature_runner(name) for name in every}
        for runner in runners.values():  # allocates each signature's tensors (no reset before that)
            runner(waveform=np.zeros([1, MIN_SAMPLES], np.float32), num_samples=np.array([MIN_SAMPLES], np.int32))
        self.runners = {name: runners[name] for name in (every if names is None else names)}

    def __call__(self, name: str, waveform: np.ndarray) -> dict[str, np.ndarray]:
        """waveform [samples] float32 -> the signature's outputs for it (batch row 0 of each)."""
        self.interpreter.reset_all_variables()
        out = self.runners[name](waveform=np.asarray(waveform, np.float32)[None, :],
                                 num_samples=np.array([len(waveform)], np.int32))
        return {key: value[0] for key, value in out.items()}


class _TFLiteBackend:
    format = "tflite"

    def __init__(self, path: str, num_threads: int | None):
        try:
            self.info = read_export_info(path)
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_path=path, num_threads=num_threads)
            names = [name for name in interpreter.get_signature_list() if name in self.info["signatures"]]
            self._run = TFLiteSignatures(interpreter, names)
        except Exception as error:  # noqa: BLE001 - any failure means an unusable file
            raise ModelLoadError(f"{path}: cannot load the TFLite model ({type(error).__name__}: {error})") from error
        self.signatures = self._run.runners

    def run(self, signature: str, waveform: np.ndarray):
        out = self._run(signature, waveform)
        return out["token_ids"], int(out["num_tokens"]), float(out["score"]), None
