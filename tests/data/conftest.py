"""Small real audio files for the data tests, written with soundfile into tmp_path."""

from __future__ import annotations

import json
import os
import types

import numpy as np
import pytest
import soundfile


def tone(seconds: float, rate: int = 16000, freq: float = 440.0, amplitude: float = 0.5, seed: int = 0) -> np.ndarray:
    """A sine plus a little noise, float32 [S] in [-1, 1]."""
    t = np.arange(round(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0.0, 0.01, t.shape)
    return (amplitude * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def write_audio(path: str | os.PathLike, samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> str:
    soundfile.write(os.fspath(path), samples, rate, subtype=subtype)
    return os.fspath(path)


def truncate(path: str | os.PathLike, keep_fraction: float = 0.6) -> str:
    """Cuts a file's bytes (keeping its header): what an interrupted copy leaves."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * keep_fraction)])
    return os.fspath(path)


def write_manifest(path: str | os.PathLike, entries: list[dict | str]) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for entry in entries:
            f.write((entry if isinstance(entry, str) else json.dumps(entry)) + "\n")
    return os.fspath(path)


@pytest.fixture
def helpers():
    """The module's helpers, as a fixture so test files need no package imports."""

    return types.SimpleNamespace(tone=tone, write_audio=write_audio, truncate=truncate, write_manifest=write_manifest)
