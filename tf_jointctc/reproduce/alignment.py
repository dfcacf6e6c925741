"""How monotonic (diagonal) an attention alignment is: one number per [tokens, frames] weight matrix.

The score is the share of attention mass that falls within a band of +-w encoder frames around the straight
line from (token 0, frame 0) to (token U-1, frame L-1), averaged over the U tokens (rows). The band half-width
is `w = max(1, round(band * L))` frames with `band = 0.1` by default, i.e. 10 % of the encoder length on either
side. A perfect diagonal scores 1; attention spread evenly over all frames scores the band's share of the
frames (about 2 * band + 1 / L, less near the corners); attention on the anti-diagonal scores close to 0.

Speaking rate varies within an utterance and the synthesized corpus has silence at both ends, so a good
alignment is not exactly the straight line: the score is a coarse "is it near the diagonal" measure, meant
to compare systems and epochs on the same utterance (the paper's Fig. 3), not an alignment accuracy.
"""

from __future__ import annotations

import numpy as np

DEFAULT_BAND = 0.1


def band_width(frames: int, band: float = DEFAULT_BAND) -> int:
    """Half-width w of the band in frames."""
    return max(1, int(round(band * frames)))


def diagonal(tokens: int, frames: int) -> np.ndarray:
    """[tokens] float: the frame on the straight line from (0, 0) to (tokens - 1, frames - 1) for each token."""
    if tokens <= 1:
        return np.full([max(tokens, 0)], (frames - 1) / 2.0)
    return np.arange(tokens) * (frames - 1) / (tokens - 1)


def band_mask(tokens: int, frames: int, band: float = DEFAULT_BAND) -> np.ndarray:
    """[tokens, frames] bool: True within +-w frames of the diagonal."""
    centre = diagonal(tokens, frames)[:, np.newaxis]
    return np.abs(np.arange(frames)[np.newaxis, :] - centre) <= band_width(frames, band)


def monotonicity(weights: np.ndarray, band: float = DEFAULT_BAND) -> float:
    """Share of attention mass within the diagonal band, averaged over tokens (see the module docstring).

    Args:
      weights: [tokens, frames] non-negative attention weights (rows need not be normalized).
      band: half-width of the band as a fraction of the frames.
    Returns:
      A float in [0, 1]; NaN for an empty matrix.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2:
        raise ValueError(f"expected [tokens, frames] weights, got shape {weights.shape}")
    tokens, frames = weights.shape
    if tokens == 0 or frames == 0:
        return float("nan")
    totals = weights.sum(axis=1)
    inside = np.where(band_mask(tokens, frames, band), weights, 0.0).sum(axis=1)
    shares = np.where(totals > 0, inside / np.maximum(totals, 1e-30), 0.0)
    return float(shares.mean())
