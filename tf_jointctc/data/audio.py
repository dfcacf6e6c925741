"""Reading one utterance's audio on the host: any WAV/FLAC -> 16 kHz mono int16 PCM.

`soundfile` (libsndfile) decodes, `soxr` resamples. Every way a file can be unusable raises `AudioError` with
a short machine-readable `reason` (the same strings a `SkipReport` counts), so that data preparation can skip
the utterance and carry on.
"""

from __future__ import annotations

import os
import struct
import threading

import numpy as np
import soundfile
import soxr
from absl import logging

from tf_jointctc.data import skips

SAMPLE_RATE = 16000

_logged_rates: set[int] = set()
_logged_rates_lock = threading.Lock()


class AudioError(Exception):
    """An audio file that cannot be used.

    Attributes:
      reason: one of `missing_file`, `unreadable_audio`, `empty_audio`, `non_finite_audio`, `too_long_audio`.
      message: what went wrong, with the path.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def read_audio(
    path: str,
    start: float | None = None,
    end: float | None = None,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Reads (a segment of) an audio file as mono int16 at `sample_rate`.

    Multi-channel files give their first channel. Files at another rate are resampled with soxr (an INFO line
    is logged once per distinct source rate). Float samples are scaled by 32768 and clipped to int16.

    Args:
      path: a WAV or FLAC file (anything libsndfile reads), any bit depth.
      start: start of the segment in seconds (None: the file's start).
      end: end of the segment in seconds (None or negative: the file's end; clamped to the file's length).
      sample_rate: the rate of the result.
      max_seconds: if given, a longer segment raises `too_long_audio` before its samples are read.

    Returns:
      int16 [S] samples.

    Raises:
      AudioError: missing_file, unreadable_audio (not audio, corrupt or truncated), empty_audio (0 samples),
        non_finite_audio (NaN or infinity in a float file), too_long_audio.
    """
    if not os.path.isfile(path):
        raise AudioError(skips.MISSING_FILE, f"{path} does not exist")
    _check_wav_not_truncated(path)
    try:
        with soundfile.SoundFile(path) as f:
            source_rate, total = f.samplerate, f.frames
            first = 0 if start is None else min(total, max(0, round(start * source_rate)))
            last = total if end is None or end < 0 else min(total, round(end * source_rate))
            if last - first <= 0:
                raise AudioError(skips.EMPTY_AUDIO, f"{path} has no samples{_segment(start, end)}")
            seconds = (last - first) / source_rate
            if max_seconds is not None and seconds > max_seconds:
                raise AudioError(
                    skips.TOO_LONG_AUDIO, f"{path}{_segment(start, end)} lasts {seconds:.1f} s > {max_seconds:g} s"
                )
            if first:
                f.seek(first)
            samples = f.read(last - first, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (soundfile.SoundFileError, RuntimeError, ValueError, OSError) as error:
        raise AudioError(skips.UNREADABLE_AUDIO, f"{path}: {error}") from None
    if samples.shape[0] != last - first:
        raise AudioError(
            skips.UNREADABLE_AUDIO, f"{path} is truncated: read {samples.shape[0]} of {last - first} frames"
        )
    samples = samples[:, 0]
    if not np.all(np.isfinite(samples)):
        raise AudioError(skips.NON_FINITE_AUDIO, f"{path} has NaN or infinite samples")
    if source_rate != sample_rate:
        _log_resampling_once(source_rate, sample_rate)
        samples = soxr.resample(samples, source_rate, sample_rate)
        if samples.size == 0:
            raise AudioError(skips.EMPTY_AUDIO, f"{path} has no samples after resampling")
    return to_int16(samples)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] -> int16 (x * 32768, rounded, clipped). Exact for audio that was int16."""
    return np.clip(np.rint(np.asarray(samples, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _segment(start: float | None, end: float | None) -> str:
    if start is None and (end is None or end < 0):
        return ""
    return f" [{start or 0:g} s, {'end' if end is None or end < 0 else f'{end:g} s'}]"


def _log_resampling_once(source_rate: int, sample_rate: int) -> None:
    with _logged_rates_lock:
        if source_rate in _logged_rates:
            return
        _logged_rates.add(source_rate)
    logging.info(
        "resampling audio from %d Hz to %d Hz with soxr (logged once per source rate)", source_rate, sample_rate
    )


def _check_wav_not_truncated(path: str) -> None:
    """libsndfile silently shortens a WAV whose data chunk is cut off; a cut file means a transcript that does not
    match its audio, so it is rejected. Only plain RIFF/WAVE headers are checked (RF64, W64 and others pass)."""
    try:
        with open(path, "rb") as f:
            header = f.read(12)
            if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                return
            file_size = os.fstat(f.fileno()).st_size
            offset = 12
            while offset + 8 <= file_size:
                f.seek(offset)
                chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
                if chunk_id == b"data":
                    available = file_size - offset - 8
                    # 0 and 0xFFFFFFFF are what streaming writers leave when they cannot seek back.
                    if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                        raise AudioError(
                            skips.UNREADABLE_AUDIO,
                            f"{path} is truncated: its data chunk declares {chunk_size} bytes, {available} present",
                        )
                    return
                offset += 8 + chunk_size + (chunk_size & 1)
    except OSError as error:
        raise AudioError(skips.UNREADABLE_AUDIO, f"{path}: {error}") from None
