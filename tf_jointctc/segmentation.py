"""Cutting long audio into pieces a recognizer decodes one by one (issue 14, item 3): numpy only.

The beam searches cost O(frames x tokens) per utterance (every output step attends to every encoder frame and
the CTC prefix recursion runs over the frames), so their time grows about quadratically with the length, and a
model trained on utterances of a few seconds loses its place in a minute of speech (docs/performance.md, "Long
audio"). Decoding pieces of at most `max_seconds` makes the time linear in the length, as long-form decoding
does in ESPnet's, WeNet's and NeMo's recipes (there with a voice-activity detector; here with the energy).

A cut goes where the audio is quietest: in the pause between words or sentences. Of each piece's last half
(from `max_seconds / 2` to `max_seconds` after its start) the cut is the centre of the 10 ms frame whose
energy, averaged over the `SMOOTHING_FRAMES` frames around it, is lowest (the latest such frame on ties).
The pieces are contiguous and cover the audio exactly: none is longer than `max_seconds`.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
FRAME_SAMPLES = 160  # 10 ms at 16 kHz
SMOOTHING_FRAMES = 15  # 150 ms: a cut lands in a pause, not in the quiet closure of a plosive
MIN_PIECE_FRAMES = 10  # the shortest max_seconds (0.1 s): a piece's last half must hold whole frames


def frame_energy(waveform: np.ndarray) -> np.ndarray:
    """float [S] -> mean square of each whole 10 ms frame, smoothed over `SMOOTHING_FRAMES` frames, [S // 160].
    Non-finite samples count as silence (the exported models zero them)."""
    frames = len(waveform) // FRAME_SAMPLES
    samples = np.nan_to_num(np.asarray(waveform[: frames * FRAME_SAMPLES], np.float64), nan=0.0, posinf=0.0,
                            neginf=0.0)
    power = np.square(samples).reshape(frames, FRAME_SAMPLES)
    energy = power.mean(axis=1)
    if frames >= SMOOTHING_FRAMES:
        energy = np.convolve(energy, np.ones(SMOOTHING_FRAMES) / SMOOTHING_FRAMES, mode="same")
    return energy


def split_long_audio(waveform: np.ndarray, max_seconds: float,
                     sample_rate: int = SAMPLE_RATE) -> list[tuple[int, int]]:
    """The pieces of `waveform` [S] (16 kHz) to decode one by one: [(start, end)] sample ranges, contiguous from
    0 to S, each at most `max_seconds` long, cut at the quietest point of each piece's last half. Audio of at
    most `max_seconds` is one piece; empty audio is none.

    Raises ValueError if `max_seconds` is under `MIN_PIECE_FRAMES` 10 ms frames."""
    if not float(max_seconds) * sample_rate >= MIN_PIECE_FRAMES * FRAME_SAMPLES:  # NaN included
        raise ValueError(f"max_seconds must be at least {MIN_PIECE_FRAMES * FRAME_SAMPLES / sample_rate:g} s, "
                         f"got {max_seconds}")
    max_samples = int(round(float(max_seconds) * sample_rate))
    total = len(waveform)
    if total == 0:
        return []
    energy = frame_energy(waveform)
    pieces, start = [], 0
    while total - start > max_samples:
        # Frames lying wholly inside [start + max / 2, start + max): a cut at a frame's centre keeps the piece
        # within max_samples and at least half of it long.
        first = -(-(start + max_samples // 2) // FRAME_SAMPLES)
        last = (start + max_samples) // FRAME_SAMPLES - 1
        window = energy[first:last + 1]
        quietest = first + len(window) - 1 - int(np.argmin(window[::-1]))
        cut = quietest * FRAME_SAMPLES + FRAME_SAMPLES // 2
        pieces.append((start, cut))
        start = cut
    pieces.append((start, total))
    return pieces
